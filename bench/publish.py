"""Publish-path timings on a synthetic run: curate, shard, load back, export, decontaminate, push.

    python bench/publish.py --instances 50000 --repos 100 [--push]

Instances are synthetic (tests/factory/test_publish_fixtures.py): a 10-line patch, a ~3 KB start
file, 50 PASS_TO_PASS ids and a 1 KB problem statement each; the content repeats, so file sizes
are far smaller than real data would give; the timings are what to read. ``--push`` also pushes
the dataset through the local Hub stand-in with the real huggingface_hub client (in a child
process: the client reads HF_ENDPOINT at import time) and loads it back by Hub id.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_PUSH_CHILD = """
import sys, time, json
t = time.perf_counter()
from factory.hub import push_dataset_dir
rep = push_dataset_dir(sys.argv[1], "standin/bench")
t1 = time.perf_counter()
import datasets
ds = datasets.load_dataset("standin/bench")
t2 = time.perf_counter()
print(json.dumps({"push_s": round(t1 - t, 2), "files": len(rep.files), "load_by_id_s": round(t2 - t1, 2),
                  "rows": sum(d.num_rows for d in ds.values())}))
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--instances", type=int, default=2000)
    ap.add_argument("--repos", type=int, default=20)
    ap.add_argument("--push", action="store_true")
    args = ap.parse_args(argv)

    import datasets
    import polars as pl

    import tests.factory.test_publish_fixtures as fx
    from factory.curate import CurateConfig
    from factory.decontam import find_overlaps, load_benchmark
    from factory.publish import PublishConfig, export_swebench, publish_run, read_instances
    from factory.schema import FileContent

    n, n_repos = args.instances, args.repos
    tmp = Path(tempfile.mkdtemp(prefix="bench-publish-"))
    body = "def f(x):\n" + "".join(f"    y{i} = x + {i}\n" for i in range(150))
    insts = [fx.make_instance(i, repo=f"org/repo{i % n_repos}", problem_statement="Steps to reproduce. " * 50,
                              patch=fx.make_patch(f"src/m{i}.py", 10, salt=str(i)),
                              PASS_TO_PASS=tuple(f"tests/test_m.py::test_{k}" for k in range(50)),
                              start_files=(FileContent(f"src/m{i}.py", body),)) for i in range(n)]
    res: dict = {"instances": n, "repos": n_repos}
    t = time.perf_counter()
    run = fx.make_run(tmp / "run", insts)
    res["write_records_s"] = round(time.perf_counter() - t, 2)
    cfg = PublishConfig(curate=CurateConfig(min_f2p=1, test_fraction=0.2), max_shard_size="100MB")
    t = time.perf_counter()
    rep = publish_run(run, tmp / "ds", cfg)
    res.update(publish_run_s=round(time.perf_counter() - t, 2), published=rep.num_published,
               shards=len(rep.shards), splits=rep.splits)
    t = time.perf_counter()
    pl.read_parquet(tmp / "ds/data/*.parquet")
    res["polars_read_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    datasets.load_dataset(str(tmp / "ds"), cache_dir=str(tmp / "cache"))
    res["load_dataset_cold_s"] = round(time.perf_counter() - t, 2)
    t = time.perf_counter()
    export_swebench(run, tmp / "sweb.jsonl", cfg)
    res["export_swebench_s"] = round(time.perf_counter() - t, 2)
    bench = [{"instance_id": f"b{j}", "repo": "other/x", "base_commit": "e" * 40,
              "patch": insts[j].patch if j < 100 else fx.make_patch(f"lib/b{j}.py", 12, salt=f"b{j}")}
             for j in range(2294)]
    (tmp / "bench.jsonl").write_text("".join(json.dumps(b) + "\n" for b in bench))
    t = time.perf_counter()
    d = find_overlaps(read_instances(run), [load_benchmark(str(tmp / "bench.jsonl"))])
    res.update(decontam_s=round(time.perf_counter() - t, 2), decontam_removed=d.removed)

    if args.push:
        from tests.factory.hub_standin import HubStandin

        with HubStandin(token="t") as hub:
            env = {**{k: v for k, v in os.environ.items() if not k.startswith("HF_")}, "HF_ENDPOINT": hub.url,
                   "HF_HUB_DISABLE_XET": "1", "HF_TOKEN": "t", "HF_HOME": tempfile.mkdtemp(),
                   "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                   "PYTHONPATH": str(ROOT)}
            p = subprocess.run([sys.executable, "-c", _PUSH_CHILD, str(tmp / "ds")], env=env,
                               capture_output=True, text=True)
            res["push"] = json.loads(p.stdout) if p.returncode == 0 else p.stderr[-500:]
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
