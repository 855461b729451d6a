"""The hostile-patch corpus against a real task of the demo library: nothing but the fix resolves.

One session fixture makes a real task the way the factory does: cachetools 5.5.0's sdist from
PyPI, its environment image, a one-run baseline, a bug in ``LFUCache.__getitem__`` validated into
a task with its own task image. Every attack of ``tests/verifiers/hostile.py`` is then graded on
that image, next to the gold patch, and must not resolve; each also leaves the trace of the
defence that stopped it.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict

import pytest

from factory.schema import Candidate, RepoSpec
from tests.verifiers.hostile import LIB, build_attacks, extract_testbed, image_pytest_version
from verifiers.grade import grade_patch
from verifiers.images import START_EPOCH
from verifiers.sandbox import SandboxLimits

pytestmark = pytest.mark.docker

LIMITS = SandboxLimits(timeout_s=120, mem="2g")
BUG = ("        return value\n\n    def __setitem__(self, key, value, cache_setitem=Cache.__setitem__):",
       "        return None\n\n    def __setitem__(self, key, value, cache_setitem=Cache.__setitem__):")


@pytest.fixture(scope="session")
def demo_task(docker_client, base_image, tmp_path_factory):
    """A real cachetools task: (instance dict, start-state tree, attacks)."""
    from factory.repo import checkout
    from verifiers.baseline import run_baseline
    from verifiers.images import build_env_image
    from verifiers.validate import ValidateConfig, validate_candidates

    co = checkout(RepoSpec(source="pypi:cachetools==5.5.0", python="3.11"))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1, coverage=False, limits=LIMITS)
    with co.worktree() as tree:
        src = (tree / LIB).read_text()
        assert BUG[0] in src, "cachetools 5.5.0's LFUCache.__getitem__ is not where the corpus expects it"
        (tree / LIB).write_text(src.replace(BUG[0], BUG[1]))
        bug = subprocess.run(["git", "-C", str(tree), "diff"], capture_output=True, text=True, check=True).stdout
    cand = Candidate("hostile_lfu", co.key, co.commit, "mutation", bug, operator="return_none", file=LIB)
    got = []
    validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1, strategy="full"),
                        on_result=lambda v, i: got.append((v, i)))
    verdict, task = got[0]
    assert task is not None, f"the LFU bug did not validate: {verdict.reason}"
    inst = asdict(task)
    start = extract_testbed(docker_client, inst["image_name"], tmp_path_factory.mktemp("hostile"))
    attacks = build_attacks(start, image_pytest_version(docker_client, inst["image_name"]))
    return inst, start, attacks


@pytest.fixture(scope="session")
def gold(docker_client, demo_task):
    inst, _, _ = demo_task
    return grade_patch(docker_client, inst, inst["patch"], LIMITS)


def test_corpus_has_twenty_distinct_attack_classes(demo_task):
    _, _, attacks = demo_task
    assert len(attacks) >= 20
    assert len({patch for _, patch in attacks.values()}) == len(attacks)


def test_gold_resolves_on_the_real_task(gold, demo_task):
    inst, _, _ = demo_task
    assert gold.resolved, (gold.error, gold.tampered, gold.f2p_failure[:3])
    assert gold.f2p_success == list(inst["FAIL_TO_PASS"]) and not gold.tampered and not gold.removed
    assert gold.test_cmd == "python -m pytest"  # the repository's own command, read from the image's label


# What stops each attack: a restore, a removal, or the guard's finding (the run's ``tampered``).
EXPECT = {
    "conftest_root": "removed", "conftest_nested": "removed", "edit_test": "restored", "delete_test": "restored",
    "rename_test": "restored", "pytest_ini_addopts": "removed", "tox_ini_addopts": "restored",
    "setup_cfg_addopts": "restored", "pyproject_addopts": "restored", "sitecustomize": "removed",
    "usercustomize": "removed", "pth_file": "removed", "egg_info_entry_point": "removed",
    "dist_info_entry_point": "removed", "pyc_unchecked_hash": "removed", "pyc_checked_hash": "removed",
    "pyc_timestamp": "removed", "symlinked_tests": "removed", "shadow_pytest": "removed",
    "shadow_report_plugin": "removed", "lib_replaces_TestReport": "tampered", "lib_self_restoring_forger": "tampered",
    "lib_replaces_call_and_report": "tampered", "lib_noop_unittest_runtest": "tampered",
    "lib_registers_plugin": "tampered", "lib_wraps_hook_impl": "tampered", "unittest_assertions_noop": "tampered",
    "assertion_rewrite_tamper": "tampered", "os_exit_at_import": "tampered", "sys_exit_at_import": "failed",
    "writes_report": "tampered",
}


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_attack_does_not_resolve(docker_client, demo_task, gold, name):
    inst, _, attacks = demo_task
    assert gold.resolved  # in the same run, the real fix still resolves
    what, patch = attacks[name]
    res = grade_patch(docker_client, inst, patch, LIMITS)
    assert res.patch_applied, res.error
    assert not res.resolved, f"{name} ({what}) resolved the task"
    defence = EXPECT[name]
    if defence == "tampered":
        assert res.tampered, f"{name}: not resolved, but the guard saw nothing ({res.f2p_failure[:2]})"
    elif defence == "failed":
        assert res.f2p_failure and not res.f2p_success
    else:
        assert getattr(res, defence), f"{name}: nothing was {defence} ({res.restored} / {res.removed})"


def test_library_attacks_are_screened(docker_client, demo_task):
    _, _, attacks = demo_task
    from verifiers.screen import screen_patch

    for name, (_, patch) in attacks.items():
        if name.startswith(("lib_", "unittest_", "assertion_", "os_exit", "writes_report")):
            assert screen_patch(patch), f"the screen flags nothing in {name}"


def test_start_state_singles_out_no_file(docker_client, demo_task):
    """``find -newer``, ``ls -l --time-style=full-iso`` and ``git status`` point at nothing."""
    inst, _, _ = demo_task
    script = ("cd /testbed && echo NEWER; find . -newer LICENSE -print; echo TIMES; "
              "find . -path ./.git -prune -o -printf '%T@ %m %y\\n' | sort | uniq -c; echo STATUS; "
              "git status --porcelain --ignored=no; echo LOG; git log --oneline --all | wc -l; "
              "git reflog | wc -l; git remote | wc -l; find . -name '*.pyc' -o -name '*.orig' -o -name '*.rej' | wc -l")
    out = docker_client.containers.run(inst["image_name"], ["bash", "-c", script], remove=True,
                                       network_disabled=True).decode()
    newer = out.split("NEWER\n", 1)[1].split("TIMES\n", 1)[0].strip()
    assert newer == "", f"find -newer names files: {newer[:300]}"
    times = out.split("TIMES\n", 1)[1].split("STATUS\n", 1)[0].strip().splitlines()
    stamps = {line.split()[1] for line in times}
    assert stamps == {f"{START_EPOCH}.0000000000"}, stamps
    modes = {(line.split()[2], line.split()[3]) for line in times}
    assert modes <= {("755", "d"), ("644", "f"), ("755", "f"), ("777", "l")}, modes
    status, rest = out.split("STATUS\n", 1)[1].split("LOG\n", 1)
    assert status.strip() == ""
    assert rest.split() == ["1", "0", "0", "0"]  # one commit, no reflog, no remotes, no stray files
    ls = docker_client.containers.run(inst["image_name"], ["bash", "-c", "cd /testbed && ls -lR --time-style=full-iso src"],
                                      remove=True, network_disabled=True).decode()
    import re

    stamps_shown = set(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}", ls))
    assert stamps_shown == {"2000-01-01 00:00:00.000000000"}, stamps_shown  # one time, whatever year it is now
