"""Session start latency and steps per second of the rollouts runtime, on a run's task images.

    python bench/rollouts_runtime.py --run runs/demo [--sessions 8] [--parallel 1,2,4] [--steps 30]

Cold start: ``Runtime.open`` creates and starts the container (``docker run`` with grading's
isolation), measured to the first ``exec`` answering. Warm start: ``Runtime(warm=N)`` took a
container started ahead (``prewarm``), measured the same way. Steps/s: a loop of typical tool calls
(``exec`` of a short command, ``read`` of a source file, an ``edit`` and its undo) per session,
with 1..P sessions driven in parallel threads. Prints a markdown table (median and p90).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.progress import Progress  # noqa: E402

from rollouts.runtime import Runtime  # noqa: E402
from rollouts.tasks import load_tasks  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def start_latency(rt: Runtime, rows: list[dict], n: int, warm: bool, prog, task) -> list[float]:
    out = []
    for i in range(n):
        row = rows[i % len(rows)]
        if warm:
            rt.prewarm(row["image_name"], 1, wait=True)
        t0 = time.perf_counter()
        s = rt.open(row)
        s.exec("true")
        out.append(time.perf_counter() - t0)
        s.close()
        prog.advance(task)
    return out


def steps_loop(rt: Runtime, row: dict, steps: int, path: str) -> tuple[int, float]:
    with rt.open(row) as s:
        text = s.read(path)
        line = next(ln for ln in text.splitlines() if ln.strip())
        t0 = time.perf_counter()
        done = 0
        while done < steps:
            s.exec("ls -1 | head -3")
            s.read(path, 1, 40)
            s.edit(path, line, line + "  # probe")
            s.edit(path, line + "  # probe", line)
            done += 4
        return done, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="runs/demo")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--parallel", default="1,2,4")
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    rows = list(load_tasks(a.run).values())
    path = next(p for p in [ln.split(" b/")[-1] for ln in rows[0]["patch"].splitlines() if ln.startswith("diff --git")])
    par = [int(x) for x in a.parallel.split(",")]
    res: dict = {}
    with Runtime(warm=1) as rt, Progress() as prog:
        t = prog.add_task("cold starts", total=a.sessions)
        res["cold"] = start_latency(rt, rows, a.sessions, False, prog, t)
        t = prog.add_task("warm starts", total=a.sessions)
        res["warm"] = start_latency(rt, rows, a.sessions, True, prog, t)
        t = prog.add_task("steps", total=len(par))
        for p in par:
            got: list[tuple[int, float]] = []
            lock = threading.Lock()

            def go(i, p=p, got=got, lock=lock):
                r = steps_loop(rt, rows[i % len(rows)], a.steps, path)
                with lock:
                    got.append(r)

            t0 = time.perf_counter()
            ths = [threading.Thread(target=go, args=(i,)) for i in range(p)]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            wall = time.perf_counter() - t0
            res[f"par{p}"] = (sum(n for n, _ in got), wall, [n / dt for n, dt in got])
            prog.advance(t)
    print("\n| measure | median | p90 | n |\n|---|---|---|---|")
    for k, label in (("cold", "cold start (create + start + first exec), s"),
                     ("warm", "warm start (spare container + first exec), s")):
        print(f"| {label} | {statistics.median(res[k]):.3f} | {pct(res[k], 0.9):.3f} | {len(res[k])} |")
    print("\n| sessions in parallel | steps/s per session (median) | steps/s total | steps |\n|---|---|---|---|")
    for p in par:
        total, wall, per = res[f"par{p}"]
        print(f"| {p} | {statistics.median(per):.1f} | {total / wall:.1f} | {total} |")


if __name__ == "__main__":
    main()
