"""Two gloo processes under torchrun (DDP, and FSDP2) follow the single-process loss curve."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["--no-fsdp", "--fsdp", "--fsdp --compile"])
def test_two_processes_match_single_process_loss(tiny_dataset, single_run, sharding, tmp_path):
    # "--compile": each layer compiled before fully_shard, as trainer.train does on CUDA by default.
    steps, single = 4, single_run
    tok = str(single.out_dir / "tokenizer")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    # --tee with --log-dir: each rank's lines reach the console prefixed by its rank, so a failure
    # says which rank died and what it printed last.
    # --standalone: the rendezvous takes a free port itself (no window between choosing and binding one).
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "--log-dir", str(tmp_path / "logs"), "--tee", "3",
           "-m", "trainer.train", "--dataset", str(tiny_dataset),
           "--recipe", "tiny", "--out", str(tmp_path / "ddp"), "--steps", str(steps), "--device", "cpu",
           "--micro-batch-size", "1", "--grad-accum", "1", "--tokenizer", tok, "--no-progress", *sharding.split()]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"
    read = lambda p: [json.loads(ln) for ln in p.read_text().splitlines()]  # noqa: E731
    a = [r["loss"] for r in read(single.metrics_path) if "loss" in r]
    b = [r["loss"] for r in read(tmp_path / "ddp" / "metrics.jsonl") if "loss" in r]
    print("single", a, f"\n{sharding}", b)
    assert len(a) == len(b) == steps
    assert b == pytest.approx(a, rel=1e-4, abs=1e-4)
    assert (tmp_path / "ddp" / "export" / "model.safetensors").exists()
