"""Push a run's task images to a registry and pull them into an empty engine: bytes and seconds.

    python bench/registry_roundtrip.py --run runs/demo [--evaluate]

Starts a fresh registry on localhost (Debian's docker-registry, through factory.registry) and a
second, empty dockerd (tests/factory/scratch_engine.py), then:
  1. ``publish_run(... push_images=REGISTRY)``: push time, layers uploaded, bytes the registry stores;
  2. ``pull_images`` of every image_name of the published dataset into the empty engine: time, bytes;
  3. the same pull again: everything present, skipped (the resume path);
  4. with --evaluate, ``factory evaluate`` with gold patches on the empty engine's pulled images.
Layer sharing (unique bytes per task) comes from the registry's manifests. Prints one JSON object.
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


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--evaluate", action="store_true")
    args = ap.parse_args()

    import docker
    import polars as pl

    from factory.publish import PublishConfig, publish_run
    from factory.registry import ensure_registry, layer_sharing, pull_images, read_images_file
    from tests.factory.scratch_engine import scratch_engine

    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="tf-regbench-") as d:
        d = Path(d)
        reg = ensure_registry(root=d / "registry")
        try:
            t0 = time.monotonic()
            rep = publish_run(args.run, d / "dataset", PublishConfig(push_images=reg.address))
            push_s = time.monotonic() - t0
            records = read_images_file(d / "dataset")
            share = layer_sharing(records.values())
            per = sorted(share["unique_bytes_per_image"].values())
            out["push"] = {"images": len(records), "seconds": round(push_s, 2),
                           "layers_uploaded": rep.images.layers_pushed, "layers_already_there": rep.images.layers_existing,
                           "registry_bytes_on_disk": _du(reg.root / "storage")}
            out["sharing"] = {k: v for k, v in share.items() if k != "unique_bytes_per_image"}
            out["sharing"]["unique_bytes_per_task_min_median_max"] = [per[0], per[len(per) // 2], per[-1]]
            with scratch_engine() as host:
                client = docker.DockerClient(base_url=host, timeout=600)
                refs = sorted(pl.read_parquet(d / "dataset" / "data" / "*.parquet")["image_name"].unique())
                first = pull_images(client, refs, records)
                again = pull_images(client, refs, records)
                out["pull_empty_engine"] = {"images": len(first.pulled), "seconds": round(first.seconds, 2),
                                            "bytes": first.bytes, "layers_downloaded": first.layers_downloaded,
                                            "layers_already_here": first.layers_present}
                out["pull_again"] = {"pulled": len(again.pulled), "present": len(again.present),
                                     "seconds": round(again.seconds, 2)}
                if args.evaluate:
                    rows = pl.read_parquet(d / "dataset" / "data" / "*.parquet")
                    preds = d / "gold.jsonl"
                    preds.write_text("".join(json.dumps({"instance_id": r["instance_id"], "model_patch": r["patch"],
                                                         "model_name_or_path": "gold"}) + "\n"
                                             for r in rows.iter_rows(named=True)))
                    t1 = time.monotonic()
                    proc = subprocess.run([str(ROOT / ".venv/bin/factory"), "evaluate", str(next((d / "dataset" / "data").glob("*.parquet"))), str(preds),
                                           "--run-dir", str(d / "evalrun"), "--workers", "2"],
                                          env={**os.environ, "DOCKER_HOST": host}, capture_output=True, text=True)
                    summary = json.loads((d / "evalrun" / "evaluation" / "gold.json").read_text())
                    out["evaluate_gold_on_pulled"] = {"rc": proc.returncode, "resolved": summary["resolved_instances"],
                                                      "submitted": summary["submitted_instances"],
                                                      "seconds": round(time.monotonic() - t1, 1)}
        finally:
            reg.stop()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
