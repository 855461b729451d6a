"""Each runner of another language end to end on a small project written here (in Docker):
the environment image from Debian's toolchain and the npm registry, a baseline whose counts are
the runner's own, a bug that validates into a task, and grading: gold resolves, the empty patch
and edits to the tests or the runner's configuration resolve nothing."""

from __future__ import annotations

import dataclasses

import pytest

from tests.conftest import bug_patch
from tests.verifiers.langs.adversary import cheat_patch
from verifiers.grade import grade_patch, image_test_cmd
from verifiers.runner import Selection, runner_for
from verifiers.sandbox import run_tests

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_the_baseline_matches_the_runners_own_counts(lang_project):
    fx, _root, _co, env, base = lang_project
    assert runner_for(env.spec.test_cmd).name == fx["runner"]
    assert env.spec.language in ("javascript", "typescript", "go")
    assert base.summary().outcomes == fx["counts"], [(e.nodeid, e.outcome) for e in base.entries]
    assert fx["breaks"] in {e.nodeid for e in base.entries}
    assert base.summary().num_flaky == 0
    # Coverage: the source file's lines are attributed to the tests (never to node_modules).
    files = {c.file for c in base.coverage}
    assert fx["bug"][0] in files and not any("node_modules" in f for f in files)


def test_a_bug_validates_into_a_task_that_grades_honestly(docker_client, lang_project, lang_task):
    _fx, root, _co, _env, _base = lang_project
    fx, task = lang_task  # validated and accepted (tests/verifiers/conftest.py)
    assert fx["breaks"] in task.FAIL_TO_PASS and task.PASS_TO_PASS

    gold = grade_patch(docker_client, task, task.patch)
    assert gold.resolved, gold.report()
    empty = grade_patch(docker_client, task, "")
    assert not empty.resolved

    # Editing the failing test so it cannot fail: the test file is restored, nothing resolves.
    test_file = fx["breaks"].split("::", 1)[0]
    if fx["runner"] == "go":
        test_file = "calc_test.go"
        weakened = fx["files"][test_file].replace('t.Fatal("2+3")', "")
    elif fx["runner"] == "vitest":
        weakened = fx["files"][test_file].replace("expect(add(2, 3)).toBe(5);", "")
    else:
        weakened = fx["files"][test_file].replace("assert.strictEqual(add(2, 3), 5);", "")
    assert weakened != fx["files"][test_file]
    res = grade_patch(docker_client, task, bug_patch(root, test_file, weakened))
    assert not res.resolved and test_file in res.restored, res.report()

    # Editing the runner's configuration resolves nothing either. For jest, mocha and vitest the
    # edit is a real cheat: the configuration loads a setup module that applies the gold patch while
    # the tests run, so left in place it passes FAIL_TO_PASS (checked in a fresh container with no
    # grading); node:test and Go have no configuration that runs code: their edit is inert.
    if fx["runner"] in ("jest", "mocha", "vitest"):
        cheat, config = cheat_patch(fx["runner"], task.patch, lambda p: fx["files"].get(p))
        env = {"TF_CHEAT": cheat}
        run, _ = run_tests(docker_client, task.image_name,
                           "printf '%s' \"$TF_CHEAT\" > /tmp/cheat.diff && git apply /tmp/cheat.diff && "
                           + runner_for(image_test_cmd(docker_client, task.image_name) or "")
                           .command(Selection.of(list(task.FAIL_TO_PASS))), env=env)
        assert run.status == "ok" and all(run.outcomes().get(t) == "passed" for t in task.FAIL_TO_PASS), run
    else:
        config = "go.mod" if fx["runner"] == "go" else "package.json"
        if config == "go.mod":
            hacked = fx["files"][config] + "\nreplace example.com/calc => ./\n"
        else:
            hacked = fx["files"][config].replace('"private": true', '"private": true, "jest": {"testMatch": []}')
        cheat = bug_patch(root, config, hacked)
    res = grade_patch(docker_client, task, cheat)
    assert not res.resolved and config in res.restored, res.report()

    # From outside: a fresh container of the task image fails before the gold patch, passes after
    # (what grade_patch did above, with the gold patch and with none).
    assert dataclasses.asdict(task)["image_name"].startswith("taskfactory/task:")
