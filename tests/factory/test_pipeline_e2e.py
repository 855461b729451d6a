"""The whole pipeline through the ``factory`` command on a small real project."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.conftest import make_repo

pytestmark = pytest.mark.docker

LIB = '''\
def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def mean(xs):
    if not xs:
        raise ValueError("mean of nothing")
    return sum(xs) / len(xs)


def words(text):
    return [w.lower() for w in text.split() if w]
'''
TESTS = '''\
import pytest

from lib import clamp, mean, words


def test_clamp_low():
    assert clamp(-1, 0, 5) == 0


def test_clamp_high():
    assert clamp(9, 0, 5) == 5


def test_clamp_inside():
    assert clamp(3, 0, 5) == 3


def test_mean():
    assert mean([1, 2, 3]) == 2


def test_mean_empty():
    with pytest.raises(ValueError):
        mean([])


def test_words():
    assert words("Hello  World") == ["hello", "world"]
'''


def _factory(*args):
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True)


def test_config_to_dataset_then_combined_bugs(tmp_path, docker_client, base_image):
    repo, run = tmp_path / "lib", tmp_path / "run"
    make_repo(repo, {"lib.py": LIB, "test_lib.py": TESTS})
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"name: e2e\nrepos: [{repo}]\nbaseline: {{reruns: 2}}\nmutate: {{max_per_function: 3}}\n"
                   "validate: {workers: 2}\npublish: {test_fraction: 0}\n"
                   "stages: [env, baseline, mutate, validate, publish]\n")
    proc = _factory("run", str(cfg), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    (rd,) = list((run / "repos").iterdir())
    cands = pq.read_table(rd / "candidates.parquet").to_pylist()
    vals = {v["candidate_id"]: v for v in pq.read_table(rd / "validations.parquet").to_pylist()}
    assert cands and set(vals) == {c["candidate_id"] for c in cands}  # every candidate has a verdict
    instances = pq.read_table(run / "instances.parquet").to_pylist()
    assert instances and all(i["FAIL_TO_PASS"] for i in instances)
    assert {i["instance_id"].split("__")[1] for i in instances} == {k for k, v in vals.items() if v["verdict"] == "accepted"}
    assert list((run / "dataset" / "data").glob("train-*.parquet"))

    comb = _factory("mutate", str(repo), "--run-dir", str(run), "--combine")
    assert comb.returncode == 0, comb.stderr
    combined = [c for c in pq.read_table(rd / "candidates.parquet").to_pylist() if c["origin"] == "combined"]
    assert combined and all(len(c["parents"]) >= 2 for c in combined)
    again = _factory("validate", str(run), "--workers", "2")
    assert again.returncode == 0, again.stderr
    vals = {v["candidate_id"]: v for v in pq.read_table(rd / "validations.parquet").to_pylist()}
    assert all(c["candidate_id"] in vals for c in combined)
    # Re-running validate judges nothing again and loses nothing.
    before = sorted(p.name for p in (rd / "validations").iterdir())
    third = _factory("validate", str(run))
    assert third.returncode == 0 and "0 to go" in third.stderr
    assert sorted(p.name for p in (rd / "validations").iterdir()) == before
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["name"] == "e2e"


def test_run_every_stage_from_history_to_dataset(tmp_path, docker_client, base_image):
    """`factory run` with [env, baseline, mine, mutate, combine, validate, publish] on a repository
    whose history holds a merged pull request: one runner, no stage calling another."""
    from tests.miners.miners_gitrepo import GitRepo

    repo, run = GitRepo(tmp_path / "hist"), tmp_path / "run"
    buggy = LIB.replace("return sum(xs) / len(xs)", "return sum(xs) / (len(xs) + 1)")
    repo.commit("initial", {"lib.py": buggy, "test_lib.py": TESTS.replace(
        "def test_mean():\n    assert mean([1, 2, 3]) == 2\n", "")})
    repo.merge_pr(1, "Fix mean of a list", {"lib.py": LIB, "test_lib.py": TESTS})
    cfg = tmp_path / "all.yaml"
    cfg.write_text(f"name: all\nrepos: [{repo.path}]\nbaseline: {{reruns: 1}}\nmutate: {{max_per_function: 3}}\n"
                   "validate: {workers: 2}\npublish: {test_fraction: 0}\n"
                   "stages: [env, baseline, mine, mutate, combine, validate, publish]\n")
    proc = _factory("run", str(cfg), "--run-dir", str(run))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (rd,) = list((run / "repos").iterdir())
    cands = pq.read_table(rd / "candidates.parquet").to_pylist()
    assert {c["origin"] for c in cands} == {"pr", "mutation"}
    assert "combine" in proc.stderr and "no validated mutations yet" in proc.stderr  # a skip, not a failure
    instances = pq.read_table(run / "instances.parquet").to_pylist()
    assert {i["source"] for i in instances} == {"pr", "mutation"}
    pr_task = next(i for i in instances if i["source"] == "pr")
    assert pr_task["FAIL_TO_PASS"] == ["test_lib.py::test_mean"]
    assert list((run / "dataset" / "data").glob("train-*.parquet"))
    # The second run combines the validated bugs; its validate judges just the new candidates.
    cfg.write_text(cfg.read_text().replace("stages: [env, baseline, mine, mutate, combine, validate, publish]",
                                           "stages: [combine, validate]"))
    again = _factory("run", str(cfg), "--run-dir", str(run))
    assert again.returncode == 0, again.stderr[-3000:]
    combined = [c for c in pq.read_table(rd / "candidates.parquet").to_pylist() if c["origin"] == "combined"]
    assert combined, again.stderr[-2000:]
    vals = {v["candidate_id"] for v in pq.read_table(rd / "validations.parquet").to_pylist()}
    assert all(c["candidate_id"] in vals for c in combined)


def test_a_stage_whose_input_is_missing_names_the_stage_to_run(tmp_path):
    repo, run = tmp_path / "lib", tmp_path / "run"
    make_repo(repo, {"lib.py": LIB, "test_lib.py": TESTS})
    cfg = tmp_path / "b.yaml"
    cfg.write_text(f"name: b\nrepos: [{repo}]\nstages: [baseline]\n")
    proc = _factory("run", str(cfg), "--run-dir", str(run))
    assert proc.returncode != 0
    assert "run stage 'env' first" in proc.stderr and "factory env build" in proc.stderr
    bad = tmp_path / "c.yaml"
    bad.write_text(f"name: c\nrepos: [{repo}]\nstages: [env, shuffle]\n")
    proc = _factory("run", str(bad), "--run-dir", str(run))
    assert proc.returncode == 2 and "unknown stage 'shuffle'" in proc.stderr
