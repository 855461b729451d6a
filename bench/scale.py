"""Scale benchmark: the same multi-repository work through LocalExecutor and RayExecutor.

One prepared run directory (env and baseline of each repository, made once, locally) is copied
three times and the same stages — mutate (one item per repository) and validate (batches of
candidates) — run on each copy:

1. ``local``: ``LocalExecutor(workers=1)``, one item at a time;
2. ``ray-1``: ``RayExecutor`` on a real local Ray cluster (``ray.cluster_utils.Cluster``) whose one
   worker node has 1 CPU (one item at a time, like ``local``);
3. ``ray-2``: the same cluster with a second 1-CPU worker node.

Every item asks for 1 CPU (``sandbox.cpus: 1``, ``validate.workers: 1``), so ``local`` and ``ray-1``
run the same items one at a time and their wall-time difference is what Ray costs; the driver
also accounts its own overhead (connect, packing inputs, landing records, the closing sweep).
Outputs are compared on what they mean: every verdict (verdict, reason, FAIL_TO_PASS,
PASS_TO_PASS, strategy, runs) and every task row, timings and ``created_at`` left out.

    .venv/bin/python bench/scale.py --config factory/configs/pypi20.yaml --repos 3 --max-candidates 6 \\
        --batch 3 --json /tmp/scale.json

Prints one table; ``--json`` writes the numbers (with ``uptime`` load before and after each run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from factory.config import RunConfig, load_config  # noqa: E402
from factory.executors import LocalExecutor  # noqa: E402
from factory.pipeline import run_pipeline  # noqa: E402
from factory.store import RunStore  # noqa: E402

TIMINGS = {"apply_s", "test_s", "total_s", "validation_s", "created_at"}


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def meaning(run: Path) -> dict:
    """What a run produced, without timings: verdict files and task rows."""
    verdicts = {}
    for p in sorted(run.glob("repos/*/validations/*.json")):
        data = json.loads(p.read_text())
        verdicts[f"{p.parent.parent.name}/{p.stem}"] = (
            {k: v for k, v in data["validation"].items() if k not in TIMINGS},
            {k: v for k, v in (data["instance"] or {}).items() if k not in TIMINGS})
    tasks = []
    if (run / "instances.parquet").exists():
        tasks = sorted(({k: v for k, v in r.items() if k not in TIMINGS}
                        for r in pq.read_table(run / "instances.parquet").to_pylist()), key=lambda r: r["instance_id"])
    cands = {p.parent.name: sorted(pq.read_table(p, columns=["candidate_id"]).column(0).to_pylist())
             for p in sorted(run.glob("repos/*/candidates.parquet"))}
    return {"verdicts": verdicts, "tasks": tasks, "candidates": cands}


class Counting:
    """An executor that counts the items it runs (mutate items and validate batches)."""

    def __init__(self, inner) -> None:
        self.inner, self.items, self.busy_s = inner, 0, 0.0
        self.default_batch = getattr(inner, "default_batch", None)

    def run(self, cfg, run_dir, items, **kw):
        for item, out in self.inner.run(cfg, run_dir, items, **kw):
            self.items += 1
            self.busy_s += out.seconds  # what the stage itself measured doing the item
            yield item, out

    def sweep(self, run_id):
        sweep = getattr(self.inner, "sweep", None)
        if sweep is not None:
            return sweep(run_id)
        from factory.pipeline import _sweep_here

        return _sweep_here(run_id)


def timed_run(name: str, cfg: RunConfig, run_dir: Path, executor, connect_s: float = 0.0) -> dict:
    load_before = _load()
    counting = Counting(executor)
    t0 = time.monotonic()
    outs = run_pipeline(cfg, RunStore(run_dir), executor=counting, log=lambda _m: None)
    wall = time.monotonic() - t0 + connect_s
    failed = [f"{o.repo}:{o.stage}: {o.reason[:120]}" for o in outs if not o.ok]
    row = {"name": name, "wall_s": round(wall, 1), "items": counting.items, "busy_s": round(counting.busy_s, 1),
           "items_per_min": round(60 * counting.items / wall, 2), "failed": failed,
           "connect_s": round(connect_s, 2), "load_before": load_before, "load_after": _load()}
    stats = getattr(executor, "stats", None)
    if stats is not None:
        row.update(pack_s=round(stats.pack_s, 2), land_s=round(stats.land_s, 2), bytes_in=stats.bytes_in,
                   bytes_out=stats.bytes_out, nodes=dict(stats.nodes), task_s=round(stats.task_s, 1))
    return row


def measured_costs(run_dirs: list[Path], scale_work: Path) -> dict:
    """Per-item costs (seconds) from real runs: env builds and baselines of every repository in
    ``run_dirs`` (the libraries check), mutate and validate from this benchmark's local run."""
    import statistics

    env, base_wall, run_wall, tests = [], [], [], []
    for rd in (p for d in run_dirs for p in sorted((d / "repos").iterdir())):
        if (rd / "env.json").exists():
            e = json.loads((rd / "env.json").read_text())
            if not e.get("cached"):
                env.append(e["build_seconds"])
        if (rd / "baseline.json").exists():
            b = json.loads((rd / "baseline.json").read_text())
            base_wall.append(b["wall_s"])
            run_wall.extend(b["run_wall_s"])
            tests.append(b["num_tests"])
    per_cand = [json.loads(p.read_text())["validation"]["total_s"]
                for p in sorted((scale_work / "local").glob("repos/*/validations/*.json"))]
    mutate = json.loads((scale_work / "mutate_seconds.json").read_text()) if (
        scale_work / "mutate_seconds.json").exists() else {}
    return {"env_s": statistics.median(env), "env_n": len(env),
            "baseline_1_s": statistics.median(base_wall), "suite_run_s": statistics.median(run_wall),
            "baseline_n": len(base_wall), "tests_median": statistics.median(tests) if tests else 0,
            "validate_per_candidate_s": statistics.mean(per_cand), "candidates_n": len(per_cand),
            "mutate_s": statistics.median(mutate.values()) if mutate else 30.0}


