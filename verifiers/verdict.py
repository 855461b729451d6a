"""The verdict rules, as pure functions of the baseline and the runs on a candidate.

FAIL_TO_PASS: stable-passing in the baseline, failing or erroring with the bug (in every run
that checked it). PASS_TO_PASS: stable-passing in the baseline and passing with the bug. Flaky
baseline tests are in neither list; a test missing from a run's results counts as failed; every
node id in either list is one that the baseline collected.
"""

from __future__ import annotations

from dataclasses import dataclass

from factory import defaults
from factory.schema import BaselineEntry, TestRun
from verifiers.sandbox import run_problem

__all__ = ["Judgement", "VerdictRules", "judge", "run_problem", "REASONS"]

REASONS = {
    "accepted": "has FAIL_TO_PASS tests",
    "no_f2p": "no stable-passing test fails with the bug",
    "too_many_f2p": "more FAIL_TO_PASS tests than allowed",
    "patch_does_not_apply": "the patch does not apply to the base commit",
    "collection_breaks": "the bug breaks test collection (import error everywhere)",
    "timeout": "a test run with the bug overstayed its wall-clock limit (a hang: a run that already shows too many "
               "failures is too_many_f2p)",
    "oom": "a test run with the bug ran out of memory",
    "f2p_not_confirmed": "the failing tests did not fail again in the confirmation run",
    "infra_error": "infrastructure failure (retried), not the candidate's fault",
    "exit_code_disagrees": "the test command's exit code contradicts its report",
    "run_aborted": "the test session ended early (pytest exit 2-4: interrupted, internal or usage error)",
    # pull requests (verifiers.validate.judge_pr)
    "breaks_passing_tests": "the PR's fix makes a test that passed at its base fail",
    "test_patch_does_not_apply": "the PR's test patch does not apply at its base",
    "base_unreachable": "the PR's base cannot be reached from its install group's snapshot",
    "base_collection_breaks": "the suite does not collect at the PR's base",
    "base_timeout": "the suite hangs at the PR's base",
    "base_oom": "the suite runs out of memory at the PR's base",
    "base_run_aborted": "the suite's session ends early at the PR's base",
    "base_exit_code_disagrees": "at the PR's base, the test command's exit code contradicts its report",
}


@dataclass(frozen=True)
class VerdictRules:
    max_f2p: int = defaults.MAX_F2P  # more than this many F2P tests: the bug is too blunt to be a task
    max_f2p_fraction: float = 0.5  # ... or it breaks more than this share of the suite
    min_f2p: int = 1


@dataclass(frozen=True)
class Judgement:
    verdict: str  # accepted | rejected | error
    reason: str  # a key of REASONS
    fail_to_pass: tuple[str, ...] = ()
    pass_to_pass: tuple[str, ...] = ()


def judge(baseline: list[BaselineEntry], run: TestRun, scope: frozenset[str] | set[str] | None = None,
          rules: VerdictRules = VerdictRules()) -> Judgement:
    """F2P and P2P of one run with the bug against the baseline.

    ``scope`` is the set of tests the run was meant to execute (None: the whole suite). A test in
    scope that the run did not report — not collected any more, or never finished — failed.
    """
    problem = run_problem(run)
    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    if problem == "timeout":
        # A suite slowed down by many failures is not a hang: when the tests it finished already
        # show more FAIL_TO_PASS than allowed, that is the verdict.
        failing = tuple(sorted(r.nodeid for r in run.results
                               if r.nodeid in stable and r.outcome in ("failed", "error")))
        if len(failing) > rules.max_f2p or (len(stable) > 1 and len(failing) > rules.max_f2p_fraction * len(stable)):
            return Judgement("rejected", "too_many_f2p", failing)
    if problem is not None:
        return Judgement("error" if problem == "infra_error" else "rejected", problem)
    full = scope is None
    considered = stable if full else stable & set(scope)
    got = {r.nodeid: r.outcome for r in run.results}
    f2p = tuple(sorted(n for n in considered if got.get(n, "failed") in ("failed", "error")))
    p2p = tuple(sorted(n for n in considered if got.get(n) == "passed"))
    if len(f2p) < rules.min_f2p:
        return Judgement("rejected", "no_f2p", (), p2p)
    if full and len(f2p) == len(stable) and len(stable) > 1:
        return Judgement("rejected", "collection_breaks", f2p, p2p)
    if len(f2p) > rules.max_f2p or (full and len(f2p) > rules.max_f2p_fraction * len(stable)):
        return Judgement("rejected", "too_many_f2p", f2p, p2p)
    return Judgement("accepted", "accepted", f2p, p2p)
