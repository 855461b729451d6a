"""Problem statements from evidence, and the leak check, on real fixes (issue #19).

The patches and messages below are copied from two public repositories: tenacity PR #646
(``wait_chain`` with no strategies) and humanize PR #329 (``naturalsize`` rounding rollover). The
commit message of #646 is the statement the factory used to publish, word for word.
"""

from __future__ import annotations

import pytest

from verifiers.problem import (
    Evidence,
    TemplateWriter,
    candidate_texts,
    find_leaks,
    load_writer,
    normalise,
    read_failure,
    write_statement,
)

TENACITY_646_PATCH = '''diff --git a/tenacity/wait.py b/tenacity/wait.py
index c7a430e..3b53da2 100644
--- a/tenacity/wait.py
+++ b/tenacity/wait.py
@@ -104,6 +104,8 @@ class wait_chain(wait_base):
     """

     def __init__(self, *strategies: wait_base) -> None:
+        if not strategies:
+            raise ValueError("wait_chain() requires at least one strategy")
         self.strategies = strategies

     def __call__(self, retry_state: "RetryCallState") -> float:
diff --git a/releasenotes/notes/fix-wait-chain-empty-strategies-d3a8f7c2b1e4f569.yaml b/releasenotes/notes/fix-wait-chain-empty-strategies-d3a8f7c2b1e4f569.yaml
new file mode 100644
--- /dev/null
+++ b/releasenotes/notes/fix-wait-chain-empty-strategies-d3a8f7c2b1e4f569.yaml
@@ -0,0 +1,4 @@
+---
+fixes:
+  - |
+    ``wait_chain()`` now raises ``ValueError`` at construction time when
'''
TENACITY_646_MESSAGE = """wait_chain: reject empty strategy list with ValueError instead of IndexError (#646)

Calling wait_chain() with no strategies stored an empty tuple in
self.strategies. The first call to __call__ then evaluated
min(max(1, 1), 0) == 0, so self.strategies[wait_func_no - 1]
turned into self.strategies[-1] and raised IndexError, which is
opaque for what is really a programmer error at construction time.

Validate in __init__ and raise ValueError('wait_chain() requires
at least one strategy') so the failure happens at the point where
the bad configuration is created, not later when the wait function
is first evaluated inside a running retry.

Co-authored-by: Zo Bot <github-automation@zo.computer>"""

HUMANIZE_329_PATCH = '''diff --git a/src/humanize/filesize.py b/src/humanize/filesize.py
index c495fed..315261a 100644
--- a/src/humanize/filesize.py
+++ b/src/humanize/filesize.py
@@ -97,6 +97,12 @@ def naturalsize(
         return f"{int(bytes_)}B" if gnu else _("%d Bytes") % int(bytes_)

     exp = int(min(log(abs_bytes, base), len(suffix)))
+    # The suffix is chosen from the unrounded byte count, but `format` rounds the
+    # mantissa afterward; rounding can push it up to `base` (e.g. 999999 is
+    # 999.999 kB, which formats to "1000.0 kB"). When that happens and a larger
+    # suffix is available, step up one suffix so the result reads "1.0 MB".
+    if exp < len(suffix) and abs(float(format % (abs_bytes / (base**exp)))) >= base:
+        exp += 1
     space = "" if gnu else " "
     ret: str = format % (bytes_ / (base**exp)) + space + _(suffix[exp - 1])
     return ret
'''
HUMANIZE_329_MESSAGE = "Fix `naturalsize()` rounding rollover at unit boundaries (#329)"

WAIT_CHAIN_TEST = "tests/test_tenacity.py::TestWaitConditions::test_wait_chain_requires_at_least_one_strategy"
NATURALSIZE_TESTS = ("tests/test_filesize.py::test_naturalsize[test_args25-1.0 MB]",
                     "tests/test_filesize.py::test_naturalsize[test_args26-1.0 GB]")


