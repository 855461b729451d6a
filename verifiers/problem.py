"""Problem statements, written from the evidence of the failing tests, and checked for leaks.

A writer sees what a user filing an issue would see — which tests fail, what they report (the
assertion, or the exception and its message), where (the test's file and name) — and never the
patch, the operator, the mutated line or the commit message. ``TemplateWriter`` writes in the
voice of an issue report, varying its phrasing by a stable hash of the instance id and choosing
its framing by the task's source (a regression on today's code for mutations and mirrored PRs,
missing or wrong behaviour for pull requests). ``ProblemWriter`` is the protocol another writer
implements (``write(evidence) -> str``; a language-model endpoint later); ``load_writer``
builds one from ``"module:Class"``.

``write_statement`` is what validation calls for every task: it prefers the linked issue's text
where the source has it (GitHub), falls back to the writer, and runs ``find_leaks`` on the
result — a statement that quotes the gold patch's added lines, its new string literals, or the
commit message's title gives the fix away and is not used: the evidence is redacted (messages
that leak are cut down to the exception's type) until it passes. Text is normalised first
(``normalise``: memory addresses, temporary paths), so the same task gets the same statement on
every run.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from dataclasses import dataclass, replace
from typing import Protocol

__all__ = ["Evidence", "Leak", "ProblemWriter", "TemplateWriter", "candidate_texts", "find_leaks", "load_writer",
           "normalise", "write_statement"]


@dataclass(frozen=True)
class Evidence:
    instance_id: str
    repo: str
    failing: tuple[tuple[str, str], ...]  # (nodeid, failure message)
    num_passing: int
    hints: tuple[str, ...] = ()  # e.g. the package name; never the file or line that changed
    source: str = "mutation"  # the candidate's origin: mutation, combined, pr, pr_mirror
    issue_text: str = ""  # the linked issue's title and body, where the source has one


class ProblemWriter(Protocol):
    def write(self, evidence: Evidence) -> str: ...


def load_writer(spec: str) -> ProblemWriter:
    """A writer from ``"module:Class"`` (constructed without arguments), or ``"template"``."""
    if spec in ("", "template"):
        return TemplateWriter()
    mod, _, name = spec.partition(":")
    if not name:
        raise ValueError(f"problem writer {spec!r}: expected 'module:Class' or 'template'")
    try:
        cls = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"problem writer {spec!r} cannot be loaded: {e}") from e
    writer = cls()
    if not callable(getattr(writer, "write", None)):
        raise ValueError(f"problem writer {spec!r} has no write(evidence) method")
    return writer


# ---------------------------------------------------------------------------------------------
# Normalisation: the same failure reads the same on every run
# ---------------------------------------------------------------------------------------------

_ADDR_RE = re.compile(r"\b0x[0-9a-fA-F]{6,16}\b")
_OBJ_AT_RE = re.compile(r"(<[^<>]*?) at 0x[0-9a-fA-F]+>")
_TMP_RE = re.compile(
    r"(?:/private)?/(?:tmp|var/tmp|var/folders/[^\s/'\"]+/[^\s/'\"]+/T)"
    r"(?:/pytest-of-[^\s/'\"]+/pytest-\d+|/pytest-\d+|/tmp[\w.-]+)?(?:/[^\s/'\":]+?\d+(?=/|\b))?")
_ID_RE = re.compile(r"\bid=\d{6,}\b")
# Clock readings and random draws differ on every run: a float under a timing key
# ('start_time': 1742.358978039), a float of 12 or more decimals (3.425378108466707), and the
# "[73 chars]" of unittest's shortened reprs, whose count moves with them.
_TIME_FLOAT_RE = re.compile(r"(\b\w*(?:time|start|delay|elapsed|duration|idle|since|clock)\w*['\"]?\s*[:=]\s*)"
                            r"-?\d+\.\d+(?:e[-+]?\d+)?", re.IGNORECASE)
_LONG_FLOAT_RE = re.compile(r"(?<![\w.])-?\d+\.\d{12,}(?:e[-+]?\d+)?")
_CHARS_RE = re.compile(r"\[\d+ chars\]")


def normalise(text: str) -> str:
    """``text`` with run-specific parts replaced: ``<Foo object at 0x7f..>`` → ``<Foo object>``,
    other addresses → ``0x…``, temporary paths → ``<tmp>``, long ``id=`` numbers → ``id=…``,
    clock readings and long random floats → ``<float>``, unittest's ``[N chars]`` → ``[…]``."""
    text = _OBJ_AT_RE.sub(r"\1>", text)
    text = _ADDR_RE.sub("0x…", text)
    text = _TMP_RE.sub("<tmp>", text)
    text = _TIME_FLOAT_RE.sub(r"\1<float>", text)
    text = _LONG_FLOAT_RE.sub("<float>", text)
    text = _CHARS_RE.sub("[…]", text)
    return _ID_RE.sub("id=…", text)


