"""The demo's tasks as a test fixture: ``runs/demo`` when `make demo` made it, else made here.

Tests that exercise what users do with a published dataset (registries, SWE-bench's harness,
mini-swe-agent) run on the demo's real tasks: cachetools 5.5.0 from PyPI, validated in Docker.
Where ``runs/demo`` has no instances, the fixture runs the demo config's stages up to publish into
a temporary run (a few minutes on 2 cores).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo_run(docker_client, tmp_path_factory) -> Path:
    run = ROOT / "runs" / "demo"
    if (run / "instances.parquet").is_file() and (run / "dataset" / "data").is_dir():
        return run
    run = tmp_path_factory.mktemp("demo-run")
    cfg = ROOT / "factory" / "configs" / "demo.yaml"
    proc = subprocess.run([sys.executable, "-m", "factory.cli", "run", str(cfg), "--run-dir", str(run)],
                          capture_output=True, text=True, cwd=ROOT)
    assert (run / "instances.parquet").is_file(), proc.stderr[-2000:]
    return run


def demo_rows(run: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return sorted(pq.read_table(run / "instances.parquet").to_pylist(), key=lambda r: r["instance_id"])
