"""Training across the GPUs of one host: weak scaling, peak memory per GPU and loss curves, 1 to 8 GPUs.

Each run is `trainer.train`'s own step (`_make_step`: forward, backward, clip, AdamW) on synthetic
packed rows (bench/train_throughput.py's documents), under torchrun: one process per GPU, FSDP2 for
the dense part of the model and expert parallelism (`--ep`, default: every GPU of the run) for the
experts (trainer/expert_parallel.py). One GPU runs as `trainer.train` runs on one GPU (compiled and,
by default, CUDA-graphed; no FSDP, no EP).

Weak scaling: every GPU gets the same rows per step (`--micro-batch` x `--grad-accum` rows of
`--seq-len`), so the global batch grows with the GPU count; tokens/s count every position of every
row; efficiency(N) = tokens/s(N) / (N * tokens/s(1)). Peak memory: torch.cuda.max_memory_allocated
per rank over the timed steps (setup excluded: every rank builds the full model on the host and keeps
only its shard on the GPU), the largest rank reported. Loss curves: for each N > 1, `--loss-check`
adds a one-GPU run with N times the micro-batches per step, which sees exactly the rows of the N-GPU
run in the same order (rank r's rows are its micro-batch r), so the two curves differ only by float
rounding (bf16 autocast on GPU).

    # on a host with 8 GPUs: every count, the loss check, the table (about 15 minutes for `medium`)
    python bench/train_scaling.py --launch 1,2,4,8 --recipe medium --loss-check --out runs/scaling
    # one count at a time (each under a time limit), then the table from the JSON files
    torchrun --nproc-per-node 4 bench/train_scaling.py --recipe medium --json runs/scaling/n4.json
    python bench/train_scaling.py --report runs/scaling/*.json
    # CPU smoke (gloo): checks the plumbing only; CPU numbers say nothing about GPU scaling
    python bench/train_scaling.py --launch 1,2 --device cpu --recipe tiny --seq-len 128 --micro-batch 1 \\
        --steps 3 --warmup 1 --loss-check --out /tmp/scaling
The one-GPU row is `trainer.train`'s own one-GPU mode (compiled, CUDA-graphed); `--no-cuda-graph`
gives the ungraphed baseline (EP steps are never graphed: one host sync per MoE layer). If one GPU
runs out of memory at the default 4 rows of 4096, lower `--micro-batch` for every count alike.
`--memory-table` prints, without running anything, the expert and dense state each GPU holds
(weights, gradients and AdamW moments in fp32) at EP 1, 2, 4 and 8 for the recipe.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

STATE_BYTES_PER_PARAM = 16  # fp32 weight + fp32 gradient + AdamW exp_avg and exp_avg_sq


def memory_table(recipe: str, gpus: list[int]) -> str:
    """Expert and dense training state per GPU (analytic): experts L*E*3*D*I parameters split E/ep per
    rank by EP; the rest split 1/N by FSDP2 (N = ep here). Activations and temporaries not counted."""
    from trainer.config import get_recipe

    m = get_recipe(recipe).model
    total, _ = m.num_params()
    expert = m.num_hidden_layers * m.num_experts * 3 * m.hidden_size * m.moe_intermediate_size
    dense = total - expert
    gib = 1024 ** 3
    lines = [f"recipe {recipe}: {total / 1e9:.3f} B parameters, experts {expert / 1e9:.3f} B "
             f"({100 * expert / total:.1f}%): L={m.num_hidden_layers} E={m.num_experts} D={m.hidden_size} "
             f"I={m.moe_intermediate_size}; {STATE_BYTES_PER_PARAM} bytes of state per parameter",
             "", "| GPUs = ep | experts per GPU | expert params per GPU | expert state GiB per GPU "
             "| dense state GiB per GPU (FSDP2) | total GiB per GPU |", "|---:|---:|---:|---:|---:|---:|"]
    for n in gpus:
        e = expert // n
        d = dense / n
        lines.append(f"| {n} | {m.num_experts // n} | {e / 1e6:,.1f} M | {e * STATE_BYTES_PER_PARAM / gib:.2f} | "
                     f"{d * STATE_BYTES_PER_PARAM / gib:.2f} | {(e + d) * STATE_BYTES_PER_PARAM / gib:.2f} |")
    return "\n".join(lines)


def worker(a) -> int:
    """One rank of one run (under torchrun, or alone for one GPU)."""
    import torch
    from train_throughput import synthetic_rows

    from trainer.config import get_recipe
    from trainer.expert_parallel import shard_experts
    from trainer.model import MoEDecoder
    from trainer.train import (
        _batch,
        _init_dist,
        _make_step,
        _optimizer,
        _rows_for_step,
        _use_cuda_graph,
        _wrap,
        lr_lambda,
    )

    d = _init_dist(a.device)
    n = d.world
    ep = 1 if n == 1 else (a.ep or n)
    base = get_recipe(a.recipe)
    cfg = base.replace(micro_batch_size=a.micro_batch, grad_accum=a.grad_accum, steps=a.warmup + a.steps,
                       fsdp=n > 1, ep=ep, warmup_steps=min(base.warmup_steps, 2), compile=a.compile,
                       cuda_graph=a.cuda_graph if n == 1 else False,
                       data=dataclasses.replace(base.data, seq_len=a.seq_len or base.data.seq_len))
    compiled = cfg.compile if cfg.compile is not None else d.device.type == "cuda"
    graphed = _use_cuda_graph(cfg, d, compiled)
    rows_per_rank = cfg.micro_batch_size * cfg.grad_accum
    rows_per_step = rows_per_rank * n
    T = cfg.data.seq_len
    packed, _ = synthetic_rows(max(64, 4 * rows_per_step), T, cfg.model.vocab_size, a.seed, a.median_doc_len)

    torch.manual_seed(cfg.seed)
    model = MoEDecoder(cfg.model)
    parallel = shard_experts(model, ep, n, d.device) if ep > 1 else None
    model = model.to(d.device)
    if compiled:
        model.compile_for_training()
    model = _wrap(model, cfg, d)
    optimizer = _optimizer(model, cfg, d.device, capturable=graphed)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    step_fn = _make_step(model, optimizer, cfg, d, parallel)
    if graphed:
        from trainer.cudagraph import GraphedStep

        step_fn = GraphedStep(step_fn, warmup=1)
    cuda = d.device.type == "cuda"
    losses, times, cursor = [], [], 0
    for s in range(cfg.steps):
        if s == a.warmup and cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rows = _rows_for_step(len(packed), cursor, rows_per_step, cfg.seed)
        batch = _batch(packed, rows[d.rank * rows_per_rank:(d.rank + 1) * rows_per_rank], d.device)
        batch = {k: v.view(cfg.grad_accum, cfg.micro_batch_size, *v.shape[1:]) for k, v in batch.items()}
        t0 = time.perf_counter()
        got = step_fn(batch)
        scheduler.step()
        losses.append(got["loss"].item())  # reads the step's result: the step is done
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        cursor += rows_per_step
    if cuda:
        peak = torch.tensor([float(torch.cuda.max_memory_allocated(d.device))], device=d.device)
    else:
        import resource

        peak = torch.tensor([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0])
    peaks = [torch.zeros_like(peak) for _ in range(n)]
    if d.on:
        import torch.distributed as tdist

        tdist.all_gather(peaks, peak)
    else:
        peaks = [peak]
    timed = times[a.warmup:]
    step_s = statistics.median(timed)
    if d.rank == 0:
        result = {
            "gpus": n, "ep": ep, "recipe": a.recipe, "device": torch.cuda.get_device_name(d.device) if cuda else "cpu",
            "seq_len": T, "micro_batch": cfg.micro_batch_size, "grad_accum": cfg.grad_accum,
            "rows_per_step": rows_per_step, "tokens_per_step": rows_per_step * T, "compiled": compiled,
            "graphed": graphed, "step_s_median": step_s, "tokens_per_s": rows_per_step * T / step_s,
            "peak_bytes_per_rank": [p.item() for p in peaks],
            "peak_kind": "cuda max_memory_allocated, timed steps" if cuda else "host max RSS (CPU smoke)",
            "losses": losses, "warmup": a.warmup, "torch": torch.__version__, "loss_reference": a.loss_reference,
        }
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "losses"}))
    if d.on:
        import torch.distributed as tdist

        tdist.barrier()
        tdist.destroy_process_group()
    return 0


def report(paths: list[str]) -> str:
    runs = [json.loads(Path(p).read_text()) for p in paths]
    scaling = sorted((r for r in runs if not r.get("loss_reference")), key=lambda r: r["gpus"])
    refs = [r for r in runs if r.get("loss_reference")]
    one = next((r for r in scaling if r["gpus"] == 1), None)
    gib = 1024 ** 3
    lines = ["| GPUs | ep | tokens/step | step ms | tokens/s | tokens/s per GPU | weak-scaling eff. "
             "| peak GiB per GPU (max rank) | loss max rel. diff vs 1 GPU, same rows |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in scaling:
        eff = f"{100 * r['tokens_per_s'] / (r['gpus'] * one['tokens_per_s']):.1f}%" if one else "n/a"
        ref = next((x for x in refs if x["rows_per_step"] == r["rows_per_step"] and x["seq_len"] == r["seq_len"]
                    and x["recipe"] == r["recipe"]), None)
        if r["gpus"] == 1:
            cmp = "(reference)"
        elif ref is None:
            cmp = "not run"
        else:
            k = min(len(ref["losses"]), len(r["losses"]))
            rel = max(abs(x - y) / abs(x) for x, y in zip(ref["losses"][:k], r["losses"][:k], strict=True))
            cmp = f"{rel:.2e} over {k} steps"
        lines.append(f"| {r['gpus']} | {r['ep']} | {r['tokens_per_step']:,} | {1000 * r['step_s_median']:.1f} | "
                     f"{r['tokens_per_s']:,.0f} | {r['tokens_per_s'] / r['gpus']:,.0f} | {eff} | "
                     f"{max(r['peak_bytes_per_rank']) / gib:.2f} | {cmp} |")
    if scaling:
        r0 = scaling[0]
        lines.append(f"\n{r0['recipe']} on {r0['device']}, seq_len {r0['seq_len']}, {r0['micro_batch']} x "
                     f"{r0['grad_accum']} rows per GPU per step; peak: {r0['peak_kind']}; torch {r0['torch']}")
    return "\n".join(lines)


def launch(a, passthrough: list[str]) -> int:
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if a.device == "cpu":
        env["OMP_NUM_THREADS"] = "1"
    paths = []

    def torchrun(nproc: int, json_path: Path, extra: list[str]) -> None:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
               __file__, "--json", str(json_path), *passthrough, *extra]
        print("+", " ".join(cmd), flush=True)
        subprocess.run(cmd, env=env, check=True)
        paths.append(str(json_path))

    for n in a.launch:
        torchrun(n, out / f"n{n}.json", [])
    if a.loss_check:
        for n in a.launch:
            if n > 1:
                torchrun(1, out / f"ref{n}.json", ["--grad-accum", str(n * a.grad_accum), "--loss-reference"])
    print(report(paths))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="medium")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per row (default: the recipe's)")
    p.add_argument("--micro-batch", type=int, default=4, help="rows per forward, per GPU")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per step, per GPU")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, autotuning)")
    p.add_argument("--ep", type=int, default=None, help="expert-parallel size (default: every GPU of the run)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                   help="one-GPU run only (default: as trainer.train, on when compiled)")
    p.add_argument("--median-doc-len", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="worker: write this run's result here")
    p.add_argument("--loss-reference", action="store_true", help="worker: mark the run as a loss reference")
    p.add_argument("--launch", default=None, help="comma-separated GPU counts: run each under torchrun")
    p.add_argument("--loss-check", action="store_true", help="with --launch: one-GPU runs on the same rows")
    p.add_argument("--out", default="runs/scaling", help="with --launch: folder of the JSON results")
    p.add_argument("--report", nargs="+", default=None, help="print the table of these JSON results")
    p.add_argument("--memory-table", action="store_true", help="print the analytic memory per GPU and exit")
    a, rest = p.parse_known_args(argv)
    if rest:
        p.error(f"unknown arguments {rest}")
    if a.memory_table:
        print(memory_table(a.recipe, [1, 2, 4, 8]))
        return 0
    if a.report:
        print(report(a.report))
        return 0
    if a.launch:
        a.launch = [int(x) for x in a.launch.split(",")]
        skip = {"--launch", "--loss-check", "--out", "--json"}
        argv = list(sys.argv[1:] if argv is None else argv)
        passthrough, i = [], 0
        while i < len(argv):
            flag = argv[i].split("=")[0]
            if flag in skip:
                i += 1 if flag == "--loss-check" or "=" in argv[i] else 2
                continue
            passthrough.append(argv[i])
            i += 1
        return launch(a, passthrough)
    if not a.json:
        p.error("a worker run needs --json (or use --launch / --report / --memory-table)")
    return worker(a)


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # as trainer.train._exit: FSDP2 leaves gloo threads behind
        sys.stdout.flush()
        os._exit(code)
    sys.exit(code)