# ---------------------------------------------------------------------------------------------
# Reading a failure message
# ---------------------------------------------------------------------------------------------

_EXC_RE = re.compile(r"^(?P<exc>(?:[A-Za-z_][\w]*\.)*(?:[A-Z]\w*)?(?:Error|Exception|Warning|Exit|Interrupt|Fault))"
                     r"(?::\s*(?P<msg>.*))?$", re.DOTALL)
_NO_RAISE_RE = re.compile(r"DID NOT (?:RAISE|WARN) (?:<class '(?P<cls>[\w.]+)'>|\(?(?P<many>[^)]*)\)?)")


@dataclass(frozen=True)
class Failure:
    """What one failing test reports, read from its one-line message."""

    nodeid: str
    kind: str  # "assert", "exception", "no_raise", "silent"
    exception: str = ""  # the exception's (short) type, when there is one
    detail: str = ""  # the message, normalised and shortened


def read_failure(nodeid: str, message: str) -> Failure:
    msg = normalise(message.strip())
    first = re.sub(r"\s+", " ", msg.splitlines()[0]).strip() if msg else ""
    first = first[:240] + ("…" if len(first) > 240 else "")
    if not first:
        return Failure(nodeid, "silent")
    m = _NO_RAISE_RE.search(first)
    if m:
        cls = (m["cls"] or m["many"] or "").split(".")[-1]
        return Failure(nodeid, "no_raise", cls, first)
    if first.startswith("assert ") or first.startswith("AssertionError"):
        detail = first.removeprefix("AssertionError: ").removeprefix("AssertionError")
        return Failure(nodeid, "assert", "AssertionError", detail.strip())
    if first.startswith("Failed: "):
        return Failure(nodeid, "assert", "", first.removeprefix("Failed: "))
    m = _EXC_RE.match(first)
    if m:
        return Failure(nodeid, "exception", m["exc"].split(".")[-1], (m["msg"] or "").strip())
    return Failure(nodeid, "assert", "", first)


def _describe(nodeid: str) -> str:
    """``tests/test_lru.py::LRUCacheTest::test_lru`` → ``LRUCacheTest.test_lru`` (tests/test_lru.py)."""
    path, _, rest = nodeid.partition("::")
    return f"`{rest.replace('::', '.')}` ({path})" if rest else f"`{path}`"


def _topic(nodeid: str) -> str:
    """What a test is about, in words: ``test_naturalsize_rollover[1e27]`` → ``naturalsize rollover``;
    a test named by number (``TestAfterLogFormat::test_01_default``) is told by its class
    (``after log format``). Empty when neither says anything."""
    parts = nodeid.split("::")
    name = re.sub(r"^test_?", "", parts[-1].split("[", 1)[0])
    words = [w for w in name.split("_") if w]
    if sum(w.isalpha() and len(w) > 2 for w in words) >= 2:
        return " ".join(words)
    if len(parts) > 2:
        cls = re.sub(r"^Test|Test(s|Case)?$", "", parts[-2])
        cls_words = re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", cls)
        if cls_words:
            return " ".join(w.lower() for w in cls_words)
    return " ".join(words) if any(w.isalpha() and len(w) > 2 for w in words) else ""


# ---------------------------------------------------------------------------------------------
# The template writer
# ---------------------------------------------------------------------------------------------