def _ev(failing, source="pr", issue="", iid="tenacity__abc"):
    return Evidence(instance_id=iid, repo="tenacity-1234", failing=tuple(failing), num_passing=171,
                    hints=("tenacity",), source=source, issue_text=issue)


def test_the_commit_message_that_was_published_leaks():
    kinds = {lk.kind for lk in find_leaks(TENACITY_646_MESSAGE, TENACITY_646_PATCH, TENACITY_646_MESSAGE)}
    # the new error message, wrapped over two lines in the commit, and the raise around it
    assert kinds == {"added_literal", "added_code", "commit_title"}
    leaks = find_leaks("Validate in __init__ and raise ValueError('wait_chain() requires at least one strategy')",
                       TENACITY_646_PATCH)
    assert [lk.text for lk in leaks if lk.kind == "added_literal"] == ["wait_chain() requires at least one strategy"]
    assert {lk.kind for lk in find_leaks(HUMANIZE_329_MESSAGE, HUMANIZE_329_PATCH, HUMANIZE_329_MESSAGE)} \
        == {"commit_title"}


def test_quoting_an_added_line_leaks_and_describing_the_failure_does_not():
    quoted = "Please add `if exp < len(suffix) and abs(float(format % (abs_bytes / (base**exp)))) >= base:`"
    assert [lk.kind for lk in find_leaks(quoted, HUMANIZE_329_PATCH)] == ["added_line"]
    fine = ("`naturalsize(999999)` gives `1000.0 kB`; I'd expect `1.0 MB`. "
            "`tests/test_filesize.py::test_naturalsize` fails: assert '1000.0 kB' == '1.0 MB'")
    assert find_leaks(fine, HUMANIZE_329_PATCH) == []
    # The release note is not the gold patch's code: quoting it is not a leak of the fix's lines.
    assert find_leaks("wait_chain() now raises ValueError at construction time", TENACITY_646_PATCH) == []


def test_statement_for_a_pr_is_written_from_the_failing_test():
    ev = _ev([(WAIT_CHAIN_TEST, "AssertionError: ValueError not raised")])
    text, info = write_statement(TemplateWriter(), ev, TENACITY_646_PATCH, TENACITY_646_MESSAGE)
    assert info == {"source": "evidence", "leaks_redacted": 0, "rejected": [],
                    "evidence": [[WAIT_CHAIN_TEST, "AssertionError: ValueError not raised"]]}
    assert "`TestWaitConditions.test_wait_chain_requires_at_least_one_strategy` (tests/test_tenacity.py)" in text
    assert "ValueError not raised" in text and "wait chain requires at least one strategy" in text
    assert "reject empty strategy" not in text and "Co-authored-by" not in text
    assert find_leaks(text, TENACITY_646_PATCH, TENACITY_646_MESSAGE) == []
    # reproducible: the same evidence, the same text
    assert write_statement(TemplateWriter(), ev, TENACITY_646_PATCH, TENACITY_646_MESSAGE)[0] == text


def test_a_message_that_quotes_the_fix_is_redacted_to_its_exception():
    leaky = ("AssertionError: 'wait_chain() requires at least one strategy' != 'tuple index out of range'")
    ev = _ev([(WAIT_CHAIN_TEST, leaky), ("tests/test_tenacity.py::TestWaitConditions::test_wait_chain", "")])
    text, info = write_statement(TemplateWriter(), ev, TENACITY_646_PATCH)
    assert "requires at least one strategy'" not in text and "wait_chain()" not in text
    assert info["leaks_redacted"] == 1 and info["rejected"] == ["writer:added_code,added_literal"]
    assert "`AssertionError`" in text  # what is left: which test, and how it fails
    assert find_leaks(text, TENACITY_646_PATCH) == []


