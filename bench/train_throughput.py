"""Training throughput: our MoEDecoder against transformers' Qwen3MoeForCausalLM, side by side.

Both models get the same config (a trainer recipe), the same initial weights, the same packed
batches (synthetic documents of log-normal length, best-fit-decreasing packed, document-masked)
and the same step: bf16 autocast forward, fp32 cross-entropy, backward, clip, fused AdamW.
transformers sees the packing through `position_ids` (it derives the block-diagonal mask from
them, given use_cache=False); ours through `doc_ids`. Tokens per second count every position of every row (B * T).

    python bench/train_throughput.py                      # GPU: small recipe, default variants
    python bench/train_throughput.py --recipe tiny --device cpu --batch 2 --seq-len 256 --steps 2
Variants: ours-<moe impl>[-<attn impl>] (moe impl: torch | triton | auto; attn: flex | sdpa) and
hf-<experts implementation>[-<attn implementation>] (experts: grouped_mm | batched_mm | eager; attn:
sdpa | flex_attention | eager, default --hf-attn), each with an optional @precision:
@amp (fp32 weights, bf16 autocast: what trainer.train does; the default) or @bf16 (bf16 weights,
no autocast: how transformers' grouped_mm experts run in bf16), then an optional +compile
(ours: `MoEDecoder.compile_for_training()`, what trainer.train does on CUDA; transformers:
torch.compile of the whole model), and +graph (CUDA only: the whole step, forward to optimizer,
captured once and replayed as one CUDA graph; trainer/cudagraph.py). E.g. "ours-triton-flex@bf16+compile,hf-grouped_mm@bf16"."""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.config import get_recipe  # noqa: E402
from trainer.cudagraph import GraphedStep  # noqa: E402
from trainer.data import Sample  # noqa: E402
from trainer.model import MoEDecoder  # noqa: E402
from trainer.packing import IGNORE, pack  # noqa: E402