def projection(costs: dict, repos: int, candidates: int, nodes: int, node_cpus: int = 8, workers: int = 2,
               cpus: float = 2.0, batch: int = 8, reruns: int = 3) -> dict:
    """Hours for ``repos`` repositories on ``nodes`` nodes: total slot-seconds over the slots, but
    never less than one repository's chain (env, baseline, mutate, one batch)."""
    baseline = costs["baseline_1_s"] + (reruns - 1) * costs["suite_run_s"]
    validate = candidates * costs["validate_per_candidate_s"] / workers  # a slot judges `workers` at once
    per_repo = costs["env_s"] + baseline + costs["mutate_s"] + validate
    slots = nodes * max(1, int(node_cpus // (workers * cpus)))
    chain = costs["env_s"] + baseline + costs["mutate_s"] + batch * costs["validate_per_candidate_s"] / workers
    driver = 0.1 * repos * (4 + -(-candidates // batch))  # packing and landing, serial on the driver
    seconds = max(repos * per_repo / slots, chain) + driver
    return {"repos": repos, "nodes": nodes, "slots": slots, "per_repo_s": round(per_repo), "chain_s": round(chain),
            "hours": round(seconds / 3600, 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(ROOT / "factory/configs/pypi20.yaml"))
    ap.add_argument("--repos", type=int, default=3, help="the first N repositories of the config")
    ap.add_argument("--max-candidates", type=int, default=6)
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--work", default=None, help="a folder for the run directories (default: a temporary one)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--project", nargs="*", default=None, metavar="RUN_DIR",
                    help="print the projection from these runs' env/baseline costs and --work's validate costs")
    args = ap.parse_args()
    if args.project is not None:
        costs = measured_costs([Path(p) for p in args.project], Path(args.work))
        Console().print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in costs.items()}))
        t = Table(title="projection (40 candidates per repository, 8-CPU nodes, validate workers 2 x 2 CPUs)")
        for col in ("repositories", "nodes", "item slots", "one repository s (work)", "one repository s (chain)", "hours"):
            t.add_column(col, justify="right")
        for repos in (20, 1000):
            for nodes in (1, 10, 100):
                p = projection(costs, repos, 40, nodes)
                t.add_row(str(repos), str(nodes), str(p["slots"]), str(p["per_repo_s"]), str(p["chain_s"]),
                          f"{p['hours']:.2f}")
        Console().print(t)
        return 0

    import ray
    from ray.cluster_utils import Cluster

    from factory.executors_ray import DOCKER_RESOURCE, RayExecutor

    full = load_config(args.config)
    base = full.model_dump(by_alias=True)
    base.update(repos=base["repos"][: args.repos], baseline={"reruns": 1, "coverage": True},
                sandbox={**base["sandbox"], "cpus": 1.0},
                mutate={**base["mutate"], "max_candidates": args.max_candidates},
                validate={**base["validate"], "workers": 1, "batch": args.batch})
    prep_cfg = RunConfig.model_validate({**base, "stages": ["env", "baseline"]})
    work_cfg = RunConfig.model_validate({**base, "stages": ["mutate", "validate"]})
    work = Path(args.work or tempfile.mkdtemp(prefix="tf-scale-"))
    console = Console()
    console.print(f"repositories: {[s.key for s in work_cfg.repo_specs()]} → {work}")

    t0 = time.monotonic()
    outs = run_pipeline(prep_cfg, RunStore(work / "prep"), executor=LocalExecutor(1), log=lambda _m: None)
    bad = [o for o in outs if not o.ok]
    if bad:
        console.print(f"[red]preparation failed[/]: {[(o.repo, o.stage, o.reason[:200]) for o in bad]}")
        return 1
    console.print(f"prepared env + baseline in {time.monotonic() - t0:.0f}s")
    for name in ("local", "ray-1", "ray-2"):
        shutil.rmtree(work / name, ignore_errors=True)
        shutil.copytree(work / "prep", work / name)

    rows = [timed_run("local", work_cfg, work / "local", LocalExecutor(1))]
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        cluster.add_node(num_cpus=1, resources={DOCKER_RESOURCE: 100})
        cluster.wait_for_nodes()
        t1 = time.monotonic()
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        connect = time.monotonic() - t1
        rows.append(timed_run("ray-1", work_cfg, work / "ray-1", RayExecutor(address=cluster.address), connect))
        cluster.add_node(num_cpus=1, resources={DOCKER_RESOURCE: 100})
        cluster.wait_for_nodes()
        rows.append(timed_run("ray-2", work_cfg, work / "ray-2", RayExecutor(address=cluster.address)))
    finally:
        ray.shutdown()
        cluster.shutdown()

    ref = meaning(work / "local")
    for r in rows:
        m = meaning(work / r["name"])
        r["identical_to_local"] = m == ref
        r["verdicts"] = len(m["verdicts"])
        r["tasks"] = len(m["tasks"])
        if m != ref:
            r["differs"] = sorted(k for k in set(m["verdicts"]) | set(ref["verdicts"])
                                  if m["verdicts"].get(k) != ref["verdicts"].get(k))[:20]
    local, r1, r2 = rows
    overhead_wall = (r1["wall_s"] - local["wall_s"]) / r1["wall_s"]
    # one slot: whatever of the wall the items' own work does not explain is the executor's
    # (and the joins' on the driver, which local pays too)
    idle = {r["name"]: (r["wall_s"] - r["busy_s"]) / r["wall_s"] for r in (local, r1)}
    accounted = r1["connect_s"] + r1.get("pack_s", 0) + r1.get("land_s", 0)
    efficiency = (r2["items_per_min"] / r1["items_per_min"]) / 2

    t = Table(title=f"scale: {len(work_cfg.repos)} repositories, mutate + validate (batch {args.batch})")
    for col in ("run", "wall s", "items", "items/min", "verdicts", "tasks", "same as local", "driver overhead s",
                "nodes (items)", "load before → after"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["name"], f"{r['wall_s']:.1f}", str(r["items"]), f"{r['items_per_min']:.2f}", str(r["verdicts"]),
                  str(r["tasks"]), "yes" if r["identical_to_local"] else f"NO {r.get('differs')}",
                  f"{r['connect_s'] + r.get('pack_s', 0) + r.get('land_s', 0):.2f}" if "pack_s" in r else "-",
                  json.dumps(r.get("nodes", {})), f"{r['load_before'].split('average:')[-1].strip()} → "
                  f"{r['load_after'].split('average:')[-1].strip()}")
    console.print(t)
    console.print(f"Ray overhead (wall, ray-1 vs local): {overhead_wall:+.1%} of ray-1's wall; accounted on the "
                  f"driver (connect + pack + land): {accounted:.2f}s = {accounted / r1['wall_s']:.1%}")
    console.print(f"wall not spent inside items (one slot): local {idle['local']:.1%}, ray-1 {idle['ray-1']:.1%}; "
                  f"Ray's share: {idle['ray-1'] - idle['local']:+.1%} of the wall")
    console.print(f"scaling 1 → 2 nodes: {r1['items_per_min']:.2f} → {r2['items_per_min']:.2f} items/min, "
                  f"efficiency {efficiency:.0%} (2 cores shared with other work: see bench/RESULTS.md)")
    for r in rows:
        if r["failed"]:
            console.print(f"[red]{r['name']} failed items[/]: {r['failed']}")
    result = {"rows": rows, "overhead_wall_fraction": round(overhead_wall, 4),
              "outside_items_fraction": {k: round(v, 4) for k, v in idle.items()},
              "overhead_accounted_s": round(accounted, 2), "scaling_efficiency": round(efficiency, 3),
              "machine": f"{platform.node()} {os.cpu_count()} cores", "command": " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "repos": [s.key for s in work_cfg.repo_specs()], "batch": args.batch,
              "max_candidates": args.max_candidates}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    ok = all(r["identical_to_local"] and not r["failed"] for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
