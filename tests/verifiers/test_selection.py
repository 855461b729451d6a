"""The selection rule without Docker: which changes the coverage map attributes to tests, which
need the full suite, and what validation does with each (through a scripted box)."""

from __future__ import annotations

import dataclasses
import difflib

from factory.schema import BaselineEntry, Candidate, CoverageEntry, EnvImage, EnvSpec
from verifiers.attribution import OUTSIDE_TESTS, CoverageMap, attribute, changed_lines
from verifiers.fake import FakeBox, fake_run
from verifiers.problem import TemplateWriter
from verifiers.runner import Selection
from verifiers.sandbox import SandboxLimits
from verifiers.validate import AuditRecord, ValidateConfig, _audit, _Ctx, _judge_with_retries
from verifiers.verdict import VerdictRules

SRC = '''\
import functools

LIMIT = 10


def helper(x, scale=2):
    """Scale x."""
    y = x * scale
    if y > LIMIT:
        return LIMIT
    else:
        return y


class Box:
    size = 3

    @functools.lru_cache
    def area(self):
        total = (self.size
                 * self.size)
        return total

    def grow(self, n):
        def inner(k):
            return k + 1
        return inner(n)


def make_cases():
    return [1, 2, 3]
'''

# line -> tests, as a coverage map would say; module-level lines and make_cases ran outside tests
COV = {
    8: ("t_a.py::a", "t_b.py::b"), 9: ("t_a.py::a", "t_b.py::b"), 10: ("t_b.py::b",), 12: ("t_a.py::a",),
    20: ("t_c.py::c",), 22: ("t_c.py::c",), 25: ("t_d.py::d",), 26: ("t_d.py::d",), 27: ("t_d.py::d",),
    31: ("t_e.py::e",),
}
OUTSIDE = (1, 3, 6, 15, 16, 18, 19, 24, 30, 31)


def _map(cov=COV, outside=OUTSIDE) -> CoverageMap:
    rows = {n: list(ids) for n, ids in cov.items()}
    for n in outside:
        rows.setdefault(n, []).append(OUTSIDE_TESTS)
    return CoverageMap.from_entries([CoverageEntry("pkg/m.py", n, tuple(ids)) for n, ids in rows.items()])


def _patch(new: str, old: str = SRC, path: str = "pkg/m.py") -> str:
    body = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{path}", f"b/{path}", n=3))
    return f"diff --git a/{path} b/{path}\n{body}"


def _att(new: str, **kw):
    return attribute(_patch(new), _map(**kw), lambda p: SRC if p == "pkg/m.py" else None,
                     lambda p: p.startswith("tests/"))


def test_a_changed_statement_in_a_body_is_attributed_to_the_tests_that_ran_it():
    got = _att(SRC.replace("y = x * scale", "y = x + scale"))
    assert got.tests == {"t_a.py::a", "t_b.py::b"}
    got = _att(SRC.replace("return LIMIT", "return -LIMIT"))
    assert got.tests == {"t_b.py::b"}


def test_a_line_in_the_middle_of_a_statement_takes_the_whole_statement():
    assert _att(SRC.replace("* self.size)", "+ self.size)")).tests == {"t_c.py::c"}


def test_an_else_line_belongs_to_its_if_statement():
    assert _att(SRC.replace("    else:\n        return y", "    return y")).tests == {"t_a.py::a", "t_b.py::b"}


def test_a_nested_function_body_is_a_body():
    assert _att(SRC.replace("return k + 1", "return k - 1")).tests == {"t_d.py::d"}


def test_an_insertion_between_statements_takes_the_tests_of_the_whole_body():
    got = _att(SRC.replace("    y = x * scale\n", "    y = x * scale\n    y += 1\n"))
    assert got.tests == {"t_a.py::a", "t_b.py::b"}


def test_an_insertion_at_the_top_of_a_body_takes_the_tests_of_the_whole_body():
    # shuffle_statements moving a body's first statement down (rope's patchedast._YieldFrom)
    got = _att(SRC.replace("    def grow(self, n):\n", "    def grow(self, n):\n        n = -n\n"))
    assert got.attributable and got.tests == {"t_d.py::d"}, got.reason


