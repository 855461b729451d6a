"""Grading's guard for the Node and Go runners, against real adversarial patches on the small
fixtures (in Docker): each patch edits only library code, is shown to make FAIL_TO_PASS pass when
applied with no grading around it, and is then graded: not resolved, ``tampered`` naming what the
guard saw. The gold patch still resolves under the guard, with nothing seen."""

from __future__ import annotations

import pytest

from tests.verifiers.langs.adversary import guard_attacks
from verifiers.grade import grade_patch, image_test_cmd
from verifiers.runner import Selection, runner_for
from verifiers.sandbox import run_tests

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_gold_resolves_under_the_guard(docker_client, lang_task):
    _fx, t = lang_task
    res = grade_patch(docker_client, t, t.patch)
    assert res.resolved and not res.tampered, (res.tampered, res.error, res.test_output[-3000:])


def test_library_patches_that_fool_the_runner_resolve_nothing(docker_client, lang_task):
    fx, t = lang_task
    path, buggy = fx["bug"]
    tests = sorted(set(t.FAIL_TO_PASS) | set(t.PASS_TO_PASS))
    attacks = guard_attacks(fx["runner"], path, buggy, tests)
    if fx["runner"] == "jest":  # the fixture's jest suite asserts with core assert, not expect
        attacks.pop("expect_extend")
    assert attacks
    runner = runner_for(image_test_cmd(docker_client, t.image_name) or "")
    for name, (patch, seen) in attacks.items():
        # Real: applied with no grading around it, the patch makes FAIL_TO_PASS pass.
        run, _ = run_tests(docker_client, t.image_name,
                           "printf '%s' \"$TF_ATTACK\" > /tmp/attack.diff && git apply /tmp/attack.diff && "
                           + runner.command(Selection.of(tests)), env={"TF_ATTACK": patch})
        outcomes = run.outcomes()
        assert run.status == "ok" and all(outcomes.get(x) == "passed" for x in t.FAIL_TO_PASS), (name, run)
        # Graded: nothing resolves, and the report says what the guard saw.
        res = grade_patch(docker_client, t, patch)
        assert not res.resolved, (name, res.report())
        assert any(seen in what for what in res.tampered), (name, res.tampered, res.test_output[-2000:])
