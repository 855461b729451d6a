"""A scripted agent that solves a task through the runtime's tools, so every observation is real.

The oracle knows the gold patch; everything it *sees* comes from the session:

1. reproduce — run a few FAIL_TO_PASS tests and read the failure (``--tb=short``);
2. localise  — grep for the functions the traceback names (and the hunk's enclosing definition),
               then read each file the fix touches around each hunk;
3. edit      — the gold fix hunk by hunk as ``edit`` calls (old text widened until it is unique;
               new files by ``write``, deleted files by ``rm``);
4. verify    — every FAIL_TO_PASS test, then a seeded sample of PASS_TO_PASS;
5. submit    — the hardened grader's reward comes back as the last observation.

``variant="recovery"`` first edits the first hunk that allows it *wrongly* (``_wrong_version``: an
operator or constant flipped, an integer off by one, a neighbouring branch's return value, ``None``
instead of the fix's value, a call's last argument dropped), runs the failing tests and reads the new
failure, then corrects the edit. A trajectory is kept only with reward 1; otherwise ``solve`` says
why not (``Unsolved``).
"""

from __future__ import annotations

import random
import re
import shlex
from dataclasses import dataclass, field

from factory.errors import FactoryError
from rollouts.record import Message, Param, Tool, ToolCall, Trajectory
from rollouts.runtime import Runtime, Session

__all__ = ["SYSTEM", "TOOLS", "Hunk", "Unsolved", "parse_patch", "replay", "solve"]

TOOLS = (
    Tool("bash", "Run a shell command in the repository (/testbed) and return its output and exit code.",
         (Param("command", "string", "The command, run with bash."),
          Param("timeout", "integer", "Seconds before the command is killed (default 60).", required=False))),
    Tool("read", "Read a text file, optionally only lines start_line..end_line (1-based, inclusive).",
         (Param("path", "string", "Path relative to /testbed, or absolute."),
          Param("start_line", "integer", "First line to show.", required=False),
          Param("end_line", "integer", "Last line to show.", required=False))),
    Tool("write", "Create or overwrite a file with the given content.",
         (Param("path", "string", "Path relative to /testbed, or absolute."),
          Param("content", "string", "The complete new content of the file."))),
    Tool("edit", "Replace the one exact occurrence of `old` in a file by `new`. `old` must match the file exactly, "
                 "whitespace included, and occur exactly once.",
         (Param("path", "string", "Path relative to /testbed, or absolute."),
          Param("old", "string", "The exact text to replace."),
          Param("new", "string", "The replacement text."))),
    Tool("diff", "Show the patch of everything changed so far, against the starting commit."),
    Tool("submit", "Submit the current changes as the final patch; the hidden tests grade it."),
)

SYSTEM = ("You are a software engineer fixing a bug in the Python repository checked out at /testbed. "
          "Reproduce the problem, find its cause, make the smallest correct change to the source code (never the "
          "tests), check it with the tests, and submit. Use the tools; each call's result comes back to you.")

REPRODUCE_TESTS = 3
P2P_SAMPLE = 10


class Unsolved(FactoryError):
    """No kept trajectory for this task and variant; the message says why."""

    reason = "unsolved"


# -- unified diffs ---------------------------------------------------------------------------------

@dataclass
class Hunk:
    old_start: int
    old: list[str]
    new: list[str]
    section: str = ""
    old_eof_nl: bool = True
    new_eof_nl: bool = True

    def text(self, side: str) -> str:
        lines = self.old if side == "old" else self.new
        eof = self.old_eof_nl if side == "old" else self.new_eof_nl
        return "".join(ln + "\n" for ln in lines[:-1]) + (lines[-1] + ("\n" if eof else "") if lines else "")

    @property
    def added(self) -> list[int]:
        return [i for i, ln in enumerate(self.new) if ln not in self.old]


@dataclass
class FilePatch:
    old_path: str | None
    new_path: str | None
    hunks: list[Hunk] = field(default_factory=list)