def test_comment_lines_above_a_bodys_first_statement_are_the_body():
    # holidays' remove_call_statement: "# Epiphany." and the body's only call below it, removed
    src = SRC.replace("    def grow(self, n):\n", "    def grow(self, n):\n        # Grow by one.\n\n")
    cov = {(n + 3 if n >= 25 else n): ids for n, ids in COV.items()}
    outside = tuple(n + 3 if n >= 25 else n for n in OUTSIDE)
    drop = src.replace("        # Grow by one.\n\n        def inner(k):\n            return k + 1\n", "")
    got = attribute(_patch(drop, src), _map(cov, outside), lambda p: src)
    assert got.attributable and got.tests == {"t_d.py::d"}, got.reason
    got = attribute(_patch(src.replace("        # Grow by one.\n", "        n = -n\n"), src), _map(cov, outside), lambda p: src)
    assert got.tests == {"t_d.py::d"}, got.reason
    # An insertion above the comment, right under the signature, is the body's too.
    got = attribute(_patch(src.replace("    def grow(self, n):\n", "    def grow(self, n):\n        n = -n\n"), src),
                    _map(cov, outside), lambda p: src)
    assert got.tests == {"t_d.py::d"}, got.reason
    # A comment inside a signature that spans lines is the signature, and one above a docstring
    # is not the body (code there would stop the docstring being one).
    sig = SRC.replace("def helper(x, scale=2):", "def helper(\n    x,\n    # how much\n    scale=2,\n):")
    got = attribute(_patch(sig.replace("    # how much\n", ""), sig), _map({n + 4: i for n, i in COV.items()}, ()),
                    lambda p: sig)
    assert not got.attributable, got.tests
    doc = SRC.replace('    """Scale x."""', '    # helper\n    """Scale x."""')
    got = attribute(_patch(doc.replace("    # helper\n", "    x = -x\n"), doc), _map({n + 1: i for n, i in COV.items()}, ()),
                    lambda p: doc)
    assert not got.attributable, got.tests


def test_what_runs_at_definition_or_import_is_not_attributable():
    cases = {
        "before the docstring (it stops being one)": SRC.replace('    """Scale x."""', '    x = -x\n    """Scale x."""'),
        "module level": SRC.replace("LIMIT = 10", "LIMIT = 11"),
        "class body": SRC.replace("size = 3", "size = 4"),
        "decorator": SRC.replace("@functools.lru_cache\n", "@functools.cache\n"),
        "default argument, not a literal": SRC.replace("scale=2", "scale=LIMIT"),
        "default argument and the def line": SRC.replace("scale=2", "scale=3, extra=0"),
        "def line": SRC.replace("def grow(self, n):", "def grow(self, m, n=0):"),
        "docstring": SRC.replace('"""Scale x."""', '"""Scale x twice."""'),
        "runs at collection": SRC.replace("return [1, 2, 3]", "return [1, 2]"),
        "after the function's last line": SRC.replace("        return y\n", "        return y\n    print()\n"),
    }
    for what, new in cases.items():
        got = _att(new)
        assert not got.attributable and got.reason, what


def test_a_literal_default_value_changed_takes_the_tests_of_the_whole_body():
    # Only calls see a default, and a call runs the body: the tests that ran helper's body.
    assert _att(SRC.replace("scale=2", "scale=3")).tests == {"t_a.py::a", "t_b.py::b"}
    assert _att(SRC.replace("scale=2", "scale=-2")).tests == {"t_a.py::a", "t_b.py::b"}
    kw_only = SRC.replace("def helper(x, scale=2):", "def helper(x, *, flag, scale=2):")
    got = attribute(_patch(kw_only.replace("scale=2", "scale=5"), kw_only), _map(), lambda p: kw_only)
    assert got.tests == {"t_a.py::a", "t_b.py::b"}


def test_an_uncovered_statement_or_file_is_not_attributable():
    uncovered = {n: t for n, t in COV.items() if n != 12}
    assert "no test executes it" in _att(SRC.replace("        return y", "        return -y"), cov=uncovered).reason
    got = attribute(_patch("x = 1\n", "x = 0\n", "pkg/other.py"), _map(), lambda p: "x = 0\n")
    assert "no coverage data" in got.reason


def test_an_unexecuted_statement_adds_no_test_to_a_change_some_test_executes():
    # Dropping the else branch: the ``else:`` line belongs to the if statement (run by a and b);
    # ``return y`` at line 12 never ran in this map, so it adds no one and takes nothing away.
    uncovered = {n: t for n, t in COV.items() if n != 12}
    got = _att(SRC.replace("    else:\n        return y\n", ""), cov=uncovered)
    assert got.tests == {"t_a.py::a", "t_b.py::b"}
    # Two changes, one statement run by b, one run by no test: b alone can see the change.
    got = _att(SRC.replace("return LIMIT", "return -LIMIT").replace("        return y", "        return -y"),
               cov=uncovered)
    assert got.tests == {"t_b.py::b"}


