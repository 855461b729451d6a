"""The baseline: what the clean repository's suite does, measured well enough to trust.

A collection pass fixes the set of node ids; ``reruns`` full runs give each test a stable outcome
or mark it ``flaky``; one more run under coverage.py with a context per test gives the coverage
map (which tests execute which lines), for the mutators and for test selection.

Rules: a collected test missing from a run's results counts as failed in that run; every node
id in the baseline is one that collection listed (and ``pytest --collect-only -q`` printed); a
run that did not finish (timeout, OOM, infrastructure) aborts the baseline with its reason
rather than being read as test outcomes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from factory.errors import BaselineError
from factory.schema import BaselineEntry, BaselineSummary, CoverageEntry, TestRun
from verifiers.runner import Selection, TestRunner, runner_for
from verifiers.sandbox import SandboxLimits, SessionReport, run_tests

__all__ = ["Baseline", "aggregate", "run_baseline", "stable_passing"]


@dataclass
class Baseline:
    entries: list[BaselineEntry]
    coverage: list[CoverageEntry]
    runs: list[TestRun] = field(default_factory=list)
    collect_wall_s: float = 0.0
    coverage_wall_s: float = 0.0
    collect_only_q: list[str] = field(default_factory=list)
    collect_errors: list[tuple[str, str]] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)  # run-reported ids collection did not list (aggregate)

    def summary(self) -> BaselineSummary:
        counts: dict[str, int] = {}
        for e in self.entries:
            counts[e.outcome] = counts.get(e.outcome, 0) + 1
        return BaselineSummary(
            num_tests=len(self.entries), outcomes=counts, num_flaky=sum(e.flaky for e in self.entries),
            run_wall_s=tuple(round(r.wall_s, 3) for r in self.runs),
            suite_test_s=tuple(round(sum(t.duration_s for t in r.results), 3) for r in self.runs),
            collect_wall_s=round(self.collect_wall_s, 3), coverage_wall_s=round(self.coverage_wall_s, 3),
            coverage_lines=len(self.coverage), collect_errors=tuple(n for n, _ in self.collect_errors),
            run_notes=tuple(r.reason for r in self.runs if r.reason), renamed_ids=tuple(self.renamed[:20]),
            num_renamed=len(self.renamed))


def stable_passing(entries: list[BaselineEntry]) -> set[str]:
    return {e.nodeid for e in entries if e.outcome == "passed" and not e.flaky}


def _collect_only_q(stdout: str) -> list[str]:
    """Node ids as ``pytest --collect-only -q`` prints them: one per line, before the summary."""
    out = []
    for line in stdout.splitlines():
        if not line.strip():
            break
        if "::" in line or line.endswith(".py"):
            out.append(line)
    return out


def run_baseline(client, image: str, test_cmd: str, *, reruns: int = 3, coverage: bool = True,
                 paths: tuple[str, ...] = (), limits: SandboxLimits = SandboxLimits(),
                 progress: Callable[[str], None] = lambda _msg: None, runner: TestRunner | None = None) -> Baseline:
    """Collect, run the suite ``reruns`` times, and map coverage. BaselineError when untrustworthy.

    The sessions are ``runner``'s (default: pytest with ``test_cmd``), like validation's and grading's.
    """
    if reruns < 1:
        raise BaselineError("--reruns must be at least 1", reason="bad_config")
    runner = runner or runner_for(test_cmd)
    suite = runner.command(Selection(paths=tuple(paths)))
    progress("collecting")
    collect, crep = run_tests(client, image, runner.command(Selection(paths=tuple(paths), collect_only=True)),
                              limits=limits, keep_stdout=True)
    _check_status(collect, "collection")
    collected = list(collect.collected)
    printed = _collect_only_q(crep.stdout)
    if printed != collected:
        missing = sorted(set(collected) ^ set(printed))[:3]
        raise BaselineError(f"node ids from the report differ from `pytest --collect-only -q`: {missing}",
                            reason="nodeid_mismatch")

    runs: list[TestRun] = []
    for i in range(reruns):
        progress(f"full run {i + 1}/{reruns}")
        run, _ = run_tests(client, image, suite, limits=limits)
        _check_status(run, f"run {i + 1}")
        runs.append(run)

    entries = aggregate(collected, runs)
    renamed = renamed_ids(collected, runs)
    if not any(e.outcome == "passed" for e in entries):
        first = next((r for r in runs[0].results if r.message), None)
        hint = f"; first failure: {first.nodeid}: {first.message.splitlines()[0][:160]}" if first else ""
        raise BaselineError(f"no test passes on the clean repository ({len(entries)} collected){hint}",
                            reason="no_passing_tests")

    cov_entries: list[CoverageEntry] = []
    cov_wall = 0.0
    if coverage:
        progress("coverage run")
        cov_run, cov_rep = run_tests(client, image, suite, limits=limits, env={"TF_COVERAGE": "1"})
        _check_status(cov_run, "coverage run")
        cov_wall = cov_run.wall_s
        cov_entries = _coverage_entries(cov_rep)
    return Baseline(entries=entries, coverage=cov_entries, runs=runs, collect_wall_s=collect.wall_s,
                    coverage_wall_s=cov_wall, collect_only_q=printed, collect_errors=crep.collect_errors,
                    renamed=renamed)


def aggregate(collected: list[str], runs: list[TestRun]) -> list[BaselineEntry]:
    """One entry per collected test: its outcome if every run agrees, else ``flaky``.

    A collected test missing from a run's results counts as failed in that run. A result for a test
    that collection did not list is refused (the runs and collection disagree) unless it differs
    from collected ids only inside the parameter brackets: a parameter id built from a random value
    (rdflib names its skolemization cases after fresh blank nodes, ``test_x[N4522…]``) names the
    same test differently in every process. No list can name such a test, so the collected ids of
    that function that a run did not report are ``flaky``: they are never FAIL_TO_PASS or
    PASS_TO_PASS, and the rest of the suite goes on (``renamed_ids`` lists them).
    """
    unknown = renamed_ids(collected, runs)
    parametrized = {_function_of(n) for n in collected if "[" in n}
    mismatched = sorted(n for n in unknown if "[" not in n or _function_of(n) not in parametrized)
    if mismatched:
        raise BaselineError(f"runs reported tests that collection did not list: {mismatched[:3]}",
                            reason="nodeid_mismatch")
    renamed = {_function_of(n) for n in unknown}
    by_run = [run.by_nodeid() for run in runs]
    entries: list[BaselineEntry] = []
    for nodeid in collected:
        got = [m.get(nodeid) for m in by_run]
        outs = [r.outcome if r else "failed" for r in got]
        durs = [r.duration_s if r else 0.0 for r in got]
        flaky = len(set(outs)) > 1 or ("[" in nodeid and _function_of(nodeid) in renamed and None in got)
        entries.append(BaselineEntry(nodeid=nodeid, outcome="flaky" if flaky else outs[0],
                                     duration_s=sum(durs) / len(durs), flaky=flaky, outcomes=tuple(outs)))
    return entries


def renamed_ids(collected: list[str], runs: list[TestRun]) -> list[str]:
    """The ids runs reported that collection did not list (``aggregate`` accepts them only as a
    parametrized test's random ids): for the user, who should know why those tests count as flaky."""
    return sorted({r.nodeid for run in runs for r in run.results} - set(collected))


def _function_of(nodeid: str) -> str:
    return nodeid.split("[", 1)[0]


def _check_status(run: TestRun, what: str) -> None:
    if run.status == "ok":
        return
    reason = {"no_tests": "no_tests", "collection_error": "collection_error", "timeout": "timeout",
              "oom": "oom", "aborted": "run_aborted"}.get(run.status, "infra_error")
    err = BaselineError(f"{what}: {run.reason or run.status}", reason=reason)
    err.log_tail = run.log_tail  # the cause is often only in the log (verifiers.failures.explain_run)
    raise err


def _coverage_entries(rep: SessionReport) -> list[CoverageEntry]:
    if not rep.coverage:
        return []
    out = []
    for path in sorted(rep.coverage):
        for line, nodeids in sorted(rep.coverage[path].items()):
            out.append(CoverageEntry(file=path, line=line, nodeids=tuple(sorted(set(nodeids)))))
    return out
