"""Pull requests in a real git history become validated tasks with exact FAIL_TO_PASS."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.conftest import GIT_ENV, make_repo

pytestmark = pytest.mark.docker

BUGGY = "def mean(xs):\n    return sum(xs) / (len(xs) + 1)\n\n\ndef total(xs):\n    return sum(xs)\n"
FIXED = "def mean(xs):\n    return sum(xs) / len(xs)\n\n\ndef total(xs):\n    return sum(xs)\n"
OLD_TESTS = "from stats import total\n\n\ndef test_total():\n    assert total([1, 2, 3]) == 6\n"
NEW_TESTS = OLD_TESTS + "\n\ndef test_mean():\n    from stats import mean\n    assert mean([2, 4]) == 3\n"


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env={**os.environ, **GIT_ENV})


def _history(repo):
    make_repo(repo, {"stats.py": BUGGY, "tests/test_stats.py": OLD_TESTS, "README.md": "stats\n"})
    _git(repo, "checkout", "-q", "-b", "fix-mean")
    make_repo(repo, {"stats.py": FIXED, "tests/test_stats.py": NEW_TESTS}, message="Fix mean off by one")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "--no-ff", "-q", "-m", "Merge pull request #7 from dev/fix-mean\n\nFix mean", "fix-mean")
    make_repo(repo, {"README.md": "stats, documented\n"}, message="Docs only (#8)")


def _factory(*args):
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True)


def test_a_merged_fix_with_tests_becomes_a_task(tmp_path, docker_client, base_image):
    repo, run = tmp_path / "repo", tmp_path / "run"
    _history(repo)
    mined = _factory("mine", str(repo), "--run-dir", str(run))
    assert mined.returncode == 0, mined.stderr
    assert "with tests and code 1 → candidates 1" in mined.stdout.replace("\n", " ")
    (rd,) = list((run / "repos").iterdir())
    cands = pq.read_table(rd / "candidates.parquet").to_pylist()
    assert [(c["origin"], c["pr_number"]) for c in cands] == [("pr", 7)]
    assert "stats.py" in cands[0]["patch"] and "tests/test_stats.py" not in cands[0]["patch"]
    assert "test_mean" in cands[0]["test_patch"]

    val = _factory("validate", str(run), "--workers", "1", "--timeout", "60")
    assert val.returncode == 0, val.stderr
    (inst,) = pq.read_table(run / "instances.parquet").to_pylist()
    assert inst["source"] == "pr"
    assert inst["FAIL_TO_PASS"] == ["tests/test_stats.py::test_mean"]
    assert inst["PASS_TO_PASS"] == ["tests/test_stats.py::test_total"]
    assert inst["patch"] == cands[0]["patch"] and inst["test_patch"] == cands[0]["test_patch"]
    assert json.loads(inst["provenance"])["pr_number"] == 7

    # The task image starts at the PR's base: the bug is there, the new test is not, no history.
    probe = "grep -c 'len(xs) + 1' stats.py; grep -c test_mean tests/test_stats.py; git log --all --oneline | wc -l"
    out = docker_client.containers.run(inst["image_name"], ["bash", "-c", probe], remove=True,
                                       network_disabled=True).decode().split()
    assert out == ["1", "0", "1"]

    # Grading: the gold patch resolves it, an empty patch does not.
    preds = tmp_path / "preds.jsonl"
    preds.write_text(json.dumps({"instance_id": inst["instance_id"], "model_patch": inst["patch"],
                                 "model_name_or_path": "gold"}) + "\n")
    ev = _factory("evaluate", str(run / "instances.parquet"), str(preds), "--run-dir", str(run))
    assert ev.returncode == 0, ev.stderr
    assert json.loads((run / "evaluation" / "gold.json").read_text())["resolved_instances"] == 1


def test_a_merged_fix_mirrored_onto_head_becomes_a_task(tmp_path, docker_client, base_image):
    repo, run = tmp_path / "repo", tmp_path / "run"
    _history(repo)
    base = _factory("env", "baseline", str(repo), "--run-dir", str(run), "--reruns", "1")
    assert base.returncode == 0, base.stderr
    mined = _factory("mine", str(repo), "--run-dir", str(run), "--mirror")
    assert mined.returncode == 0, mined.stderr
    (rd,) = list((run / "repos").iterdir())
    (cand,) = pq.read_table(rd / "candidates.parquet").to_pylist()
    assert cand["origin"] == "pr_mirror" and "len(xs) + 1" in cand["patch"]  # the bug, back on HEAD
    val = _factory("validate", str(run), "--workers", "1")
    assert val.returncode == 0, val.stderr
    (inst,) = pq.read_table(run / "instances.parquet").to_pylist()
    assert inst["source"] == "pr_mirror"
    assert inst["FAIL_TO_PASS"] == ["tests/test_stats.py::test_mean"]
    assert inst["PASS_TO_PASS"] == ["tests/test_stats.py::test_total"]
    assert "-    return sum(xs) / (len(xs) + 1)" in inst["patch"]  # the gold patch undoes the bug


BROKEN_PYPROJECT = ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                    '[project]\nname = "stats"\nversion = "0.1"\ndependencies = ["taskfactory-no-such-package-19"]\n\n'
                    '[tool.setuptools]\npy-modules = ["stats"]\n')
GOOD_PYPROJECT = BROKEN_PYPROJECT.replace('"taskfactory-no-such-package-19"', "")
TOTAL_BUGGY = FIXED.replace("return sum(xs)\n", "return sum(xs) - 1\n")


def test_an_install_group_that_does_not_build_leaves_the_others_to_validate(tmp_path, docker_client, base_image):
    """A PR whose base cannot be installed gets an `error` verdict; PRs of other groups are judged."""
    repo, run = tmp_path / "repo", tmp_path / "run"
    make_repo(repo, {"stats.py": BUGGY.replace("return sum(xs)\n", "return sum(xs) - 1\n"),
                     "tests/test_stats.py": "def test_nothing():\n    pass\n", "pyproject.toml": BROKEN_PYPROJECT})
    _git(repo, "checkout", "-q", "-b", "fix-mean")
    make_repo(repo, {"stats.py": TOTAL_BUGGY, "tests/test_mean.py": NEW_TESTS.replace("test_total", "test_total_old")
                     .replace("assert total([1, 2, 3]) == 6", "pass")}, message="Fix mean")
    _git(repo, "checkout", "-q", "main")
    _git(repo, "merge", "--no-ff", "-q", "-m", "Fix mean (#3)", "fix-mean")
    make_repo(repo, {"pyproject.toml": GOOD_PYPROJECT}, message="Drop a dependency that does not exist")
    make_repo(repo, {"stats.py": FIXED, "tests/test_stats.py": OLD_TESTS}, message="Fix total (#7)")
    mined = _factory("mine", str(repo), "--run-dir", str(run))
    assert mined.returncode == 0, mined.stderr
    val = _factory("validate", str(run), "--workers", "1", "--timeout", "60")
    assert val.returncode == 0, val.stderr
    assert "no environment" in val.stderr and "env_build_failed 1" in val.stderr.replace("\n", " ")
    (rd,) = list((run / "repos").iterdir())
    verdicts = {json.loads(p.read_text())["validation"]["reason"] for p in (rd / "validations").glob("*.json")}
    assert verdicts == {"env_build_failed", "accepted"}
    (inst,) = pq.read_table(run / "instances.parquet").to_pylist()
    assert json.loads(inst["provenance"])["pr_number"] == 7
    assert inst["FAIL_TO_PASS"] == ["tests/test_stats.py::test_total"]