def test_test_files_new_files_and_other_files_are_not_attributable():
    src = {"tests/t.py": "def test_a():\n    assert 1\n"}
    cov = CoverageMap.from_entries([CoverageEntry("tests/t.py", 2, ("t_a.py::a",))])
    got = attribute(_patch("def test_a():\n    assert 0\n", src["tests/t.py"], "tests/t.py"), cov, src.get,
                    lambda p: p.startswith("tests/"))
    assert got.reason == "tests/t.py: changes a test file"
    new_file = "diff --git a/pkg/n.py b/pkg/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/pkg/n.py\n@@ -0,0 +1 @@\n+x = 1\n"
    assert not attribute(new_file, _map(), lambda p: SRC).attributable
    readme = _patch("b\n", "a\n", "README.md")
    assert attribute(readme, _map(), lambda p: "a\n").reason == "README.md: not a Python file"


def test_changed_lines_reads_each_hunk_on_the_old_side():
    new = SRC.replace("y = x * scale", "y = x + scale").replace("return [1, 2, 3]", "return [1]")
    (ch,) = changed_lines(_patch(new))
    assert (ch.path, ch.removed, ch.inserted_before) == ("pkg/m.py", (8, 31), ())
    (ins,) = changed_lines(_patch(SRC.replace("    y = x * scale\n", "    y = x * scale\n    y += 1\n")))
    assert (ins.removed, ins.inserted_before) == ((), (9,))


# -- validation with the rule, through a scripted box -------------------------------------------

TESTS = ("t_a.py::a", "t_b.py::b", "t_c.py::c", "t_d.py::d", "t_e.py::e", "t_f.py::f")
ENV = EnvImage("img:tag", "sha256:x", EnvSpec("repo", "c0ffee", "base", "3.11", (), (), "python -m pytest"), 0.0, True)
BASELINE = [BaselineEntry(nodeid=t, outcome="passed", duration_s=0.1, flaky=False) for t in TESTS]
BUG = _patch(SRC.replace("y = x * scale", "y = x + scale"))


def _ctx(strategy="selected", fraction=0.0, rules=VerdictRules(max_f2p=3)) -> _Ctx:
    cfg = ValidateConfig(strategy=strategy, workers=1, rules=rules, build_task_images=False, retries=0,
                         retry_backoff_s=0.0, confirm_fraction=fraction)
    return _Ctx(ENV, BASELINE, set(TESTS), cfg, TemplateWriter(), "repo", coverage=_map(),
                source_of=lambda p: SRC if p == "pkg/m.py" else None)


def _world(failing: dict[str, str], selections: list):
    def script(applied, sel: Selection, i: int):
        selections.append(sel.tests)
        outs = {t: "passed" for t in TESTS}
        if applied:
            outs.update(failing)
        return fake_run({t: outs[t] for t in (TESTS if sel.tests is None else sel.tests)})
    return script


def test_selected_runs_the_covering_tests_twice_and_takes_the_rest_from_the_baseline():
    seen: list = []
    val, inst = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed"}, seen)), Candidate(
        "c1", "repo", "c0ffee", "mutation", BUG), _ctx())
    assert (val.verdict, val.lists, val.num_runs) == ("accepted", "selected", 2)
    assert seen == [("t_a.py::a", "t_b.py::b"), ("t_a.py::a", "t_b.py::b")]
    assert val.FAIL_TO_PASS == ("t_a.py::a",)
    assert val.PASS_TO_PASS == tuple(t for t in TESTS if t != "t_a.py::a")
    assert '"lists": "selected"' in inst.provenance


def test_the_full_strategy_and_unattributable_changes_run_the_whole_suite():
    for strategy, patch in (("full", BUG), ("selected", _patch(SRC.replace("LIMIT = 10", "LIMIT = 1")))):
        seen: list = []
        val, _ = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed"}, seen)),
                                     Candidate("c1", "repo", "c0ffee", "mutation", patch), _ctx(strategy))
        assert (val.verdict, val.lists, seen) == ("accepted", "full", [None, ("t_a.py::a",)]), strategy
        assert val.PASS_TO_PASS == tuple(t for t in TESTS if t != "t_a.py::a")
    assert val.detail.startswith("full suite (pkg/m.py:3: not inside a function body")  # why: the rule