_OPEN_REGRESSION = (
    "Something regressed in {pkg}: {n_fail} of our tests started failing.",
    "I'm seeing unexpected behaviour from {pkg}.",
    "After updating to the current code, parts of {pkg} no longer behave as documented.",
    "Bug report: {pkg} gives wrong results in a few cases.",
    "Hi! Running the test suite of {pkg} gives me failures that I don't think are expected.",
    "{pkg} on the main branch fails {n_fail} test(s) for me.",
)
_OPEN_PR = (
    "{pkg} does not do what I'd expect in the case below.",
    "I think I found a bug in {pkg}.",
    "Hi, {pkg} misbehaves for me; here is a test that shows it.",
    "Unexpected result from {pkg}.",
    "Bug: {pkg} handles this case wrongly.",
    "Reporting a problem with {pkg}; a failing test is below.",
    "Is this expected? {pkg} gives me a result I did not expect.",
)
_TOPIC = ("It concerns {topics}.", "The area: {topics}.", "This is about {topics}.")
_BRIDGES = (
    "The failing tests are:",
    "Here is what fails:",
    "These are the checks that break:",
    "Failing:",
    "What I see:",
)
_CLOSE_REGRESSION = (
    "The rest of the suite ({n_pass} tests) still passes, so this looks like a targeted regression.",
    "Everything else seems fine; could someone take a look?",
    "Expected: these tests pass, as they did before.",
    "I'd expect the behaviour these tests describe. Happy to provide more details.",
)
_CLOSE_PR = (
    "I'd expect the behaviour the test describes.",
    "Could this be fixed? The rest of the suite passes.",
    "Expected: the test passes. Happy to help if more detail is needed.",
    "Everything else I tried works ({n_pass} other tests pass).",
    "Thanks for looking into it.",
)
_SAYS = {  # how one failure reads, by kind; {what} is the test, {detail} the message
    "assert": ("{what}: the check fails: `{detail}`", "{what} fails its assertion: `{detail}`",
               "{what} gets a different result than it expects: `{detail}`"),
    "exception": ("{what} raises `{exc}`{colon}{detail_q}", "{what} errors out with `{exc}`{colon}{detail_q}",
                  "{what}: `{exc}` is raised{colon}{detail_q}"),
    "no_raise": ("{what} expects a `{exc}`, but nothing is raised", "{what}: no `{exc}` is raised where one is expected",
                 "{what} expects `{exc}` to be raised; the call goes through instead"),
    "silent": ("{what} fails (no message)", "{what} fails without saying why"),
}
_SAYS_MANY = {  # the same, for several tests that fail the same way
    "assert": ("{what} all fail the same check: `{detail}`", "{what} fail their assertions alike: `{detail}`"),
    "exception": ("{what} all raise `{exc}`{colon}{detail_q}", "{what} each error out with `{exc}`{colon}{detail_q}"),
    "no_raise": ("{what} each expect a `{exc}`, but nothing is raised",
                 "{what}: no `{exc}` is raised where they expect one"),
    "silent": ("{what} fail without a message",),
}
_SAYS_REDACTED = ("{what} fails{with_exc}", "{what} does not pass{with_exc}")
_SAYS_REDACTED_MANY = ("{what} fail{with_exc}", "{what} do not pass{with_exc}")


def _pick(options: tuple[str, ...], key: str, salt: str) -> str:
    h = int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest(), 16)
    return options[h % len(options)]


class TemplateWriter:
    """Issue-style text from test names, assertions and exceptions, with stable variety.

    ``redact`` names node ids whose messages must not be quoted (they gave the fix away): for
    those only the exception's type is said.
    """

    def __init__(self, max_tests: int = 4) -> None:
        self.max_tests = max_tests

    def write(self, evidence: Evidence, redact: frozenset[str] = frozenset()) -> str:
        pkg = evidence.hints[0] if evidence.hints and evidence.hints[0] else evidence.repo
        key = evidence.instance_id
        pr = evidence.source == "pr"
        fmt = {"pkg": pkg, "n_fail": len(evidence.failing), "n_pass": evidence.num_passing}
        opening = _pick(_OPEN_PR if pr else _OPEN_REGRESSION, key, "open").format(**fmt)
        lines = [opening, ""]
        failures = [read_failure(n, m) for n, m in evidence.failing]
        if pr and failures:
            topics = sorted({t for f in failures[: self.max_tests] if (t := _topic(f.nodeid))})
            lines += [_pick(_TOPIC, key, "topic").format(topics=", ".join(topics)), ""] if topics else []
        lines += [_pick(_BRIDGES, key, "bridge"), ""]
        # Tests that fail the same way are one line: "N tests ... fail with X".
        groups: dict[tuple[str, str, str], list[Failure]] = {}
        for f in failures:
            groups.setdefault((f.kind, f.exception, "" if f.nodeid in redact else f.detail), []).append(f)
        shown = 0
        for (kind, exc, detail), fs in groups.items():
            if shown >= self.max_tests:
                break
            shown += 1
            what = _describe(fs[0].nodeid) if len(fs) == 1 else \
                f"{len(fs)} tests ({', '.join(_describe(f.nodeid) for f in fs[:3])}{', …' if len(fs) > 3 else ''})"
            many = len(fs) > 1
            if fs[0].nodeid in redact:
                tpl = _pick(_SAYS_REDACTED_MANY if many else _SAYS_REDACTED, key + fs[0].nodeid, "say")
                lines.append("- " + tpl.format(what=what, with_exc=f" with `{exc}`" if exc else ""))
                continue
            tpl = _pick((_SAYS_MANY if many else _SAYS)[kind], key + fs[0].nodeid, "say")
            lines.append("- " + tpl.format(what=what, exc=exc or "an error", detail=detail,
                                           colon=": " if detail else "", detail_q=f"`{detail}`" if detail else ""))
        rest = len(groups) - shown
        if rest > 0:
            more = sum(len(fs) for fs in list(groups.values())[shown:])
            lines.append(f"- ... and {more} more")
        lines += ["", _pick(_CLOSE_PR if pr else _CLOSE_REGRESSION, key, "close").format(**fmt)]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Leaks: a statement must not give the fix away
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leak:
    kind: str  # "added_line", "added_literal", "added_code", "commit_title"
    text: str  # what of the fix the statement quotes


