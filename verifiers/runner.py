"""The test-runner seam: how one language's tests are selected, run and read.

Everything that runs tests — the baseline, validation, grading — goes through a ``TestRunner``
inside a ``Box`` (a place where patches are applied and runs happen: a long-lived worker
container, or a fake). The runner knows its command line, where its structured report lands and
how to read it, and which paths a patch may not change; the box knows containers. A new language
is a new runner (plus its mutators and install detection), not edits across packages:
``docs/extending.md`` lists the files.

One rule turns a session's exit code and report into a ``TestRun`` (``verifiers.sandbox.classify``)
and one rule says whether a run can be judged (``verifiers.sandbox.run_problem``); every runner
returns its results through them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from factory.repo import is_test_file
from factory.schema import TestRun
from verifiers.sandbox import SessionReport, classify, parse_report, pytest_command

__all__ = ["Box", "PytestRunner", "Selection", "TestRunner", "runner_for"]


@dataclass(frozen=True)
class Selection:
    """What one session runs: the whole suite (``tests is None``), chosen tests, or paths.

    ``ids_file``: the tests' ids are already in the container at this path, one per line, and
    the runner reads them from there instead of spelling them in the command. The command is one
    argument to ``bash -c`` and Linux takes at most 128 KiB in one argument: 2,000 networkx node
    ids are 169 KB, a jest suite's ids as many (``verifiers.worker.Worker.run``, grading).
    """

    tests: tuple[str, ...] | None = None
    paths: tuple[str, ...] = ()
    collect_only: bool = False
    ids_file: str | None = None

    @classmethod
    def of(cls, tests) -> Selection:
        return cls(tests=None if tests is None else tuple(tests))


class TestRunner(Protocol):
    """How a language's test sessions are started and read. Implementations hold no container."""

    __test__ = False
    name: str
    language: str

    def command(self, selection: Selection, *, plugins: tuple[str, ...] | None = None) -> str:
        """The shell command of one session (run in /testbed, its report at ``$TF_REPORT``)."""

    def read(self, exit_code: int | None, wall_s: float, report_text: str, log_tail: str,
             key: bytes | None = None) -> tuple[TestRun, SessionReport]:
        """The run, through the one exit-code-and-report rule."""

    def protected(self, path: str) -> bool:
        """A path a patch may not change: the tests, and what configures or hooks the runner."""


@dataclass(frozen=True)
class PytestRunner:
    """pytest with our report plugin (``verifiers/plugin/tf_report.py``) as the structured report."""

    __test__ = False
    test_cmd: str = "python -m pytest"
    test_file_patterns: tuple[str, ...] = ()
    name: str = "pytest"
    language: str = "python"

    def command(self, selection: Selection, *, plugins: tuple[str, ...] | None = None) -> str:
        kw = {} if plugins is None else {"plugins": plugins}
        if selection.ids_file:
            return pytest_command(self.test_cmd, ids_file=selection.ids_file, collect_only=selection.collect_only, **kw)
        return pytest_command(self.test_cmd, select=None if selection.tests is None else list(selection.tests),
                              paths=selection.paths, collect_only=selection.collect_only, **kw)

    def read(self, exit_code: int | None, wall_s: float, report_text: str, log_tail: str,
             key: bytes | None = None) -> tuple[TestRun, SessionReport]:
        report = parse_report(report_text, key=key)
        return classify(exit_code, wall_s, report, log_tail), report

    def protected(self, path: str) -> bool:
        from verifiers.grade import protected  # noqa: PLC0415  (grading owns the list)

        return protected(path) or is_test_file(path, self.test_file_patterns)


def runner_for(test_cmd: str, language: str = "python", test_file_patterns: tuple[str, ...] = ()) -> TestRunner:
    """The runner of an environment: the one its test command names (jest, vitest, mocha,
    ``node --test``, ``go test``: ``verifiers.langs.runners``), else pytest for Python."""
    from verifiers.langs.runners import runner_from_cmd  # noqa: PLC0415

    named = runner_from_cmd(test_cmd, tuple(test_file_patterns))
    if named is not None:
        return named
    if language == "python":
        return PytestRunner(test_cmd, tuple(test_file_patterns))
    raise ValueError(f"no test runner for language {language!r} and test command {test_cmd!r}")


class Box(Protocol):
    """Where a candidate is judged: patches applied to /testbed, sessions run, the tree read back.

    ``verifiers.worker.Worker`` is the real one (a sandboxed container); ``verifiers.fake.FakeBox``
    scripts the outcomes, so validation's rules are testable without Docker. Infrastructure
    faults raise ``verifiers.worker.WorkerFault``; everything else is a result.
    """

    client: object
    container: object

    def start(self) -> None: ...
    def restart(self) -> None: ...
    def close(self) -> None: ...
    def reset(self) -> None: ...
    def apply(self, patch: str, reverse: bool = False, reset: bool = False) -> tuple[bool, str]: ...
    def run(self, selection: Selection, timeout_s: float | None = None) -> TestRun: ...
    def diff(self, reverse: bool = False) -> str: ...
    def read_files(self, paths: list[str]) -> dict[str, str | None]: ...