def test_a_run_of_chosen_tests_has_a_limit_from_their_baseline_durations():
    # The covering tests (0.1 s each in the baseline) get 60 s + 10 x 0.2 s; the full suite, the
    # worker's own limit; a confirmation run, its one test's share. Never above the full limit.
    box = FakeBox(_world({"t_a.py::a": "failed"}, []))
    _judge_with_retries(box, Candidate("c1", "repo", "c0ffee", "mutation", BUG), _ctx())
    assert box.limits_asked == [62.0, 62.0]
    box = FakeBox(_world({"t_a.py::a": "failed"}, []))
    _judge_with_retries(box, Candidate("c1", "repo", "c0ffee", "mutation", BUG), _ctx("full"))
    assert box.limits_asked == [None, 61.0]
    ctx = _ctx()
    ctx.cfg = dataclasses.replace(ctx.cfg, limits=SandboxLimits(timeout_s=30.0))
    assert ctx.limit_for(["t_a.py::a"]) == 30.0 and ctx.limit_for(None) is None


def test_the_covering_tests_files_run_whole_for_class_and_module_scoped_fixtures():
    # t_a.py::a executed the change while building a class-scoped fixture; its sibling
    # t_a.py::a2 only reads what the fixture built, and the map does not credit it: it fails too.
    tests = (*TESTS, "t_a.py::a2")
    baseline = [*BASELINE, BaselineEntry(nodeid="t_a.py::a2", outcome="passed", duration_s=0.1, flaky=False)]
    seen: list = []

    def script(applied, sel: Selection, i: int):
        seen.append(sel.tests)
        outs = {t: "failed" if applied and t in ("t_a.py::a", "t_a.py::a2") else "passed" for t in tests}
        return fake_run({t: outs[t] for t in (tests if sel.tests is None else sel.tests)})

    ctx = _ctx()
    ctx.baseline, ctx.stable = baseline, set(tests)
    val, _ = _judge_with_retries(FakeBox(script), Candidate("c1", "repo", "c0ffee", "mutation", BUG), ctx)
    assert ctx.observers({"t_a.py::a", "t_b.py::b"}) == {"t_a.py::a", "t_a.py::a2", "t_b.py::b"}
    assert seen[0] == ("t_a.py::a", "t_b.py::b", "t_a.py::a2") and val.lists == "selected"  # suite order
    assert val.FAIL_TO_PASS == ("t_a.py::a", "t_a.py::a2")


def test_a_flaky_covering_test_still_brings_its_files_stable_siblings():
    # The only test the map credits with the change is flaky (it built a class-scoped fixture);
    # its stable sibling reads what the fixture built, so it must run, not be taken from the baseline.
    ctx = _ctx()
    ctx.baseline = [*BASELINE, BaselineEntry(nodeid="t_a.py::a2", outcome="passed", duration_s=0.1, flaky=False)]
    ctx.stable = {"t_a.py::a2", "t_b.py::b"}
    assert ctx.observers({"t_a.py::a"}) == {"t_a.py::a2"}
    assert ctx.observers({"t_c.py::gone"}) == set()


def test_a_covering_test_that_fails_only_once_is_in_neither_list():
    def script(applied, sel, i):
        outs = {t: "passed" for t in sel.tests}
        outs["t_a.py::a"] = "failed"
        if i == 0:
            outs["t_b.py::b"] = "failed"
        return fake_run(outs)

    val, _ = _judge_with_retries(FakeBox(script), Candidate("c1", "repo", "c0ffee", "mutation", BUG), _ctx())
    assert val.FAIL_TO_PASS == ("t_a.py::a",) and "t_b.py::b" not in val.PASS_TO_PASS


def test_the_suite_wide_limits_hold_for_the_selected_rule():
    seen: list = []
    val, _ = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed", "t_b.py::b": "failed"}, seen)),
                                 Candidate("c1", "repo", "c0ffee", "mutation", BUG),
                                 _ctx(rules=VerdictRules(max_f2p=1)))
    assert (val.verdict, val.reason, val.num_runs) == ("rejected", "too_many_f2p", 1)


def test_a_candidate_that_changes_tests_gets_the_full_suite():
    seen: list = []
    cand = Candidate("c1", "repo", "c0ffee", "mutation", BUG, test_patch="diff --git a/tests/t.py b/tests/t.py\n")
    val, _ = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed"}, seen)), cand, _ctx())
    assert val.lists == "full" and seen[0] is None


