"""Spine benchmark: environment image build (cold, warm) and the sandbox's overhead.

Measures, for one SPEC (default: the demo library):
  - env image build, cold (``--force``: the repository layers rebuilt; the base image reused)
    and warm (a cache hit);
  - one full-suite run in the sandbox (container start to report read) against the same suite
    run by pytest directly on the host, in a fresh virtual environment, process start included.

    python bench/spine.py --spec pypi:cachetools==5.5.0 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostenv import make_host_env  # bench/hostenv.py (scripts run from bench/)
from rich.console import Console
from rich.table import Table

from factory.repo import checkout
from factory.schema import RepoSpec
from verifiers.engine import ensure_engine
from verifiers.images import build_env_image, ensure_base_image
from verifiers.sandbox import pytest_command, run_tests


def host_suite_seconds(co, repeats: int) -> list[float]:
    """Time the suite with pytest on the host, in a fresh venv holding the repo and pytest."""
    with tempfile.TemporaryDirectory(prefix="bench-host-") as d:
        tree, py = make_host_env(co, Path(d))
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            subprocess.run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=tree, capture_output=True)
            out.append(time.perf_counter() - t0)
        return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", default="pypi:cachetools==5.5.0")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--cold-base", action="store_true",
                    help="untag the base images first, so the base is built from scratch (debootstrap or pull)")
    args = ap.parse_args(argv)

    client = ensure_engine(quiet=True)
    if args.cold_base:
        for img in client.images.list():
            for tag in img.tags:
                if tag.startswith(("taskfactory/base:", "taskfactory/debian:")):
                    client.images.remove(tag, noprune=True)
    t0 = time.perf_counter()
    ensure_base_image(client, "3.11", log=lambda m: print(m, file=sys.stderr))
    base_s = time.perf_counter() - t0
    co = checkout(RepoSpec.parse(args.spec))

    t0 = time.perf_counter()
    cold = build_env_image(client, co, force=True, log=lambda _m: None)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = build_env_image(client, co, log=lambda _m: None)
    warm_s = time.perf_counter() - t0
    assert warm.cached and warm.tag == cold.tag

    sandbox = []
    suite_s = []
    num_tests = 0
    for _ in range(args.repeats):
        run, _ = run_tests(client, warm.tag, pytest_command(warm.spec.test_cmd))
        if run.status != "ok":
            print(f"sandbox run failed: {run.status} {run.reason}", file=sys.stderr)
            return 1
        sandbox.append(run.wall_s)
        suite_s.append(sum(r.duration_s for r in run.results))
        num_tests = len(run.results)
    host = host_suite_seconds(co, args.repeats)

    med = statistics.median
    table = Table(title=f"spine: {args.spec} ({num_tests} tests), median of {args.repeats}")
    for col in ("measure", "seconds"):
        table.add_column(col, justify="right" if col == "seconds" else "left")
    table.add_row("base image, " + ("cold build" if args.cold_base else "lookup"), f"{base_s:.2f}")
    table.add_row("env image build, cold (--force: no layer cache)", f"{cold_s:.2f}")
    table.add_row("env image build, warm (cache hit)", f"{warm_s:.2f}")
    table.add_row("suite in sandbox (container start → report)", f"{med(sandbox):.2f}")
    table.add_row("sum of test durations inside the sandbox", f"{med(suite_s):.3f}")
    table.add_row("suite on host (pytest process, start included)", f"{med(host):.2f}")
    table.add_row("sandbox overhead ratio (sandbox / host)", f"{med(sandbox) / med(host):.2f}x")
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