def synthetic_rows(num_rows: int, seq_len: int, vocab: int, seed: int, median_len: int):
    """Packed rows of random-token documents (log-normal lengths), the same for every variant."""
    rng = random.Random(seed)
    samples, total = [], 0
    while total < num_rows * seq_len * 1.02:
        n = max(8, min(seq_len + 1, int(rng.lognormvariate(math.log(median_len), 0.8))))
        ids = tuple(rng.randrange(vocab) for _ in range(n))
        samples.append(Sample(ids, (False,) * (n // 4) + (True,) * (n - n // 4), "repair"))
        total += n
    packed = pack(samples, seq_len, pad_id=0)
    return packed, packed.stats


def _hf_model(cfg, experts_impl: str, attn_impl: str, device: torch.device, dtype: torch.dtype):
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    hf_cfg = Qwen3MoeConfig.from_dict(cfg.to_hf_dict())
    with torch.device(device):
        return Qwen3MoeForCausalLM._from_config(hf_cfg, experts_implementation=experts_impl,
                                               attn_implementation=attn_impl, dtype=dtype)


def _step_fn(model, is_hf: bool, use_doc_mask: bool):
    def step(batch):
        if is_hf:
            # No KV cache: transformers derives the document mask from position_ids only without one
            # (masking_utils skips packed-sequence detection when past_key_values is set).
            kw = {"position_ids": batch["position_ids"]} if use_doc_mask else {}
            logits = model(input_ids=batch["input_ids"], use_cache=False, **kw).logits
        else:  # the loss head trainer.train uses: the same fp32 cross-entropy, summed inside the model
            doc = batch["doc_ids"] if use_doc_mask else None
            pos = batch["position_ids"] if use_doc_mask else None
            ce_sum = model(batch["input_ids"], pos, doc, batch["labels"]).ce_sum
            return ce_sum / (batch["labels"] != IGNORE).sum()
        logits = logits.float()
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), batch["labels"].view(-1), ignore_index=IGNORE)
    return step


def _profile_one_step(name, train_step, batch) -> None:
    """One more step under torch.profiler: GPU kernel time against the step's wall time (the gap is
    the GPU waiting for the host), the top kernels, and the top host-side ops."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        t0 = time.perf_counter()
        train_step(batch)
        torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    events = prof.key_averages()
    from torch.autograd import DeviceType

    gpu = sum(e.self_device_time_total for e in events if e.device_type == DeviceType.CUDA)  # kernels only
    launches = sum(e.count for e in events if e.key in ("cudaLaunchKernel", "cuLaunchKernel", "cuLaunchKernelEx"))
    print(f"profile {name}: wall {wall * 1e3:.1f} ms (profiled), GPU kernel time {gpu / 1e3:.1f} ms, "
          f"{launches} kernel launches")
    for e in sorted(events, key=lambda e: -e.self_device_time_total)[:12]:
        print(f"  gpu {e.self_device_time_total / 1e3:8.2f} ms  {e.count:5d}x  {e.key[:100]}")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]:
        print(f"  cpu {e.self_cpu_time_total / 1e3:8.2f} ms  {e.count:5d}x  {e.key[:100]}")


def run_variant(name: str, cfg, init_state, rows, args, device: torch.device) -> dict:
    is_hf = name.startswith("hf-")
    name_core, *mods = name.split("+")
    if set(mods) - {"compile", "graph"}:
        raise ValueError(f"unknown modifier in {name!r}; modifiers are +compile and +graph")
    if "graph" in mods and device.type != "cuda":
        raise ValueError("+graph needs CUDA")
    spec, _, precision = name_core.partition("@")
    precision = precision or "amp"
    if precision not in ("amp", "bf16"):
        raise ValueError(f"precision must be amp or bf16, got {precision!r}")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    if is_hf:
        experts, _, attn = spec.removeprefix("hf-").partition("-")
        model = _hf_model(cfg, experts, attn or args.hf_attn, device, dtype)
    else:
        parts = spec.split("-")
        mc = dataclasses.replace(cfg, moe_impl=parts[1], attn_impl=parts[2] if len(parts) > 2 else "auto")
        with torch.device(device):
            model = MoEDecoder(mc).to(dtype)
    missing, unexpected = model.load_state_dict(init_state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"state dict mismatch: missing {missing[:4]}, unexpected {unexpected[:4]}")
    if "compile" in mods:  # ours: each layer and the loss head (trainer.train's default on CUDA)
        model = model.compile_for_training() if not is_hf else torch.compile(model, dynamic=False)
    model.train()
    graphed = "graph" in mods
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda", capturable=graphed)
    step = _step_fn(model, is_hf, not args.no_doc_mask)
    # No autocast weight cache under capture: cached casts would be graph-pool tensors outliving it.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" and precision == "amp",
                              cache_enabled=not graphed)

    def train_step(batch):
        with autocast:
            loss = step(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return {"loss": loss.detach()}

    if graphed:  # the whole step as one CUDA graph (trainer/cudagraph.py), captured in the last warm-up step
        if args.warmup < 2:
            raise ValueError("+graph needs --warmup 2 or more: eager warm-up, then the capture, both untimed")
        train_step = GraphedStep(train_step, warmup=args.warmup - 1)
    B, T = args.batch, args.seq_len
    losses, times = [], []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for i in range(args.warmup + args.steps):
        idx = torch.tensor([(i * B + b) % len(rows) for b in range(B)])
        batch = {k: getattr(rows, k)[idx].to(device) for k in ("input_ids", "labels", "position_ids", "doc_ids")}
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = train_step(batch)["loss"]
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        losses.append(loss.item())
        if i >= args.warmup:
            times.append(dt)
    if args.profile and device.type == "cuda":
        _profile_one_step(name, train_step, batch)
    elapsed = sum(times)
    res = {"variant": name, "tokens_per_s": B * T * len(times) / elapsed, "step_ms": 1000 * elapsed / len(times),
           "first_loss": losses[0], "last_loss": losses[-1],
           "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")}
    return res  # the model, optimizer and any graph go with this frame; main() collects them


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipe", default="small")
    p.add_argument("--vocab", type=int, default=None, help="vocabulary size (default: the recipe's)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation, autotuning)")
    p.add_argument("--variants", default="ours-triton-flex,hf-grouped_mm@bf16,ours-triton-flex@bf16,hf-grouped_mm,ours-torch-flex,"
                   "hf-grouped_mm-flex_attention@bf16")
    p.add_argument("--hf-attn", default="sdpa", help="transformers attn_implementation")
    p.add_argument("--no-doc-mask", action="store_true", help="plain causal attention over whole rows")
    p.add_argument("--median-doc-len", type=int, default=600)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write results as JSON here")
    p.add_argument("--profile", action="store_true", help="print each variant's top GPU kernels for one step")
    args = p.parse_args(argv)

    device = torch.device(args.device)
    cfg = get_recipe(args.recipe, args.vocab).model
    total, active = cfg.num_params()
    rows, stats = synthetic_rows(args.batch * 4, args.seq_len, cfg.vocab_size, args.seed, args.median_doc_len)
    torch.manual_seed(args.seed)
    with torch.device(device):
        init_state = {k: v.clone() for k, v in MoEDecoder(cfg).state_dict().items()}
    import transformers

    print(f"recipe {args.recipe}: {total / 1e6:.0f}M total / {active / 1e6:.0f}M active parameters, "
          f"L={cfg.num_hidden_layers} D={cfg.hidden_size} E={cfg.num_experts} top-{cfg.num_experts_per_tok} "
          f"I={cfg.moe_intermediate_size} V={cfg.vocab_size}")
    print(f"batch {args.batch} x {args.seq_len} tokens, doc mask {not args.no_doc_mask}, "
          f"padding {stats.padding_fraction:.2%}, device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}, "
          f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"{args.warmup} warm-up + {args.steps} timed steps")
    results = []
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        try:
            results.append(run_variant(name.strip(), cfg, init_state, rows, args, device))
        except Exception as e:  # a variant that cannot run here is a row with its reason, not a crash
            msg = (str(e).strip().splitlines() or [""])[0][:160]
            results.append({"variant": name, "error": f"{type(e).__name__}: {msg}"})
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        # Printed and saved as each variant ends, so a run cut short keeps what it measured.
        print(f"done {name} in {time.perf_counter() - t0:.0f} s: {json.dumps(results[-1])}", flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    def precision(r):
        return r["variant"].partition("@")[2] or "amp"

    base = {}
    for r in results:
        if r["variant"].startswith("hf-") and "error" not in r:
            base.setdefault(precision(r), r["tokens_per_s"])
    print("\n| variant | tokens/s | step ms | vs hf (same precision) | first loss | last loss | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        if "error" in r:
            print(f"| {r['variant']} | failed: {r['error']} | | | | | |")
            continue
        b = base.get(precision(r))
        rel = f"{r['tokens_per_s'] / b:.2f}x" if b else "-"
        print(f"| {r['variant']} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.1f} | {rel} | {r['first_loss']:.4f} | "
              f"{r['last_loss']:.4f} | {r['peak_mem_gib']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
