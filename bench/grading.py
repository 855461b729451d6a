"""Grading: time per instance for gold patches, and the hostile-patch table (attack → verdict).

    python bench/grading.py --dataset runs/demo/instances.parquet [--max 10] [--attacks]

Times ``verifiers.grade.grade_patch`` on the gold patch of each task (one at a time, so the
figure is the cost of one grade), prints a table and the mean. With ``--attacks``, also builds
every attack of ``tests/verifiers/hostile.py`` against the first task and prints what the grader
said about each. Run it from a checkout of another commit (PYTHONPATH=that checkout) to compare
graders on the same machine in one sitting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="runs/demo/instances.parquet")
    ap.add_argument("--max", type=int, default=10)
    ap.add_argument("--attacks", action="store_true")
    ap.add_argument("--label", default="")
    ap.add_argument("--instance", default="", help="the task the attacks target (default: the first graded)")
    args = ap.parse_args()

    from factory.evaluate import load_instances
    from verifiers.engine import ensure_engine
    from verifiers.grade import grade_patch
    from verifiers.sandbox import SandboxLimits

    client = ensure_engine(quiet=True)
    instances = list(load_instances(args.dataset).values())[: args.max]
    limits = SandboxLimits(timeout_s=300)
    times = []
    print(f"{'instance':58} {'resolved':>8} {'seconds':>8}")
    for inst in instances:
        t0 = time.monotonic()
        res = grade_patch(client, inst, inst["patch"], limits)
        dt = time.monotonic() - t0
        times.append(dt)
        print(f"{inst['instance_id'][:58]:58} {str(res.resolved):>8} {dt:8.2f}")
    print(f"{args.label or 'grader'}: {len(times)} gold grades, mean {statistics.mean(times):.2f} s, "
          f"median {statistics.median(times):.2f} s")
    if args.attacks:
        from tests.verifiers.hostile import attack_table

        everything = load_instances(args.dataset)
        target = everything[args.instance] if args.instance else instances[0]
        attack_table(client, target, limits)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