def test_issue_text_is_used_unless_it_gives_the_fix_away():
    issue = "wait_chain() with no arguments raises IndexError\n\nCalling `wait_chain()` fails later with IndexError."
    text, info = write_statement(TemplateWriter(), _ev([(WAIT_CHAIN_TEST, "")], issue=issue), TENACITY_646_PATCH)
    assert (text, info["source"]) == (issue, "issue")
    bad = issue + "\n\nFix: `raise ValueError('wait_chain() requires at least one strategy')`"
    text, info = write_statement(TemplateWriter(), _ev([(WAIT_CHAIN_TEST, "")], issue=bad), TENACITY_646_PATCH)
    assert info["source"] == "evidence" and info["rejected"] == ["issue:added_code", "issue:added_literal"]
    assert "test_wait_chain_requires_at_least_one_strategy" in text


def test_statements_are_normalised_and_vary():
    msg = ("AssertionError: assert <tenacity.RetryCallState object at 0x7f3a2b1c9d50> is None; "
           "see /tmp/pytest-of-root/pytest-17/test_log0/out.txt and /tmp/tmpab12_x/f.py")
    text, _ = write_statement(TemplateWriter(), _ev([(WAIT_CHAIN_TEST, msg)]), TENACITY_646_PATCH)
    assert "0x7f3a" not in text and "pytest-17" not in text and "tmpab12_x" not in text
    assert "<tenacity.RetryCallState object>" in text and "<tmp>/out.txt" in text and "<tmp>/f.py" in text
    assert normalise("id=140234567890123 at 0xdeadbeef00") == "id=… at 0x…"
    # tenacity's statistics hold clock readings; random waits are long floats (messages from two runs)
    a = "{'start_time': 1742.358978039, 'attempt_nu[73 chars]e-05} != {}"
    b = "{'start_time': 1743.065583771, 'attempt_nu[74 chars]1829} != {}"
    assert normalise(a) == "{'start_time': <float>, 'attempt_nu[…]e-05} != {}"
    assert normalise(b).startswith("{'start_time': <float>, 'attempt_nu[…]")
    assert normalise("3.425378108466707 not greater than or equal to 5") == "<float> not greater than or equal to 5"
    # a float the test wrote is kept
    assert normalise("assert '1.123456789 Bytes' == '1 Bytes'") == "assert '1.123456789 Bytes' == '1 Bytes'"
    texts = {write_statement(TemplateWriter(), _ev([(WAIT_CHAIN_TEST, "IndexError: tuple index out of range")],
                                                   iid=f"t__{i}"), TENACITY_646_PATCH)[0].split("\n")[0]
             for i in range(40)}
    assert len(texts) >= 5  # several openings across tasks, each stable for its task
    regression = write_statement(TemplateWriter(), _ev([(WAIT_CHAIN_TEST, "")], source="pr_mirror"),
                                 TENACITY_646_PATCH)[0]
    assert "It concerns" not in regression


@pytest.mark.parametrize(("message", "kind", "exc"), [
    ("IndexError: tuple index out of range", "exception", "IndexError"),
    ("assert '1000.0 kB' == '1.0 MB'\n  - 1.0 MB\n  + 1000.0 kB", "assert", "AssertionError"),
    ("Failed: DID NOT RAISE <class 'ValueError'>", "no_raise", "ValueError"),
    ("tenacity.RetryError: RetryError[<Future at 0x7f state=finished raised IOError>]", "exception", "RetryError"),
    ("", "silent", ""),
    ("Exception: Humanize cannot determinate the default location of the 'locale' folder.", "exception", "Exception"),
])
def test_failure_messages_are_read(message, kind, exc):
    f = read_failure("t.py::test", message)
    assert (f.kind, f.exception) == (kind, exc)


def test_the_writer_is_pluggable():
    assert isinstance(load_writer("template"), TemplateWriter)
    w = load_writer("verifiers.problem:TemplateWriter")
    assert isinstance(w, TemplateWriter)
    with pytest.raises(ValueError, match="module:Class"):
        load_writer("nonsense")
    with pytest.raises(ValueError, match="cannot be loaded"):
        load_writer("verifiers.problem:NoSuchWriter")

    class Echo:
        def write(self, evidence):
            return "raise ValueError('wait_chain() requires at least one strategy')"

    text, info = write_statement(Echo(), _ev([(WAIT_CHAIN_TEST, "")]), TENACITY_646_PATCH)
    assert info["source"] == "test_names" and "ValueError(" not in text and "test_wait_chain" in text


