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


# 2,600 tests with ids of ~80 bytes: over 200 KB, more than the 128 KiB one command line may hold.
_MANY = 2600
_LONG = "keeps a value in range, case number {:05d} of a list long enough to fill a command line"
MANY = {
    "node-test": {
        "package.json": '{\n  "name": "many-node-test",\n  "version": "1.0.0",\n  "private": true,\n'
                        '  "scripts": {"test": "node --test test/"}\n}\n',
        "src/calc.js": "function add(a, b) {\n  return a + b;\n}\n\nmodule.exports = { add };\n",
        "test/many.test.js": (
            "const test = require('node:test');\nconst assert = require('node:assert');\n"
            "const { add } = require('../src/calc');\n\n"
            "test.it('adds', () => {\n  assert.strictEqual(add(2, 3), 5);\n});\n"
            f"for (let i = 0; i < {_MANY}; i++) {{\n"
            f"  test.it('{_LONG.split('{')[0]}' + String(i).padStart(5, '0') + '{_LONG.split('}')[1]}',"
            " () => {\n    assert.strictEqual(add(0, 0), 0);\n  });\n}\n"),
    },
    "go": {
        "go.mod": "module example.com/many\n\ngo 1.19\n",
        "calc.go": "package many\n\n// Add adds.\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
        "calc_test.go": (
            'package many\n\nimport (\n\t"fmt"\n\t"testing"\n)\n\n'
            'func TestAdd(t *testing.T) {\n\tif Add(2, 3) != 5 {\n\t\tt.Fatal("2+3")\n\t}\n}\n\n'
            f'func TestMany(t *testing.T) {{\n\tfor i := 0; i < {_MANY}; i++ {{\n'
            f'\t\tt.Run(fmt.Sprintf("{_LONG.replace("{:05d}", "%05d")}", i), func(t *testing.T) {{\n'
            '\t\t\tif Add(0, 0) != 0 {\n\t\t\t\tt.Fatal("0+0")\n\t\t\t}\n\t\t})\n\t}\n}\n'),
    },
}


@pytest.mark.parametrize("runner", sorted(MANY))
def test_a_task_with_more_ids_than_a_command_line_holds_grades(docker_client, tmp_path, runner):
    """Grading passes the ids as a file for every runner (``Selection.ids_file``): with 2,600
    PASS_TO_PASS ids of ~80 bytes spelled in the command, bash was never started (E2BIG) and no
    patch could resolve such a task, the gold patch included."""
    from factory.repo import checkout
    from factory.schema import Candidate, RepoSpec
    from tests.conftest import make_repo
    from verifiers.baseline import run_baseline
    from verifiers.images import build_env_image
    from verifiers.validate import ValidateConfig, validate_candidates

    files = MANY[runner]
    make_repo(tmp_path, files)
    co = checkout(RepoSpec(source=str(tmp_path)))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1)
    assert base.summary().outcomes.get("passed", 0) >= _MANY + 1
    src = "src/calc.js" if runner == "node-test" else "calc.go"
    bug = bug_patch(tmp_path, src, files[src].replace("a + b", "a - b"))
    tasks = []
    vals = validate_candidates(docker_client, env, base.entries, [Candidate("many", co.key, co.commit, "mutation", bug)],
                               ValidateConfig(workers=1, strategy="full"), on_result=lambda v, t: tasks.append(t))
    task = tasks[0]
    assert task is not None, (vals[0].verdict, vals[0].reason, vals[0].detail)
    assert len(task.PASS_TO_PASS) >= _MANY and sum(len(t) + 1 for t in task.PASS_TO_PASS) > 128 * 1024
    gold = grade_patch(docker_client, task, task.patch)
    assert gold.resolved and len(gold.p2p_success) == len(task.PASS_TO_PASS), gold.report()
    assert not grade_patch(docker_client, task, "").resolved