def parse_patch(diff: str) -> list[FilePatch]:
    files: list[FilePatch] = []
    lines = diff.split("\n")
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("diff --git "):
            m = re.match(r"diff --git a/(.+?) b/(.+)$", ln)
            files.append(FilePatch(m.group(1), m.group(2)))
        elif ln.startswith("--- ") and files:
            files[-1].old_path = None if ln[4:] == "/dev/null" else ln[4:].removeprefix("a/")
        elif ln.startswith("+++ ") and files:
            files[-1].new_path = None if ln[4:] == "/dev/null" else ln[4:].removeprefix("b/")
        elif ln.startswith("@@") and files:
            m = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@ ?(.*)$", ln)
            h = Hunk(int(m.group(1)), [], [], m.group(5))
            n_old, n_new = int(m.group(2) or 1), int(m.group(4) or 1)
            i += 1
            last = ""
            while i < len(lines) and (n_old > 0 or n_new > 0 or lines[i].startswith("\\")):
                body = lines[i]
                if body.startswith("\\"):
                    if last in (" ", "-"):
                        h.old_eof_nl = False
                    if last in (" ", "+"):
                        h.new_eof_nl = False
                    i += 1
                    continue
                tag, text = (body[:1] or " "), body[1:]
                if tag in (" ", "-"):
                    h.old.append(text)
                    n_old -= 1
                if tag in (" ", "+"):
                    h.new.append(text)
                    n_new -= 1
                last = tag
                i += 1
            files[-1].hunks.append(h)
            continue
        i += 1
    return files


# -- the agent ---------------------------------------------------------------------------------------

class _Agent:
    def __init__(self, session: Session, row: dict) -> None:
        self.s = session
        self.row = row
        self.msgs: list[Message] = [Message("system", SYSTEM), Message(
            "user", f"{(row.get('problem_statement') or '').strip()}\n\nThe repository is checked out at /testbed.")]

    def call(self, thought: str, name: str, **args) -> str:
        args = {k: v for k, v in args.items() if v is not None}
        obs = self.s.call(name, args)
        self.msgs.append(Message("assistant", thought, (ToolCall(name, args),)))
        self.msgs.append(Message("tool", obs, name=name))
        return obs


def _pytest(ids: list[str], extra: str = "") -> str:
    return f"python -m pytest -p no:cacheprovider {extra} " + " ".join(shlex.quote(i) for i in ids)


def _first_error(output: str) -> str:
    for ln in output.splitlines():
        if ln.startswith("E   "):
            return ln[1:].strip()
    m = re.search(r"^FAILED \S+ - (.+)$", output, re.M)
    return m.group(1).strip() if m else "the tests fail"


def _frames(output: str) -> list[tuple[str, str]]:
    """(file, function) of traceback frames outside the tests, innermost last."""
    out = []
    for path, func in re.findall(r"^(\S+\.py):\d+: in (\w+)", output, re.M):
        if "test" not in path.split("/")[-1] and not path.startswith(("/usr", "/opt")) and (path, func) not in out:
            out.append((path, func))
    return out


_WRONG = [(" <= ", " < "), (" < ", " <= "), (" >= ", " > "), (" > ", " >= "), (" == ", " != "), (" != ", " == "),
          (" is not None", " is None"), (" is None", " is not None"), (" + 1", " - 1"), (" - 1", " + 1"),
          ("True", "False"), ("False", "True"), (" and ", " or "), (" or ", " and "), ("not ", ""),
          ("[0]", "[-1]"), ("[-1]", "[0]"), ("(1)", "(0)")]


def _wrong_version(h: Hunk) -> list[str] | None:
    """The hunk's new lines with one plausible mistake in an added line (None: none found).

    In order: an operator or constant flipped; an integer off by one; a ``return`` of the value a
    neighbouring branch returns; ``None`` returned or assigned instead of the fix's value; a call's
    last argument dropped."""
    added = [i for i in h.added if h.new[i].strip() and not h.new[i].lstrip().startswith("#")]

    def with_line(i: int, text: str) -> list[str]:
        new = list(h.new)
        new[i] = text
        return new

    for i in added:
        code, hash_, comment = h.new[i].partition("  #")  # never "fix" a comment
        for a, b in _WRONG:
            if a in code:
                return with_line(i, code.replace(a, b, 1) + hash_ + comment)
    for i in added:
        m = re.search(r"(?<![\w.])(\d+)(?![\w.])", h.new[i])
        if m:
            return with_line(i, h.new[i][:m.start()] + str(int(m.group(1)) + 1) + h.new[i][m.end():])
    returns = [ln.strip() for ln in h.new + h.old if ln.strip().startswith("return ")]
    for i in added:
        ln = h.new[i]
        if any(ln.count(a) != ln.count(b) for a, b in ("()", "[]", "{}")) or ln.rstrip().endswith(("\\", ",")):
            continue  # a statement that goes on below: changing half of it would not even parse
        if ln.strip().startswith("return "):
            other = next((r for r in returns if r != ln.strip()), None)
            indent = ln[:len(ln) - len(ln.lstrip())]
            return with_line(i, indent + (other or "return None"))
        m = re.match(r"(\s*[\w.\[\]'\"]+\s*=\s*)(\S.*)$", ln)
        if m and "==" not in ln and m.group(2).strip() != "None":
            return with_line(i, m.group(1) + "None")
    for i in added:
        m = re.search(r"\(([^()]*), ([^(),]+)\)", h.new[i])
        if m:
            return with_line(i, h.new[i][:m.start()] + f"({m.group(1)})" + h.new[i][m.end():])
    return None