def test_candidate_texts_keep_commit_messages_out_of_the_statement():
    assert candidate_texts("Issue body", {"problem_statement_source": "issue", "commit_message": "Fix x"}) \
        == ("Issue body", "Fix x")
    assert candidate_texts("", {"problem_statement_source": "evidence", "commit_message": "Fix x"}) == ("", "Fix x")
    # a candidate of an older run: the commit message sat in problem_statement
    assert candidate_texts("Fix x\n\nbody", {"problem_statement_source": "pr_message"}) == ("", "Fix x\n\nbody")
    assert candidate_texts("", {}) == ("", "")


def test_a_test_named_after_the_new_behaviour_is_not_a_leak():
    # tenacity "initialize delay_since_first_attempt in statistics on begin()": the new key is a
    # literal the fix adds, and the failing test is named after it, so neither the name nor the
    # KeyError quoting the key tells more than the test does. A key the name does not say is cut.
    patch = ('diff --git a/tenacity/__init__.py b/tenacity/__init__.py\n--- a/tenacity/__init__.py\n'
             '+++ b/tenacity/__init__.py\n@@ -1,2 +1,4 @@\n     def begin(self) -> None:\n'
             '+        self.statistics["delay_since_first_attempt"] = 0\n'
             '+        self.statistics["first_attempt_started"] = 0\n         self.statistics["idle_for"] = 0\n')
    node = "tests/test_tenacity.py::TestStatisticsKeys::test_delay_since_first_attempt_available_on_first_attempt"
    text, info = write_statement(TemplateWriter(), _ev([(node, "KeyError: 'delay_since_first_attempt'")]), patch)
    assert info["leaks_redacted"] == 0 and "KeyError" in text and "'delay_since_first_attempt'" in text
    text, info = write_statement(TemplateWriter(), _ev([(node, "KeyError: 'first_attempt_started'")]), patch)
    assert info["source"] == "evidence" and info["leaks_redacted"] == 1
    assert "test_delay_since_first_attempt_available_on_first_attempt" in text and "`KeyError`" in text
    assert "first_attempt_started" not in text


def test_tests_failing_alike_are_one_line_in_the_plural():
    nodes = [f"tests/test_a.py::TestRetry::test_reraise_{k}" for k in ("cause", "context")]
    text, _ = write_statement(TemplateWriter(), _ev([(n, "KeyError: 'attempt_number'") for n in nodes]), "")
    line = next(ln for ln in text.splitlines() if ln.startswith("- 2 tests"))
    assert "`TestRetry.test_reraise_cause`" in line and ("all raise" in line or "each error out" in line)
    from verifiers.problem import _topic
    assert _topic("tests/test_after.py::TestAfterLogFormat::test_01_default") == "after log format"
    assert _topic("tests/test_filesize.py::test_naturalsize[test_args25-1.0 MB]") == "naturalsize"
    assert _topic("t.py::test_wait_chain_requires_one") == "wait chain requires one"


def test_a_literal_that_a_test_name_says_is_not_a_leak():
    # humanize "Add natural_list": the fix adds "natural_list" to __all__; the failing test is
    # test_natural_list, so the AttributeError naming it gives nothing away.
    patch = ('diff --git a/src/humanize/__init__.py b/src/humanize/__init__.py\n--- a/src/humanize/__init__.py\n'
             '+++ b/src/humanize/__init__.py\n@@ -1,2 +1,3 @@\n __all__ = [\n+    "natural_list",\n     "naturalsize",\n')
    node = "tests/test_lists.py::test_natural_list[test_args0-1, 2 and 3]"
    msg = "AttributeError: module 'humanize' has no attribute 'natural_list'"
    text, info = write_statement(TemplateWriter(), _ev([(node, msg)]), patch)
    assert info["leaks_redacted"] == 0 and "has no attribute 'natural_list'" in text
