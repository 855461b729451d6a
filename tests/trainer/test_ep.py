"""Expert parallelism (trainer/expert_parallel.py) on real gloo processes under torchrun, on the CPU.

Tolerances: everything runs in fp32 with the same weights, data and routing as the one-process
reference, so the only differences are float summation orders: FSDP2's reduce-scatter and the EP
all-reduces add the ranks' contributions in another order than one process accumulating
micro-batches, the combine adds an expert's rows in another order, and expert gradients are summed
over ranks and then divided by the world size. Measured (2 and 4 ranks): gradients agree to <= 4e-7
of each tensor's largest entry (non-expert ones are bitwise equal on 2 ranks), the layer's
gradients to <= 3e-6 absolute on entries of magnitude 1-15. A routing or scaling error is of order
1 (a wrong rank, a gradient off by the world size), far outside these bounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainer.config import tiny
from trainer.errors import ConfigError
from trainer.train import main

HERE = Path(__file__).resolve().parent


def _torchrun(nproc: int, script: str, *args: str, logs: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
           "--log-dir", str(logs), "--tee", "3", str(HERE / script), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-8000:]}"


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item()


@pytest.mark.slow
@pytest.mark.parametrize(("nproc", "eps"), [(2, "2"), (4, "4,2")])
def test_ep_matches_one_process_loss_and_gradients(nproc, eps, tmp_path):
    out = tmp_path / "r.pt"
    _torchrun(nproc, "ep_worker.py", "--ep", eps, "--out", str(out), logs=tmp_path / "logs")
    results = torch.load(out, weights_only=False)
    for ep in map(int, eps.split(",")):
        layer, model = results[ep]["layer"], results[ep]["model"]
        # The routing left half of the experts without a token: some ranks received no rows.
        assert 0 in layer["ranks_with_expert_grad"] and 1 in layer["ranks_with_expert_grad"]
        for k, ref in layer["ref"].items():
            print(f"ep {ep} of {nproc}: layer {k} max |diff| {(ref - layer['got'][k]).abs().max().item():.2e}")
            torch.testing.assert_close(layer["got"][k], ref, rtol=1e-5, atol=1e-5)
        ref, got = model["ref"], model["got"]
        assert got["loss"] == pytest.approx(ref["loss"], rel=1e-6)
        assert got["norm"] == pytest.approx(ref["norm"], rel=1e-6)
        assert got["grads"].keys() == ref["grads"].keys()
        worst = max((_rel_err(g, got["grads"][n]), n) for n, g in ref["grads"].items())
        print(f"ep {ep} of {nproc}: loss {got['loss']:.7f} vs {ref['loss']:.7f}; worst gradient {worst}")
        for n, g in ref["grads"].items():
            assert got["grads"][n].shape == g.shape, n
            assert _rel_err(g, got["grads"][n]) < 1e-5, n


def _losses(path: Path) -> list[float]:
    return [json.loads(ln)["loss"] for ln in path.read_text().splitlines() if '"loss"' in ln]


@pytest.mark.slow
def test_ep_training_follows_one_process_resumes_exactly_and_exports_every_expert(tiny_dataset, single_run,
                                                                                   tmp_path):
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    out = tmp_path / "ep"
    _torchrun(2, "ep_train_worker.py", "--dataset", str(tiny_dataset), "--tokenizer",
              str(single_run.out_dir / "tokenizer"), "--out", str(out), "--ep", "2", logs=tmp_path / "logs")
    result = json.loads((out / "result.json").read_text())
    whole, resumed = _losses(out / "whole" / "metrics.jsonl"), _losses(out / "cut" / "metrics.jsonl")
    single = _losses(single_run.metrics_path)
    print("single", single, "\nep=2  ", whole, "\nresumed", resumed)
    assert len(whole) == 4 and whole == pytest.approx(single, rel=1e-5)
    assert result["cut"]["steps_done"] == 2 and result["resumed"]["steps_done"] == 4
    assert resumed == whole  # bit for bit
    assert result["resumed"]["eval_loss"] == result["whole"]["eval_loss"]
    # The same checkpoint continued by FSDP2 alone (ep 1): the same maths, other summation orders.
    relayout = _losses(out / "relayout" / "metrics.jsonl")
    assert result["relayout"]["steps_done"] == 4 and relayout[:2] == whole[:2]
    assert relayout == pytest.approx(whole, rel=1e-5)

    # The checkpoint and the export hold every expert, gathered from both ranks.
    E = tiny().model.num_experts
    ckpt = torch.load(out / "whole" / "checkpoints" / "step_0000004" / "model.pt", weights_only=False)
    assert ckpt["model.layers.0.mlp.experts.gate_up_proj"].shape[0] == E
    export = Path(result["whole"]["export"])
    with safe_open(str(export / "model.safetensors"), "pt") as f:
        experts = {k.split(".")[5] for k in f.keys() if ".mlp.experts." in k and k.startswith("model.layers.1.")}
    assert experts == {str(e) for e in range(E)}
    ep_hf = AutoModelForCausalLM.from_pretrained(str(export), dtype=torch.float32).eval()
    one_hf = AutoModelForCausalLM.from_pretrained(str(single_run.export_dir), dtype=torch.float32).eval()
    one_sd = one_hf.state_dict()
    # AdamW divides by sqrt(v): on entries whose gradient is near zero (an embedding row met once)
    # a gradient difference of 1e-7 relative moves the update by much more, up to the whole step
    # (lr 3e-3). Measured: at most 1.8e-6 on 2 of 264k entries, the rest below 1e-6.
    for k, v in ep_hf.state_dict().items():
        torch.testing.assert_close(v, one_sd[k], rtol=1e-4, atol=1e-5, msg=k)
    ids = torch.randint(0, ep_hf.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0))
    gen = ep_hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False)
    assert gen.shape == (1, 16)


def test_ep_refuses_what_it_cannot_do_and_names_the_flag(tmp_path, capsys):
    with pytest.raises(ConfigError, match="drop --no-fsdp"):
        tiny().replace(ep=2, fsdp=False)
    with pytest.raises(ConfigError, match=r"--ep 3 must divide the number of experts \(4\)"):
        tiny().replace(ep=3, fsdp=True)
    # One process cannot hold half the experts: refused before any data is read.
    assert main(["--dataset", str(tmp_path / "none"), "--out", str(tmp_path / "o"), "--ep", "2",
                 "--device", "cpu", "--no-progress"]) == 2
    assert "--ep 2 needs a multiple of 2 processes, not 1" in capsys.readouterr().err


def _local_experts_against_the_per_expert_loop(device: str, dtype: torch.dtype) -> list[float]:
    """local_experts (one kernels.moe call steered by marker columns) against the reference's per-expert
    loop in float64 on the same rows: relative error of y, dx, d gate_up, d down."""
    from kernels.moe_reference import experts_forward
    from trainer.expert_parallel import local_experts

    g = torch.Generator(device=device).manual_seed(0)
    R, D, I, El = 333, 256, 192, 5
    x = torch.randn(R, D, device=device, generator=g)
    gu = torch.randn(El, 2 * I, D, device=device, generator=g) / 16
    dn = torch.randn(El, D, I, device=device, generator=g) / 14
    ids = torch.randint(0, El, (R,), device=device, generator=g)
    ids[:40] = 2  # and one expert gets no row at all
    ids[ids == 4] = 3
    dy = torch.randn(R, D, device=device, generator=g)
    ts = [t.to(dtype).clone().requires_grad_(True) for t in (x, gu, dn)]
    y = local_experts(*ts[:1], ids, *ts[1:], "auto")
    y.backward(dy.to(dtype))
    ref_ts = [t.double().clone().requires_grad_(True) for t in (x, gu, dn)]
    ref = experts_forward(ref_ts[0], ref_ts[1], ref_ts[2], ids[:, None], torch.ones(R, 1, device=device).double())
    ref.backward(dy.double())
    pairs = [(y, ref), *((a.grad, b.grad) for a, b in zip(ts, ref_ts, strict=True))]
    return [((got.double() - want).norm() / want.norm()).item() for got, want in pairs]


def test_local_experts_is_one_kernels_moe_call_equal_to_the_per_expert_loop():
    errs = _local_experts_against_the_per_expert_loop("cpu", torch.float32)
    print("fp32 CPU relative errors (y, dx, dgate_up, ddown):", errs)
    assert max(errs) < 1e-6


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_local_experts_on_the_fused_triton_path_equals_the_per_expert_loop_on_gpu():
    """On CUDA in bf16, kernels.moe(impl="auto") is the fused Triton path, given D + 64 columns."""
    errs = _local_experts_against_the_per_expert_loop("cuda", torch.bfloat16)
    print("bf16 CUDA relative errors (y, dx, dgate_up, ddown):", errs)
    assert max(errs) < 1.5e-2
