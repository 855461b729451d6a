"""Grading: time per instance for gold patches, and the hostile-patch table (attack → verdict).

    python bench/grading.py --dataset runs/demo/instances.parquet [--max 10] [--attacks]
    python bench/grading.py --compare /path/to/other/checkout --rounds 3 --max 8

``--compare`` grades each instance with both checkouts' graders in alternation (each in its own
process, timing only the grade), ``--rounds`` times, and prints per-instance medians and the
median ratio: on a shared, noisy machine a ratio of interleaved runs is what can be trusted.

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
    ap.add_argument("--compare", default="", help="another checkout whose grader to time against this one")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _grade_one(args.dataset, args.one)
    if args.compare:
        return _compare(args)

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


def _grade_one(dataset: str, iid: str) -> int:
    """Child mode: grade one gold patch with whichever grader is first on sys.path; print seconds."""
    from factory.evaluate import load_instances
    from verifiers.engine import ensure_engine
    from verifiers.grade import grade_patch
    from verifiers.sandbox import SandboxLimits

    client = ensure_engine(quiet=True)
    inst = load_instances(dataset)[iid]
    t0 = time.monotonic()
    res = grade_patch(client, inst, inst["patch"], SandboxLimits(timeout_s=300))
    print(f"TF-BENCH {time.monotonic() - t0:.4f} {int(res.resolved)}")
    return 0


def _compare(args) -> int:
    import os
    import subprocess

    from factory.evaluate import load_instances

    here = str(Path(__file__).resolve().parents[1])
    other = str(Path(args.compare).resolve())
    ids = list(load_instances(args.dataset))[: args.max]
    script = str(Path(__file__).resolve())
    times: dict[str, dict[str, list[float]]] = {i: {"this": [], "other": []} for i in ids}

    def one(root: str, iid: str) -> float:
        env = {**os.environ, "PYTHONPATH": root}
        out = subprocess.run([sys.executable, script, "--dataset", str(Path(args.dataset).resolve()), "--one", iid],
                             cwd=root, env=env, capture_output=True, text=True, check=True).stdout
        secs, ok = out.split("TF-BENCH", 1)[1].split()
        if ok != "1":
            raise SystemExit(f"{iid}: gold did not resolve under {root}")
        return float(secs)

    for r in range(args.rounds):
        for iid in ids:
            order = (("this", here), ("other", other)) if r % 2 == 0 else (("other", other), ("this", here))
            for name, root in order:
                times[iid][name].append(one(root, iid))
    print(f"{'instance':58} {'this s':>7} {'other s':>7} {'ratio':>6}")
    ratios = []
    for iid in ids:
        a, b = statistics.median(times[iid]["this"]), statistics.median(times[iid]["other"])
        ratios.append(a / b)
        print(f"{iid[:58]:58} {a:7.2f} {b:7.2f} {a / b:6.2f}")
    this_all = statistics.median(t for v in times.values() for t in v["this"])
    other_all = statistics.median(t for v in times.values() for t in v["other"])
    print(f"median grade: this {this_all:.2f} s, other {other_all:.2f} s; median per-instance ratio "
          f"{statistics.median(ratios):.2f} (this/other), {len(ids)} instances x {args.rounds} rounds, alternating")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
