"""Validation's verdict rules through a scripted box: every reason in ``verdict.REASONS`` reached,
with no Docker. The code under test is the real ``judge_candidate`` / ``judge_pr`` /
``_judge_with_retries``; only the box (where patches land and sessions run) is scripted."""

from __future__ import annotations

import pytest

from factory.schema import BaselineEntry, Candidate, EnvImage, EnvSpec
from verifiers.fake import FakeBox, fake_run
from verifiers.problem import TemplateWriter
from verifiers.runner import Selection
from verifiers.sandbox import run_problem
from verifiers.validate import ValidateConfig, _Ctx, _judge_with_retries
from verifiers.verdict import REASONS, VerdictRules

TESTS = ("t.py::a", "t.py::b", "t.py::c", "t.py::d")
BASE = {t: "passed" for t in TESTS}
ENV = EnvImage("img:tag", "sha256:x", EnvSpec("repo", "c0ffee", "base", "3.11", (), (), "python -m pytest"), 0.0, True)
BASELINE = [BaselineEntry(nodeid=t, outcome="passed", duration_s=0.1, flaky=False) for t in TESTS]


def ctx(strategy: str = "selected", rules: VerdictRules = VerdictRules(max_f2p=2)) -> _Ctx:
    cfg = ValidateConfig(strategy=strategy, workers=1, rules=rules, build_task_images=False, retries=1,
                         retry_backoff_s=0.0)
    return _Ctx(ENV, BASELINE, set(TESTS), cfg, TemplateWriter(), "repo")


def judged(script, cand: Candidate, c: _Ctx | None = None, **box) -> tuple[str, str]:
    val, inst = _judge_with_retries(FakeBox(script, **box), cand, c or ctx())
    assert (inst is not None) == (val.verdict == "accepted")
    return val.verdict, val.reason


def mutation(patch: str = "bug") -> Candidate:
    return Candidate("c1", "repo", "c0ffee", "mutation", patch, covering_tests=("t.py::a", "t.py::b"))


def pr() -> Candidate:
    return Candidate("p1", "repo", "c0ffee", "pr", "fix", test_patch="tests", pr_number=7)


def with_bug(**failing):
    """A world where the bug makes the named tests fail (every other test passes)."""
    def script(applied, sel: Selection, i: int):
        outs = dict(BASE)
        if "bug" in applied:
            outs.update({t: o for t, o in failing.items()})
        scope = TESTS if sel.tests is None else sel.tests
        return fake_run({t: outs[t] for t in scope})
    return script


def status_world(status: str, **kw):
    return lambda applied, sel, i: fake_run({t: "failed" for t in TESTS}, status=status, **kw)


def mutation_reasons() -> dict[str, tuple[str, str]]:
    def not_confirmed(applied, sel, i):
        # fails in the full run, passes when run again on its own
        outs = dict(BASE)
        if sel.tests is None:
            outs["t.py::c"] = "failed"
        return fake_run({t: outs[t] for t in (TESTS if sel.tests is None else sel.tests)})

    return {
        "accepted": judged(with_bug(**{"t.py::a": "failed"}), mutation()),
        "no_f2p": judged(with_bug(), mutation()),
        "too_many_f2p": judged(with_bug(**{t: "failed" for t in TESTS[:3]}), mutation(), ctx(strategy="full")),
        "patch_does_not_apply": judged(with_bug(), mutation(), refuse=frozenset({"bug"})),
        "collection_breaks": judged(lambda a, s, i: fake_run({}, collected=(), collect_errors=1), mutation()),
        "timeout": judged(status_world("timeout"), mutation()),
        "oom": judged(status_world("oom"), mutation()),
        "f2p_not_confirmed": judged(not_confirmed, mutation(), ctx(strategy="full")),
        "infra_error": judged(with_bug(), mutation(), fault=True),
        "exit_code_disagrees": judged(lambda a, s, i: fake_run({"t.py::a": "failed", "t.py::b": "passed"}, exit_code=0),
                                      mutation()),
        "run_aborted": judged(lambda a, s, i: fake_run({"t.py::a": "failed"}, exit_code=2), mutation()),
    }


def pr_world(*, base=None, with_tests=None, fixed=None, base_status=None, refuse=()):
    """Three sessions: at base, with the PR's tests, with its fix (by what is applied)."""
    def script(applied, sel, i):
        if "fix" in applied:
            return fake_run(fixed or {**BASE, "t.py::new": "passed"})
        if "tests" in applied:
            return fake_run(with_tests or {**BASE, "t.py::new": "failed"})
        if base_status:
            return base_status()
        return fake_run(base or BASE)
    return script


