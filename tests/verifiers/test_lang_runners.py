"""Each runner of another language end to end on a small project written here (in Docker):
the environment image from Debian's toolchain and the npm registry, a baseline whose counts are
the runner's own, a bug that validates into a task, and grading: gold resolves, the empty patch
and edits to the tests or the runner's configuration resolve nothing."""

from __future__ import annotations

import dataclasses

import pytest

from factory.repo import checkout
from factory.schema import Candidate, RepoSpec
from tests.conftest import bug_patch, make_repo
from tests.verifiers.lang_fixtures import ALL
from tests.verifiers.langs.adversary import cheat_patch
from verifiers.baseline import run_baseline
from verifiers.grade import grade_patch, image_test_cmd
from verifiers.images import build_env_image
from verifiers.runner import Selection, runner_for
from verifiers.sandbox import run_tests
from verifiers.validate import ValidateConfig, validate_candidates

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module", params=sorted(ALL))
def project(request, docker_client, tmp_path_factory):
    fx = ALL[request.param]
    root = tmp_path_factory.mktemp(f"lang-{request.param}")
    make_repo(root, fx["files"])
    co = checkout(RepoSpec(source=str(root)))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=2)
    return fx, root, co, env, base


def test_the_baseline_matches_the_runners_own_counts(project):
    fx, _root, _co, env, base = project
    assert runner_for(env.spec.test_cmd).name == fx["runner"]
    assert env.spec.language in ("javascript", "typescript", "go")
    assert base.summary().outcomes == fx["counts"], [(e.nodeid, e.outcome) for e in base.entries]
    assert fx["breaks"] in {e.nodeid for e in base.entries}
    assert base.summary().num_flaky == 0
    # Coverage: the source file's lines are attributed to the tests (never to node_modules).
    files = {c.file for c in base.coverage}
    assert fx["bug"][0] in files and not any("node_modules" in f for f in files)


def test_a_bug_validates_into_a_task_that_grades_honestly(docker_client, project):
    fx, root, co, env, base = project
    path, text = fx["bug"]
    cov = [c for c in base.coverage if c.file == path]
    cand = Candidate("bug1", co.key, co.commit, "mutation", bug_patch(root, path, text),
                     covering_tests=tuple(sorted({n for c in cov for n in c.nodeids})))
    got = []
    vals = validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1),
                               on_result=lambda v, i: got.append(i))
    assert vals[0].verdict == "accepted", vals[0]
    task = got[0]
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