def test_the_audit_keeps_the_full_suites_verdict_and_says_where_they_disagree():
    # t.py::f never runs the changed line, yet fails with the bug (say, through a subprocess):
    # the selected rule cannot see it; the audit's full run does.
    seen: list = []
    box = FakeBox(_world({"t_a.py::a": "failed", "t_f.py::f": "failed"}, seen))
    ctx = _ctx(fraction=1.0)
    cand = Candidate("c1", "repo", "c0ffee", "mutation", BUG)
    val, inst = _judge_with_retries(box, cand, ctx)
    assert val.lists == "selected" and val.FAIL_TO_PASS == ("t_a.py::a",)
    records: list[AuditRecord] = []
    kept, _ = _audit(box, cand, ctx, val, inst, records.append)
    (rec,) = records
    assert not rec.agrees and "t_f.py::f" in rec.differences
    assert kept.lists == "full" and kept.FAIL_TO_PASS == ("t_a.py::a", "t_f.py::f")
    assert kept.detail.startswith("audit: the selected lists disagreed")


def test_the_audit_sample_is_seeded_and_about_the_fraction():
    ctx = _ctx(fraction=0.05)
    picked = [i for i in range(4000) if ctx.audited(Candidate(f"c{i}", "r", "x", "mutation", ""))]
    again = [i for i in range(4000) if _ctx(fraction=0.05).audited(Candidate(f"c{i}", "r", "x", "mutation", ""))]
    assert picked == again and 150 <= len(picked) <= 250
    assert not any(_ctx(fraction=0.0).audited(Candidate(f"c{i}", "r", "x", "mutation", "")) for i in range(200))


def test_a_change_to_a_functions_scope_takes_the_tests_of_its_whole_body():
    # Binding LIMIT inside helper makes the earlier `if y > LIMIT` an UnboundLocalError for every
    # test that runs helper, not only for those that reach the changed statement.
    got = _att(SRC.replace("        return LIMIT", "        LIMIT = 0\n        return LIMIT"))
    assert got.tests == {"t_a.py::a", "t_b.py::b"}
    assert _att(SRC.replace("        return LIMIT", "        return LIMIT + 0")).tests == {"t_b.py::b"}


def test_a_patch_that_does_not_match_the_source_is_not_attributable():
    patch = _patch(SRC.replace("y = x * scale", "y = x + scale")).replace(" if y > LIMIT:", " if y >= LIMIT:")
    assert "does not match the source" in attribute(patch, _map(), lambda p: SRC).reason


def test_the_run_limit_comes_from_the_median_baseline_run_not_the_slowest(tmp_path):
    from factory.schema import BaselineSummary
    from factory.store import RunStore, write_json
    from factory.task_stages import adaptive_timeout

    store = RunStore(tmp_path)
    write_json(store.repo("r").root / "baseline.json",
               BaselineSummary(num_tests=1, outcomes={}, num_flaky=0, run_wall_s=(22.0, 95.0, 23.0)).to_json())
    assert adaptive_timeout(store, "r") == 230.0  # the loaded 95 s run does not set it
    assert adaptive_timeout(store, "missing") == 300.0


def test_a_timeout_whose_partial_report_already_fails_too_many_tests_is_too_many_f2p():
    from factory.schema import TestResult, TestRun
    from verifiers.verdict import judge

    partial = tuple(TestResult(t, "failed") for t in TESTS[:4])
    slow = TestRun("timeout", None, 99.0, partial, TESTS, reason="killed after the 90s wall-clock limit")
    assert judge(BASELINE, slow, rules=VerdictRules(max_f2p=3)).reason == "too_many_f2p"
    hang = TestRun("timeout", None, 99.0, partial[:1], TESTS, reason="killed")
    assert judge(BASELINE, hang, rules=VerdictRules(max_f2p=3)).reason == "timeout"


def test_a_task_records_the_language_of_its_environment():
    ctx = _ctx()
    ctx.env = dataclasses.replace(ENV, spec=dataclasses.replace(ENV.spec, language="go"))
    _, inst = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed"}, [])),
                                  Candidate("c1", "repo", "c0ffee", "mutation", BUG), ctx)
    assert inst.language == "go"
    _, inst = _judge_with_retries(FakeBox(_world({"t_a.py::a": "failed"}, [])),
                                  Candidate("c1", "repo", "c0ffee", "mutation", BUG), _ctx())
    assert inst.language == "python"