_MIN_LINE = 16  # characters of an added line (stripped) worth checking
_MIN_LITERAL = 10  # characters of a new string literal
_MIN_TOKENS = 6  # consecutive code tokens of an added line
_DOC_PATH_RE = re.compile(r"(^|/)(docs?|releasenotes|changelog\.d|changes|newsfragments|news)/|"
                          r"\.(md|rst|txt|adoc)$|(^|/)(CHANGELOG|CHANGES|HISTORY|NEWS)[^/]*$", re.IGNORECASE)


def _patch_lines(patch: str) -> tuple[list[str], set[str]]:
    """The added lines of the code files of a unified diff, and the stripped removed lines."""
    added: list[str] = []
    removed: set[str] = set()
    skip = False
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            path = line.split(" b/", 1)[-1]
            skip = bool(_DOC_PATH_RE.search(path))
        elif line.startswith(("+++", "---")) or skip:
            continue
        elif line.startswith("+"):
            added.append(line[1:])
        elif line.startswith("-"):
            removed.add(line[1:].strip())
    return added, removed


def _tokens(text: str) -> list[str]:
    """Words and single symbols, with every quote as ``"``: prose that quotes code and the code
    itself (in either quoting, wrapped over lines) give the same tokens."""
    return ['"' if t in "'`\"" else t for t in re.findall(r"\w+|[^\w\s]", text)]


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


_LITERAL_RE = re.compile(r"""(?P<q>['"])(?P<s>(?:\\.|(?!(?P=q)).)*)(?P=q)""")


def find_leaks(statement: str, gold_patch: str, commit_message: str = "", allow: tuple[str, ...] = ()) -> list[Leak]:
    """What of the fix ``statement`` gives away (empty: nothing).

    - ``added_line``: an added code line (at least 16 characters, not also a removed line) quoted;
    - ``added_literal``: a string literal that the fix adds (at least 10 characters) quoted;
    - ``added_code``: six or more consecutive tokens of an added line that are not in any removed
      line (``raise ValueError('…')``, ``return self._n + 1``);
    - ``commit_title``: the commit message's title (four words or more), which names the fix.

    Docs and release notes in the patch do not count. Whitespace does not matter. ``allow`` are
    texts the statement may hold whatever the patch adds: the failing tests' node ids (a test's
    name is the test patch's, not the fix's) — they, and their parts, are cut out first.
    """
    leaks: list[Leak] = []
    named = " ".join(allow)  # a literal that a test's name already says is no news
    for a in sorted({x for n in allow for x in (n, *re.split(r"::|\[", n))}, key=len, reverse=True):
        if len(a) > 3:
            statement = statement.replace(a.rstrip("]"), " ")
    added, removed = _patch_lines(gold_patch)
    flat = _squash(statement)
    old_literals = {m["s"] for r in removed for m in _LITERAL_RE.finditer(r)}
    seen: set[str] = set()
    stmt_tokens = _tokens(statement)
    stmt_ngrams = {tuple(stmt_tokens[i:i + _MIN_TOKENS]) for i in range(len(stmt_tokens) - _MIN_TOKENS + 1)}
    removed_tokens = [_tokens(r) for r in removed]
    removed_ngrams = {tuple(t[i:i + _MIN_TOKENS]) for t in removed_tokens for i in range(len(t) - _MIN_TOKENS + 1)}
    for line in added:
        s = line.strip()
        if not s or s in removed or s.startswith("#"):
            continue
        if len(s) >= _MIN_LINE and _squash(s) in flat and s not in seen:
            seen.add(s)
            leaks.append(Leak("added_line", s))
            continue
        for m in _LITERAL_RE.finditer(s):
            lit = m["s"]
            if len(lit.strip()) >= _MIN_LITERAL and lit not in old_literals and _squash(lit) in flat \
                    and lit not in seen and lit not in named:
                seen.add(lit)
                leaks.append(Leak("added_literal", lit))
        toks = _tokens(s)
        for i in range(len(toks) - _MIN_TOKENS + 1):
            gram = tuple(toks[i:i + _MIN_TOKENS])
            if gram in stmt_ngrams and gram not in removed_ngrams:
                text = " ".join(gram)
                if text not in seen:
                    seen.add(text)
                    leaks.append(Leak("added_code", text))
                break
    title = commit_message.strip().split("\n", 1)[0].strip()
    title = re.sub(r"\s*\(#\d+\)\s*$", "", title)
    if len(title.split()) >= 4 and title.lower() in statement.lower():
        leaks.append(Leak("commit_title", title))
    return leaks