def _unique_span(text: str, h: Hunk, old: str) -> str:
    """Widen ``old`` (the hunk's old side) with whole lines of ``text`` until it occurs once."""
    if text.count(old) == 1:
        return old
    lines = text.splitlines(keepends=True)
    at = h.old_start - 1
    for k in range(1, 40):
        lo, hi = max(0, at - k), min(len(lines), at + len(h.old) + k)
        cand = "".join(lines[lo:hi])
        if old in cand and text.count(cand) == 1:
            return cand
    raise Unsolved(f"hunk at line {h.old_start} has no unique span to edit")


def _write_file_change(a: _Agent, session: Session, f: FilePatch, what: str) -> None:
    """One file's change made through the tools: write a new file, remove one, or edit hunk by hunk."""
    if f.new_path is None:
        a.call(f"`{f.old_path}` should not exist for {what}; remove it.", "bash",
               command=f"rm -- {shlex.quote(f.old_path)}")
        return
    if f.old_path is None:
        a.call(f"Write {what} in `{f.new_path}`.", "write", path=f.new_path, content="".join(h.text("new") for h in f.hunks))
        return
    for h in f.hunks:
        current = session.read(f.old_path)
        old = _unique_span(current, h, h.text("old"))
        obs = a.call(f"Add {what} to `{f.old_path}`.", "edit", path=f.old_path, old=old,
                     new=old.replace(h.text("old"), h.text("new"), 1))
        if obs.startswith("error:"):
            raise Unsolved(f"edit refused while writing {what}: {obs}")


