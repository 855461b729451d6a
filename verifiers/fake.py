"""A scripted ``Box``: validation's and grading's rules, exercised without Docker.

``FakeBox`` keeps the list of patches applied since the last reset and asks a script what a
session would report in that state. The script is a plain function, so a test states the world
it needs in a few lines ("with the bug applied, test ``a`` fails") and drives the real
``verifiers.validate.judge_candidate`` / ``judge_pr`` through it. ``fake_run`` builds the
``TestRun`` a runner would have read, through the same exit-code rule as a real session.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from factory.schema import TestResult, TestRun
from verifiers.runner import Selection
from verifiers.sandbox import SessionReport, classify
from verifiers.worker import WorkerFault

__all__ = ["FakeBox", "Script", "fake_run"]

# (patches applied since the reset, in order; the session's selection; the session's index) -> run
Script = Callable[[tuple[str, ...], Selection, int], TestRun]


def fake_run(outcomes: dict[str, str], *, exit_code: int | None = None, status: str | None = None,
             collected: tuple[str, ...] | None = None, collect_errors: int = 0) -> TestRun:
    """The TestRun of a session that reported ``outcomes`` (node id -> outcome).

    ``exit_code`` defaults to what pytest would exit with; ``status`` forces an infrastructure
    status (``timeout``, ``oom``, ``infra_error``) that a real box would have seen.
    """
    if status in ("timeout", "oom", "infra_error"):
        return TestRun(status, exit_code, 0.1, reason=f"scripted {status}")
    failing = any(o in ("failed", "error") for o in outcomes.values())
    code = exit_code if exit_code is not None else (1 if failing or collect_errors else 0)
    rep = SessionReport(collected=list(collected if collected is not None else outcomes),
                        results={n: TestResult(nodeid=n, outcome=o, duration_s=0.01) for n, o in outcomes.items()},
                        collect_errors=[("broken.py", "ImportError")] * collect_errors, exitstatus=code)
    return classify(code, 0.1, rep, "")


@dataclass
class FakeBox:
    """A Box whose sessions come from ``script``; patches in ``refuse`` do not apply."""

    script: Script
    refuse: frozenset[str] = frozenset()
    fault: bool = False  # every operation is an infrastructure fault (the engine is gone)
    gold: str = "diff --git a/m.py b/m.py\n"
    client: object = None
    container: object = "fake"
    applied: list[str] = field(default_factory=list)
    sessions: int = 0
    restarts: int = 0
    limits_asked: list[float | None] = field(default_factory=list)  # each session's own limit (None: the worker's)

    def _check(self) -> None:
        if self.fault:
            raise WorkerFault("scripted: the engine went away")

    def start(self) -> None:
        self._check()

    def restart(self) -> None:
        self.restarts += 1
        self._check()

    def close(self) -> None:
        pass

    def reset(self) -> None:
        self._check()
        self.applied = []

    def apply(self, patch: str, reverse: bool = False, reset: bool = False) -> tuple[bool, str]:
        self._check()
        if reset:
            self.applied = []
        if patch in self.refuse:
            return False, "error: patch failed: m.py:1\nerror: m.py: patch does not apply"
        self.applied.append(("-R " if reverse else "") + patch)
        return True, ""

    def run(self, selection: Selection, timeout_s: float | None = None) -> TestRun:
        self._check()
        self.limits_asked.append(timeout_s)
        run = self.script(tuple(self.applied), selection, self.sessions)
        self.sessions += 1
        if run.status == "infra_error":
            raise WorkerFault(run.reason)
        return run

    def diff(self, reverse: bool = False) -> str:
        return self.gold

    def read_files(self, paths: list[str]) -> dict[str, str | None]:
        return {p: "" for p in paths}