def write_statement(writer: ProblemWriter, evidence: Evidence, gold_patch: str,
                    commit_message: str = "") -> tuple[str, dict]:
    """The task's statement and how it was made: ``{"source", "leaks_redacted", "rejected", "evidence"}``
    (``evidence``: the first 20 failing tests and their normalised messages, kept with the task).

    The linked issue's text (``evidence.issue_text``) comes first; if it gives the fix away it is
    rejected (``rejected: ["issue:<kind>", ...]``) and the writer's text is used. The writer's text
    is checked too: the failures whose messages leak are redacted one by one; if it still leaks,
    every message is, and as a last resort the statement says only which tests fail.
    """
    info: dict = {"source": "evidence", "leaks_redacted": 0, "rejected": []}
    # The evidence itself, normalised, so a statement can be written again (another writer, an audit).
    info["evidence"] = [[n, normalise(m)[:500]] for n, m in evidence.failing[:20]]
    allow = tuple(n for n, _ in evidence.failing)
    issue = normalise(evidence.issue_text.strip())
    if issue:
        leaks = find_leaks(issue, gold_patch, commit_message)
        if not leaks:
            info["source"] = "issue"
            return issue, info
        info["rejected"] = sorted({f"issue:{lk.kind}" for lk in leaks})
    ev = replace(evidence, issue_text="")
    redactable = isinstance(writer, TemplateWriter)
    text = normalise(writer.write(ev))
    leaks = find_leaks(text, gold_patch, commit_message, allow)
    if not leaks:
        return text, info
    info["rejected"].append("writer:" + ",".join(sorted({lk.kind for lk in leaks})))
    if redactable:
        # Redact the failures whose messages carry a leak, then all of them.
        bad = frozenset(n for n, m in ev.failing if find_leaks(normalise(m), gold_patch, commit_message, allow))
        for redact in (bad, frozenset(n for n, _ in ev.failing)):
            if not redact:
                continue
            text = normalise(writer.write(ev, redact=redact))
            if not find_leaks(text, gold_patch, commit_message, allow):
                info["leaks_redacted"] = len(redact)
                return text, info
    # Last resort: the tests' names alone.
    names = ", ".join(_describe(n) for n, _ in ev.failing[:6])
    pkg = ev.hints[0] if ev.hints and ev.hints[0] else ev.repo
    text = normalise(f"Some behaviour of {pkg} is wrong: these tests fail: {names}.")
    info["leaks_redacted"] = len(ev.failing)
    info["source"] = "test_names"
    return text, info


def candidate_texts(problem_statement: str, provenance: dict) -> tuple[str, str]:
    """(issue text, commit message) of a candidate: its statement counts as an issue's text only
    when the miner says so (``problem_statement_source: issue``); candidates of older runs that
    carry a commit message there give it as the commit message, which only the leak check reads."""
    commit = provenance.get("commit_message") or provenance.get("title") or ""
    if provenance.get("problem_statement_source") == "issue":
        return problem_statement, commit
    if provenance.get("problem_statement_source") == "pr_message" and not commit:
        commit = problem_statement
    return "", commit