def solve(session: Session, row: dict, variant: str = "direct", seed: int = 0) -> Trajectory:
    """One oracle trajectory on ``session`` (a fresh session on ``row``); raises ``Unsolved``."""
    a = _Agent(session, row)
    f2p, p2p = list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
    files = [f for f in parse_patch(row["patch"]) if f.hunks or f.new_path is None]
    if not files:
        raise Unsolved("the gold patch has no hunks")
    # 0. a pull request's failing tests come with it (``test_patch``): the start state does not hold
    # them, so the agent writes them first, as reproduction tests. Grading restores test files and
    # applies the real test_patch, so the reward still measures the code fix alone.
    for f in (f for f in parse_patch(row.get("test_patch") or "") if f.hunks or f.new_path is None):
        _write_file_change(a, session, f, "the tests that show the problem")
    # 1. reproduce
    repro = f2p[:REPRODUCE_TESTS]
    out = a.call("Let me first reproduce the problem by running some of the tests it mentions.", "bash",
                 command=_pytest(repro, "-q --tb=short"), timeout=300)
    if out.rstrip().endswith("[exit code 0]"):
        raise Unsolved("the failing tests pass in the start state")
    err = _first_error(out)
    # 2. localise
    frames = _frames(out)
    names = [f for _, f in frames][-2:]
    for h in (h for f in files for h in f.hunks):
        m = re.search(r"(?:def|class)\s+(\w+)", h.section)
        if m and m.group(1) not in names:
            names.append(m.group(1))
            break
    if names:
        alt = "|".join(dict.fromkeys(names))
        a.call(f"The failure is `{err}`. I'll look for where {', '.join(f'`{n}`' for n in dict.fromkeys(names))} "
               "are defined.", "bash", command=f"grep -rnE '(def|class) ({alt})\\b' --include=*.py . | grep -v '/tests\\?/' "
               "| head -20")
    for f in files:
        if f.old_path is None:
            continue
        for h in f.hunks:
            lo = max(1, h.old_start - 8)
            a.call(f"Let me read `{f.old_path}` around line {h.old_start}"
                   + (f" ({h.section.strip()})." if h.section.strip() else "."),
                   "read", path=f.old_path, start_line=lo, end_line=h.old_start + len(h.old) + 8)
    # 3. edit (the recovery variant's first edit is wrong, and is corrected after its failing run)
    wrong_hunk = None
    if variant == "recovery":
        wrong_hunk = next((id(h) for f in files if f.old_path and f.new_path for h in f.hunks
                           if _wrong_version(h) is not None), None)
        if wrong_hunk is None:
            raise Unsolved("no plausible wrong edit in the fix's added lines")
    for f in files:
        if f.new_path is None:
            a.call(f"`{f.old_path}` should not exist; remove it.", "bash", command=f"rm -- {shlex.quote(f.old_path)}")
            continue
        if f.old_path is None:
            content = "".join(h.text("new") for h in f.hunks)
            a.call(f"Create `{f.new_path}`.", "write", path=f.new_path, content=content)
            continue
        for h in f.hunks:
            current = session.read(f.old_path)  # to widen the edit until it is unique (not shown: the oracle's aid)
            old = _unique_span(current, h, h.text("old"))
            new = old.replace(h.text("old"), h.text("new"), 1)
            where = f"`{f.old_path}`" + (f" in `{h.section.strip()}`" if h.section.strip() else "")
            if id(h) == wrong_hunk:
                wrong_lines = _wrong_version(h)
                wrong_h = Hunk(h.old_start, h.old, wrong_lines, h.section, h.old_eof_nl, h.new_eof_nl)
                wrong = old.replace(h.text("old"), wrong_h.text("new"), 1)
                a.call(f"The cause looks like {where}. Let me change it.", "edit", path=f.old_path, old=old, new=wrong)
                out = a.call("Run the tests that failed before to check.", "bash",
                             command=_pytest(f2p, "-q --tb=short"), timeout=600)
                if out.rstrip().endswith("[exit code 0]"):
                    raise Unsolved("the wrong first edit went unnoticed by the FAIL_TO_PASS tests")
                a.call(f"Still failing: `{_first_error(out)}`. My change to {where} was not right; correct it.",
                       "edit", path=f.old_path, old=wrong, new=new)
            else:
                obs = a.call(f"Fix {where}.", "edit", path=f.old_path, old=old, new=new)
                if obs.startswith("error:"):
                    raise Unsolved(f"edit refused: {obs}")
    # 4. verify
    out = a.call("Now run every test that failed before.", "bash", command=_pytest(f2p, "-q --tb=line"), timeout=600)
    if not out.rstrip().endswith("[exit code 0]"):
        raise Unsolved(f"FAIL_TO_PASS still fails after the gold edits: {_first_error(out)}")
    if p2p:
        sample = random.Random(f"{seed}:{row['instance_id']}").sample(p2p, min(P2P_SAMPLE, len(p2p)))
        out = a.call("They pass. Check a sample of the tests that passed before, for regressions.", "bash",
                     command=_pytest(sample, "-q --tb=short"), timeout=600)
        if not out.rstrip().endswith("[exit code 0]"):
            raise Unsolved(f"PASS_TO_PASS sample fails: {_first_error(out)}")
    a.call("Everything passes. Let me review the change before submitting.", "diff")
    # 5. submit
    out = a.call("The change is minimal and the tests pass; submit it.", "submit")
    sub = session.submission
    if sub is None or sub.reward != 1.0:
        raise Unsolved(f"graded reward {sub.reward if sub else 'none'}: {out[:300]}")
    a.msgs.append(Message("assistant", "The fix is submitted."))
    return Trajectory(TOOLS, tuple(a.msgs), {"instance_id": row["instance_id"], "variant": variant, "reward": sub.reward,
                                             "source": "oracle", "steps": session.steps}).check()


def replay(runtime: Runtime, row: dict, traj: Trajectory) -> tuple[float, list[str]]:
    """Run every call of ``traj`` in a fresh session; (reward, calls whose observation differs in kind).

    Edits, reads, writes and diffs must give the recorded text; shell commands the recorded exit
    code (their output holds timings)."""
    diffs: list[str] = []
    with runtime.open(row) as s:
        msgs = list(traj.messages)
        for i, m in enumerate(msgs):
            for k, c in enumerate(m.calls):
                obs = s.call(c.name, dict(c.arguments))
                want = msgs[i + 1 + k].content
                if c.name == "bash":
                    same = obs.rsplit("[", 1)[-1] == want.rsplit("[", 1)[-1]
                elif c.name == "submit":
                    same = obs.split(":")[0] == want.split(":")[0]
                else:
                    same = obs == want
                if not same:
                    diffs.append(f"message {i} {c.name}")
        reward = s.submission.reward if s.submission else 0.0
    return reward, diffs