def pr_reasons() -> dict[str, tuple[str, str]]:
    def start_refused(applied, sel, i):
        return fake_run(BASE)

    c = ctx()
    c.start_patches["p1"] = "start"
    return {
        "pr_accepted": judged(pr_world(), pr()),
        "breaks_passing_tests": judged(pr_world(fixed={**BASE, "t.py::a": "failed", "t.py::new": "passed"}), pr()),
        "test_patch_does_not_apply": judged(pr_world(), pr(), refuse=frozenset({"tests"})),
        "pr_patch_does_not_apply": judged(pr_world(), pr(), refuse=frozenset({"fix"})),
        "base_unreachable": judged(start_refused, pr(), c, refuse=frozenset({"start"})),
        "base_collection_breaks": judged(pr_world(base_status=lambda: fake_run({}, collected=(), collect_errors=1)), pr()),
        "base_timeout": judged(pr_world(base_status=lambda: fake_run({}, status="timeout")), pr()),
        "base_oom": judged(pr_world(base_status=lambda: fake_run({}, status="oom")), pr()),
        "base_run_aborted": judged(pr_world(base_status=lambda: fake_run(BASE, exit_code=3)), pr()),
        "base_exit_code_disagrees": judged(pr_world(base_status=lambda: fake_run({"t.py::a": "failed"}, exit_code=0)),
                                           pr()),
        "pr_no_f2p": judged(pr_world(with_tests={**BASE, "t.py::new": "passed"}), pr()),
        "pr_too_many_f2p": judged(pr_world(with_tests={**{t: "passed" for t in TESTS}, "t.py::n1": "failed",
                                                       "t.py::n2": "failed", "t.py::n3": "failed"},
                                           fixed={**BASE, "t.py::n1": "passed", "t.py::n2": "passed",
                                                  "t.py::n3": "passed"}), pr()),
    }


def test_every_reason_is_reached_without_docker():
    got = {**mutation_reasons(), **pr_reasons()}
    for key, (verdict, reason) in got.items():
        want = key.removeprefix("pr_")
        assert reason == want, f"{key}: got {verdict}/{reason}"
        assert verdict == ("accepted" if want == "accepted" else "error" if want == "infra_error" else "rejected")
    assert {r for _, r in got.values()} == set(REASONS)


def test_selected_strategy_needs_one_small_run_for_a_candidate_nothing_fails():
    box = FakeBox(with_bug())
    val, _ = _judge_with_retries(box, mutation(), ctx())
    assert (val.verdict, val.reason, box.sessions) == ("rejected", "no_f2p", 1)


def test_infra_faults_are_retried_then_an_error_never_a_rejection():
    box = FakeBox(with_bug(**{"t.py::a": "failed"}), fault=True)
    val, inst = _judge_with_retries(box, mutation(), ctx())
    assert (val.verdict, val.reason, inst) == ("error", "infra_error", None) and box.restarts == 2  # retries=1


@pytest.mark.parametrize("code,reason", [(2, "run_aborted"), (3, "run_aborted"), (4, "run_aborted"),
                                         (0, None), (1, None)])
def test_exit_codes_two_to_four_are_never_judged(code, reason):
    outcomes = {"t.py::a": "failed"} if code == 1 else {"t.py::a": "passed"}
    assert run_problem(fake_run(outcomes, exit_code=code)) == reason


def test_a_report_that_contradicts_its_exit_code_is_not_judged():
    assert run_problem(fake_run({"t.py::a": "passed"}, exit_code=1)) == "exit_code_disagrees"
    assert run_problem(fake_run({"t.py::a": "failed"}, exit_code=0)) == "exit_code_disagrees"
    assert run_problem(fake_run({"t.py::a": "passed"}, exit_code=1, collect_errors=1)) is None


def test_a_conftest_the_bug_stops_importing_is_a_broken_collection_not_an_infra_fault(tmp_path):
    # Removing a @property can make a package fail at import; a conftest that imports it then
    # ends pytest with a usage error before any session (no report). Real pytest, real output.
    import subprocess
    import sys

    from verifiers.sandbox import SessionReport, classify

    (tmp_path / "pkg.py").write_text("class A:\n    def p(self):\n        return 1\n\n    @p.setter\n    def p(self, v):\n        pass\n")
    (tmp_path / "conftest.py").write_text("import pkg\n")
    (tmp_path / "test_a.py").write_text("def test_a():\n    assert True\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    run = classify(proc.returncode, 1.0, SessionReport(), proc.stdout + proc.stderr)
    assert run.status == "collection_error" and "conftest.py does not import" in run.reason, run.reason
    assert run_problem(run) == "collection_breaks"
    # With no such line, no report is still the infrastructure's fault (retried).
    assert classify(4, 1.0, SessionReport(), "docker: error during connect").status == "infra_error"
