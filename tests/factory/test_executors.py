"""The executor changes where work runs, never what it produces: the same config through the
inline path, a process pool and a real (local) Ray instance gives equal run directories."""

from __future__ import annotations

import json
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from tests.miners.miners_gitrepo import GitRepo

LIB = "def mean(xs):\n    return sum(xs) / len(xs)\n"
TESTS = "from lib import mean\n\n\ndef test_mean():\n    assert mean([1, 2, 3]) == 2\n"


def _history(path, n: int) -> GitRepo:
    repo = GitRepo(path)
    repo.commit("initial", {"lib.py": LIB.replace("len(xs)", "(len(xs) + 1)"), "test_lib.py": "def test_x():\n    pass\n"})
    repo.merge_pr(n, "Fix mean", {"lib.py": LIB, "test_lib.py": TESTS})
    return repo


def _run(cfg, run_dir, *extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", "run", str(cfg), "--run-dir", str(run_dir), *extra],
                          capture_output=True, text=True, timeout=600)


def _outputs(run_dir) -> dict:
    out = {}
    for rd in sorted((run_dir / "repos").iterdir()):
        rows = sorted(pq.read_table(rd / "candidates.parquet").to_pylist(), key=lambda r: r["candidate_id"])
        out[rd.name] = (rows, json.loads((rd / "mine.json").read_text()))
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    root = tmp_path_factory.mktemp("executors")
    a, b = _history(root / "alpha", 3), _history(root / "beta", 5)
    cfg = root / "two.yaml"
    cfg.write_text(f"name: two\nrepos: [{a.path}, {b.path}]\nstages: [mine]\n")
    return root, cfg


def test_inline_and_process_pool_give_the_same_run(config):
    root, cfg = config
    one, two = _run(cfg, root / "inline", "--workers", "1"), _run(cfg, root / "pool", "--workers", "2")
    assert one.returncode == 0 and two.returncode == 0, (one.stderr[-1500:], two.stderr[-1500:])
    inline, pool = _outputs(root / "inline"), _outputs(root / "pool")
    assert len(inline) == 2 and all(rows for rows, _ in inline.values())
    assert inline == pool


def test_ray_executor_gives_the_same_run(config):
    pytest.importorskip("ray", reason="the scale extra (ray) is not installed")
    root, cfg = config
    local = _run(cfg, root / "local-for-ray", "--workers", "1")
    ray = _run(cfg, root / "ray", "--executor", "ray")
    assert local.returncode == 0 and ray.returncode == 0, ray.stderr[-2000:]
    assert _outputs(root / "ray") == _outputs(root / "local-for-ray")
    # resumable: a second run skips the finished repositories whole ...
    again = _run(cfg, root / "ray", "--executor", "ray")
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stderr.count("finished in an earlier run") == 2, again.stderr[-2000:]
    assert _outputs(root / "ray") == _outputs(root / "local-for-ray")
    # ... and with the marks gone, the stages run again on the cluster and add nothing
    for mark in (root / "ray" / "repos").glob("*/finished.json"):
        mark.unlink()
    third = _run(cfg, root / "ray", "--executor", "ray")
    assert third.returncode == 0, third.stderr[-2000:]
    rerun, first = _outputs(root / "ray"), _outputs(root / "local-for-ray")
    assert {k: rows for k, (rows, _) in rerun.items()} == {k: rows for k, (rows, _) in first.items()}
    assert all(stats["local"]["added"] == 0 for _, stats in rerun.values())


def test_a_record_lands_only_inside_its_repository_folder(config, tmp_path):
    """What a node returns is data: the driver writes it (and removes what it removed) in its own
    run directory, and a record that names a path outside its repository is refused."""
    from factory.config import load_config
    from factory.landing import ItemRecord, land, pack_inputs, run_packed
    from factory.stage import StageOutcome, WorkItem

    _, cfg_path = config
    cfg = load_config(cfg_path)
    spec = cfg.repo_specs()[0]
    item = WorkItem("mine", spec.key, spec)
    run = tmp_path / "run"
    (run / "repos" / spec.key).mkdir(parents=True)
    (run / "repos" / spec.key / "failure.json").write_text('{"mine": {"reason": "earlier"}}\n')
    record = run_packed(cfg, pack_inputs(run, item), item, run_id="t")
    assert record.outcome.ok and f"repos/{spec.key}/candidates.parquet" in record.writes
    assert record.deletes == (f"repos/{spec.key}/failure.json",)  # the stage cleared its old failure
    land(run, record)
    assert (run / "repos" / spec.key / "candidates.parquet").exists()
    assert not (run / "repos" / spec.key / "failure.json").exists()
    rows = pq.read_table(run / "repos" / spec.key / "candidates.parquet").to_pylist()
    assert len(rows) == 1 and rows[0]["pr_number"] == 3
    bad = ItemRecord(item, StageOutcome("mine", spec.key, ok=True), {"instances.parquet": b"x"})
    with pytest.raises(ValueError, match="outside"):
        land(run, bad)
    assert not (run / "instances.parquet").exists()


def test_the_run_ends_with_a_table_that_names_the_failed_stage(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(f"name: bad\nrepos: [{tmp_path / 'missing'}]\nstages: [mine]\n")
    proc = _run(cfg, tmp_path / "run", "--workers", "1")
    assert proc.returncode == 1
    (row,) = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert row["status"] == "failed" and row["failed_stage"] == "mine" and "no such directory" in row["reason"]
    assert "per repository" in proc.stdout
