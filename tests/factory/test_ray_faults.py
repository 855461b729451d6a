"""Faults on a real Ray cluster: two worker nodes on this machine (``ray.cluster_utils.Cluster``),
one worker process killed (SIGKILL) while it judges a batch of candidates. Ray retries the batch
on what is left; the run directory (verdicts and tasks) equals a local run's over the same
candidates, nothing is judged twice or lost, and no container of the run is left behind.

What is compared: every verdict file's verdict, reason, FAIL_TO_PASS, PASS_TO_PASS, strategy and
run count, and every task row but its timings (``apply_s``/``test_s``/``total_s``,
``validation_s``) and ``created_at`` (the time a mutation's task was made): those measure when and
how fast, not what.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.conftest import make_repo
from tests.factory.test_pipeline_e2e import LIB, TESTS

ray = pytest.importorskip("ray", reason="the scale extra (ray) is not installed")

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TIMINGS = {"apply_s", "test_s", "total_s", "validation_s", "created_at"}


def _verdicts(run: Path) -> dict:
    out = {}
    for p in sorted(run.glob("repos/*/validations/*.json")):
        data = json.loads(p.read_text())
        v = {k: x for k, x in data["validation"].items() if k not in TIMINGS}
        inst = {k: x for k, x in (data["instance"] or {}).items() if k not in TIMINGS}
        out[p.stem] = (v, inst)
    return out


def _tasks(run: Path) -> list[dict]:
    rows = pq.read_table(run / "instances.parquet").to_pylist()
    return sorted(({k: v for k, v in r.items() if k not in TIMINGS} for r in rows), key=lambda r: r["instance_id"])


def _ray_workers(prefix: str) -> list[int]:
    """Pids of Ray worker processes now running a task whose name starts with ``prefix``
    (Ray titles a worker ``ray::<task name>`` while it runs one)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith(f"ray::{prefix}"):
                pids.append(int(d.name))
    return pids


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, docker_client, base_image):
    """One repository through env, baseline and mutate (locally): the candidates both runs judge."""
    from factory.config import RunConfig
    from factory.executors import LocalExecutor
    from factory.pipeline import run_pipeline
    from factory.store import RunStore

    root = tmp_path_factory.mktemp("rayfaults")
    make_repo(root / "lib", {"lib.py": LIB, "test_lib.py": TESTS})
    base = dict(name="faults", repos=[str(root / "lib")], baseline={"reruns": 1},
                mutate={"max_per_function": 4, "max_candidates": 12}, sandbox={"cpus": 1, "mem": "1g"})
    prep = RunConfig.model_validate({**base, "stages": ["env", "baseline", "mutate"]})
    outs = run_pipeline(prep, RunStore(root / "prep"), executor=LocalExecutor(1), log=lambda _m: None)
    assert all(o.ok for o in outs), [o.reason for o in outs if not o.ok]
    val = RunConfig.model_validate({**base, "validate": {"workers": 1, "batch": 3}, "stages": ["validate"]})
    return root, val


def test_a_worker_killed_mid_validate_loses_and_duplicates_nothing(prepared, docker_client):
    from ray.cluster_utils import Cluster

    from factory.executors import LocalExecutor
    from factory.executors_ray import DOCKER_RESOURCE, RayExecutor
    from factory.landing import run_id_for
    from factory.pipeline import run_pipeline
    from factory.store import RunStore
    from verifiers.isolation import RUN_LABEL

    root, cfg = prepared
    local_dir, ray_dir = root / "local", root / "ray"
    shutil.copytree(root / "prep", local_dir)
    shutil.copytree(root / "prep", ray_dir)
    n_cands = pq.read_metadata(next(local_dir.glob("repos/*/candidates.parquet"))).num_rows
    assert n_cands >= 6  # several batches of 3, so one can die while others finish

    outs = run_pipeline(cfg, RunStore(local_dir), executor=LocalExecutor(1), log=lambda _m: None)
    assert all(o.ok for o in outs), [o.reason for o in outs if not o.ok]

    run_id = run_id_for(cfg, ray_dir)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})  # the driver's node runs nothing
    killed: dict = {}
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, resources={DOCKER_RESOURCE: 100})
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)

        def _kill_one() -> None:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline and not killed:
                pids = _ray_workers("validate:")
                for pid in pids:
                    # This worker's own containers: once it dies only the run's sweep can remove them
                    # (another worker's containers are removed by that worker itself, unseen by the sweep).
                    labelled = docker_client.containers.list(
                        filters={"label": [f"{RUN_LABEL}={run_id}", f"taskfactory.pid={pid}"]})
                    if labelled:  # mid-validate: a batch's worker container is up
                        os.kill(pid, signal.SIGKILL)
                        killed.update(pid=pid, containers=[c.id for c in labelled])
                        return
                time.sleep(0.2)

        killer = threading.Thread(target=_kill_one, daemon=True)
        killer.start()
        executor = RayExecutor(address=cluster.address)
        logs: list[str] = []
        outs = run_pipeline(cfg, RunStore(ray_dir), executor=executor, log=logs.append)
        killer.join(timeout=5)
    finally:
        ray.shutdown()
        cluster.shutdown()

    assert killed, "no validate worker was caught mid-batch to kill"
    assert all(o.ok for o in outs), [o.reason for o in outs if not o.ok]
    # every batch landed exactly once, from a process that is not the killed one
    parts = -(-n_cands // 3)
    assert executor.stats.tasks == parts
    # nothing lost, nothing duplicated: one verdict per candidate, equal to the local run's
    assert len(_verdicts(ray_dir)) == n_cands
    assert _verdicts(ray_dir) == _verdicts(local_dir)
    assert _tasks(ray_dir) == _tasks(local_dir) and _tasks(local_dir)
    # the killed worker's containers were there when it died; the run's sweep removed them
    assert killed["containers"]
    assert not docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"})
    assert any("swept" in line for line in logs), logs[-20:]
