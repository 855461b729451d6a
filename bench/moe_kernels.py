"""Time kernels.moe (Triton) against transformers' Qwen3MoeSparseMoeBlock and torch._grouped_mm.

One run, same inputs and weights for every implementation:
    ours         kernels.moe(..., impl="triton")
    hf_eager     Qwen3MoeSparseMoeBlock, config._experts_implementation = "eager" (per-expert loop)
    hf_grouped   the same block with "grouped_mm" (transformers' torch._grouped_mm path)
    torch_gmm    a plain composition: torch routing, sort, gather, torch._grouped_mm x2, combine
    sonic        with --peers sonic: SonicMoE's moe_TC_softmax_topk_layer (CuTe DSL kernels; its first
                 call per shape compiles for minutes, so each shape is warmed, and timed, first)
    liger        with --peers liger: Liger-Kernel's LigerFusedMoEFunction (Triton, autotuned on its
                 first call), fed by the same torch routing as torch_gmm
Peers are optional: a peer that does not import is reported and left out, and the rest runs.
Their outputs and grads are checked against ours on the same inputs and weights.
Modes: fwd, bwd (autograd.grad of a retained graph) and fwd+bwd, each the median of CUDA-event
timings after warm-up. TFLOP/s counts 6*T*K*D*I forward, 12 backward, 18 both, against the bf16
matmul peak measured at the start. Peak memory is the allocator's peak during one fwd+bwd, minus
what inputs and weights already held.

    python3 bench/moe_kernels.py                      # the issue's shapes, uniform and skewed
    python3 bench/moe_kernels.py --shapes 8192,2048,768,128,8 --impls ours,hf_grouped
    python3 bench/moe_kernels.py --shapes 32768,2048,768,128,8 --ab v8,v10 --rounds 7   # fwd+bwd A/B
    python3 bench/moe_kernels.py --shapes 32768,2048,768,128,8 --parts v8,v10           # per stage
    python3 bench/moe_kernels.py --impls ours --peers sonic,liger                       # against peers
    python3 bench/moe_kernels.py --ab v13,sonic,dense                                    # and the ceiling
    python3 bench/moe_kernels.py --parts v13,dense                                       # per stage, too
The ceiling ("dense" in --ab and --parts): the same nine units of GEMM work as one fwd+bwd, done by
cuBLAS batched matmuls over E equal, contiguous groups and nothing else (dense_gemms).
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kernels import moe  # noqa: E402
from kernels.moe_inputs import make_moe_inputs  # noqa: E402
from kernels.moe_reference import route  # noqa: E402

DEFAULT_SHAPES = [
    (8192, 2048, 768, 128, 8),
    (32768, 2048, 768, 128, 8),
    (32768, 2048, 1024, 64, 8),
    (32768, 2048, 512, 512, 10),
]
IMPLS = ("ours", "hf_eager", "hf_grouped", "torch_gmm")
PEERS = ("sonic", "liger")
CEILING = "dense"  # --ab / --parts name: the fwd+bwd's GEMMs alone, as cuBLAS batched matmuls


def peer_status(name: str) -> tuple[bool, str]:
    """Whether a peer imports here, and its version or the reason it does not."""
    try:
        if name == "sonic":
            import sonicmoe
            from sonicmoe import moe_TC_softmax_topk_layer  # noqa: F401

            return True, f"sonic-moe {sonicmoe.__version__}"
        if name == "liger":
            from importlib.metadata import version

            from liger_kernel.ops.fused_moe import LigerFusedMoEFunction  # noqa: F401

            return True, f"liger-kernel {version('liger-kernel')}"
    except Exception as exc:  # ImportError, or a dependency failing at import
        return False, f"{type(exc).__name__}: {str(exc)[:160]}"
    return False, f"unknown peer {name!r} (known: {', '.join(PEERS)})"


def peer_fwd(name: str, inputs, norm: bool):
    """fwd() -> y of a peer on our inputs and weights (its autograd carries the grads back to them).

    sonic: weights as its layout asks, as views of ours (no copies): w1 (2I, H, E) with stride order
    (2, 0, 1) is gate_up (E, 2I, H) permuted, gate rows first (concat_layout=True); w2 (H, I, E) is
    down (E, H, I) permuted. Softmax over all experts, then top-k, then renormalisation when norm,
    as ours and transformers' Qwen3 router do (is_softmax_over_topk=False).
    liger: the fused op takes routed indices and weights; the router is the torch composition's.
    """
    x, rw, gu, dn = inputs.tensors()
    k = inputs.top_k
    if name == "sonic":
        from sonicmoe import moe_TC_softmax_topk_layer
        from sonicmoe.enums import ActivationType

        def fwd():
            y, _, _ = moe_TC_softmax_topk_layer(
                x, rw, gu.permute(1, 2, 0), None, dn.permute(1, 2, 0), None, k,
                torch.cuda.current_stream().cuda_stream, ActivationType.SWIGLU, is_inference_mode_enabled=False,
                is_softmax_over_topk=False, norm_topk_probs=norm, concat_layout=True,
            )  # fmt: skip
            return y

        return fwd
    if name == "liger":
        from liger_kernel.ops.fused_moe import LigerFusedMoEFunction

        def fwd():
            w_TK, idx_TK = route(F.linear(x, rw), k, norm)
            return LigerFusedMoEFunction.apply(x, gu, dn, idx_TK.to(torch.int32), w_TK)

        return fwd
    raise ValueError(name)


def _variants():
    from kernels.moe_triton import GemmConfig as G
    from kernels.moe_triton import TritonMoEConfig as C

    v11 = C(g_swiglu_ws=None)  # v8 with the weight-grad and other grouped GEMMs in Gluon (kernels/NOTES.md, v10)
    v8 = C(wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None)  # Triton kernels only (kernels/NOTES.md, v8)
    # v4 with weight-grad indices carried ahead and 128x256 tiles
    v5 = dataclasses.replace(v8, gate_up_joint=False, dwgu_t=False, router_bwd="torch")
    v4 = dataclasses.replace(v5, wgrad=G(128, 128, 64, 8, 3), wgrad_idx_prefetch=False)  # persistent GEMMs
    v3 = dataclasses.replace(v4, persistent="off")  # TMA, wide tiles, split down-projection backward
    v2 = dataclasses.replace(v3, down_bwd=G(128, 128, 64, 8, 3), down_bwd_split=False)
    v1 = C(G(128, 64, 64, 8, 4), G(128, 128, 64, 8, 4), G(128, 64, 64, 8, 4), G(128, 128, 64, 8, 3),
           G(128, 128, 64, 8, 4), tma=False, down_bwd_split=False, persistent="off")  # fmt: skip
    rep = dataclasses.replace
    return {
        "v4": v4,
        "v1": v1,
        "v2": v2,
        "v3": v3,
        "b64": rep(v2, down_bwd=G(64, 128, 64, 4, 3)),
        "b64s4": rep(v2, down_bwd=G(64, 128, 64, 4, 4)),
        "b64x64": rep(v2, down_bwd=G(64, 64, 64, 4, 4)),
        "split": rep(v2, down_bwd_split=True),
        "split256": rep(v2, down_bwd_split=True, down_bwd=G(128, 256, 64, 8, 3)),
        "mm4": rep(v2, down=G(128, 256, 64, 8, 4), dx=G(128, 256, 64, 8, 4)),
        "wg4": rep(v2, wgrad=G(128, 128, 64, 8, 4)),
        "f64w8": rep(v2, down_bwd=G(64, 128, 64, 8, 4)),
        "s_wgbk32": rep(v2, down_bwd_split=True, down_bwd=G(128, 256, 64, 8, 3), wgrad=G(128, 128, 32, 8, 4)),
        "s_wg256": rep(v2, down_bwd_split=True, down_bwd=G(128, 256, 64, 8, 3), wgrad=G(128, 256, 64, 8, 3)),
        "s_g4": rep(v2, down_bwd_split=True, down_bwd=G(128, 256, 64, 8, 4)),
        "s_wg64": rep(v2, down_bwd_split=True, down_bwd=G(128, 256, 64, 8, 3), wgrad=G(64, 256, 64, 8, 3)),
        "p_loop": rep(v3, persistent="loop"),
        "p_flat": rep(v3, persistent="flat"),
        # weight-grad pipelining (kernels/NOTES.md, v5): more stages, or indices carried ahead
        "wg5": rep(v4, wgrad=G(128, 128, 64, 8, 5)),
        "wg7": rep(v4, wgrad=G(128, 128, 64, 8, 7)),
        "wg256s5": rep(v4, wgrad=G(128, 256, 64, 8, 5)),
        "wgpf": rep(v4, wgrad_idx_prefetch=True),
        "wgpf4": rep(v4, wgrad=G(128, 128, 64, 8, 4), wgrad_idx_prefetch=True),
        "wgpf256": rep(v4, wgrad=G(128, 256, 64, 8, 4), wgrad_idx_prefetch=True),
        "guflat": rep(v4, gate_up_persistent="flat"),
        "guloop": rep(v4, gate_up_persistent="loop"),
        # v5 = wgpf256; then gate/up through one joint (BM, 2*BN) accumulator (kernels/NOTES.md, v6)
        "v5": v5,
        "v5j": rep(v5, gate_up_joint=True),
        "v5jf": rep(v5, gate_up_joint=True, gate_up_persistent="flat"),
        "v5jl": rep(v5, gate_up_joint=True, gate_up_persistent="loop"),
        "v5jf2": rep(v5, gate_up_joint=True, gate_up_persistent="flat", gate_up=G(128, 128, 64, 8, 2)),
        "v5gu128": rep(v5, gate_up=G(128, 128, 128, 8, 2)),
        "v5k32": rep(v5, wgrad=G(128, 256, 32, 8, 7)),
        "v5w256m": rep(v5, wgrad=G(256, 128, 64, 8, 4)),
        # dWgu with its own tile: its gathered side (X rows) the narrow one (kernels/NOTES.md, v6)
        "v6": rep(v5, wgrad_gu=G(256, 128, 64, 8, 4)),
        "v6s3": rep(v5, wgrad_gu=G(256, 128, 64, 8, 3)),
        "v6_128": rep(v5, wgrad_gu=G(128, 128, 64, 8, 3)),
        "v6_64": rep(v5, wgrad_gu=G(256, 64, 64, 8, 4)),
        # v7 tries (kernels/NOTES.md): the router backward as one kernel; warp-specialised TMA-fed
        # persistent GEMMs; gate/up tiles and pipelines
        "v7r": rep(v5, router_bwd="triton"),
        "v7ws": rep(v5, warp_specialize=True),
        "v7jf": rep(v5, router_bwd="triton", gate_up_joint=True, gate_up_persistent="flat"),
        "v7j": rep(v5, router_bwd="triton", gate_up_joint=True),
        "v7gu4": rep(v5, gate_up=G(128, 128, 64, 8, 4)),
        "v7gul": rep(v5, gate_up_persistent="loop"),
        "v7dx4": rep(v5, dx=G(128, 256, 64, 8, 4), down=G(128, 256, 64, 8, 4)),
        # dWgu computed as its transpose, gathered X rows on the tile's M side (kernels/NOTES.md, v8)
        "v8t": rep(v5, dwgu_t=True),
        "v8t3": rep(v5, dwgu_t=True, wgrad_gu=G(128, 256, 64, 8, 3)),
        "v8t128": rep(v5, dwgu_t=True, wgrad_gu=G(128, 128, 64, 8, 4)),
        "v8": v8,
        "v8jf": rep(v8, gate_up_persistent="flat"),
        "v8j4": rep(v8, gate_up=G(128, 128, 64, 8, 4)),
        "v8jl": rep(v8, gate_up_persistent="loop"),
        "v8d2": rep(v8, down=G(128, 256, 128, 8, 2)),
        "v8w3": rep(v8, wgrad=G(128, 256, 64, 8, 3)),
        "v8g4": rep(v8, down_bwd=G(128, 256, 64, 8, 4)),
        "v8ws": rep(v8, warp_specialize=True),
        # gate/up as the warp-specialised Gluon kernel (kernels/NOTES.md, v9)
        "v9": rep(v8, gate_up_ws=G(128, 128, 64, 8, 3, 168)),
        "v9s4": rep(v8, gate_up_ws=G(128, 128, 64, 8, 4, 168)),
        "v9k32": rep(v8, gate_up_ws=G(128, 128, 32, 8, 8, 168)),
        "v9d": rep(v8, down_bwd_ws=G(128, 128, 64, 8, 4, 128)),
        "v9d3": rep(v8, down_bwd_ws=G(128, 128, 64, 8, 3, 128)),
        "v9gd": rep(v8, gate_up_ws=G(128, 128, 64, 8, 4, 168), down_bwd_ws=G(128, 128, 64, 8, 4, 128)),
        # the weight-grad GEMMs as the persistent warp-specialised Gluon kernel (kernels/NOTES.md, v10)
        "v10": rep(v8, wgrad_ws=G(128, 256, 64, 8, 3, 168)),
        "v10k32": rep(v8, wgrad_ws=G(128, 256, 32, 8, 6, 168)),
        "v10g": rep(v8, wgrad_ws=G(128, 256, 64, 8, 3, 168), gate_up_ws=G(128, 128, 64, 8, 4, 168)),
        # and down, G, dX as the persistent warp-specialised Gluon grouped GEMM
        "v11": v11,
        "v11g": rep(v11, gate_up_ws=G(128, 128, 64, 8, 4, 168)),
        # v12 (kernels/NOTES.md): the default; the memory plan is in the autograd nodes, and the one
        # kernel change is h*w written over G, which v12nip turns off
        "v12": C(g_swiglu_ws=None),
        "v12nip": C(g_swiglu_ws=None, hw_in_place=False),
        # v13 (kernels/NOTES.md), the default: the G GEMM with the SwiGLU backward in the Gluon consumers'
        # epilogue
        "v13": C(),
        "v13pf2": C(g_swiglu_ws=G(128, 256, 64, 8, 3, 168), g_swiglu_pf=2),
        "v13s8": C(g_swiglu_ws=G(128, 256, 64, 8, 3, 168), g_swiglu_sr=8, g_swiglu_pf=2),
        "v13g": C(g_swiglu_ws=G(128, 256, 64, 8, 3, 168), gate_up_ws=G(128, 128, 64, 8, 4, 168)),
        # v14 try (kernels/NOTES.md): v13 with the router's picks, ranks and chosen probabilities by one
        # (max, index) reduction and tl.gather (router_gather); no measured gain, not the default
        "v14rg": C(router_gather=True),
        # v15 try (kernels/NOTES.md): v13 with gate/up as the ping-pong Gluon kernel (two consumer
        # warpgroups, a (128, 2 x 64) tile each), 3, 4 or 5 stages
        "v15pp3": C(gate_up_pp=G(128, 64, 64, 4, 3, 168)),
        "v15pp": C(gate_up_pp=G(128, 64, 64, 4, 4, 168)),
        "v15pp5": C(gate_up_pp=G(128, 64, 64, 4, 5, 168)),
        # the same with a (64, 2 x 128) tile per warpgroup: X rows gathered once per 256 columns, as v13
        "v15q3": C(gate_up_pp=G(64, 128, 64, 4, 3, 168)),
        "v15q4": C(gate_up_pp=G(64, 128, 64, 4, 4, 168)),
        # v16 try (kernels/NOTES.md): the Gluon grouped GEMM (down, dX) with the row scale and the next
        # tile's coordinates off the path between two tiles (grouped_mm_epi="early")
        "v16e": C(grouped_mm_epi="early"),
        # and whole tiles stored in two halves through a half-size buffer, at 4 stages
        "v16s": C(grouped_mm_epi="sub", grouped_mm_ws=G(128, 256, 64, 8, 4, 168)),
        # gate/up as the Gluon kernel (v13g's) storing GU and h from the accumulators' layout
        "v16g": C(gate_up_ws=G(128, 128, 64, 8, 4, 168), gate_up_ws_epi="mma"),
        # and down and dX as the ping-pong Gluon kernel, a (128, 128) tile per consumer warpgroup
        "v16pp4": C(grouped_mm_pp=G(128, 128, 64, 4, 4, 168)),
        "v16pp5": C(grouped_mm_pp=G(128, 128, 64, 4, 5, 168)),
    }


def cuda_time_ms(fn, warmup: int, reps: int) -> float:
    """Median over reps of one call, timed with CUDA events (each call its own pair)."""
    return statistics.median(cuda_times_ms(fn, warmup, reps))


def event_ms(fn, n: int = 1) -> float:
    """ms per call of n back-to-back calls between one pair of CUDA events (synced at the end)."""
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(n):
        fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / n


def cuda_times_ms(fn, warmup: int, reps: int) -> list[float]:
    """Each of reps calls timed with its own pair of CUDA events, after warm-up calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    return [event_ms(fn) for _ in range(reps)]


def matmul_peak_tflops() -> float:
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = cuda_time_ms(lambda: a @ b, warmup=5, reps=20)
    return 2 * n**3 / ms / 1e9


def torch_grouped_mm_moe(x, rw, gu, dn, top_k, norm):
    """Reference composition with torch._grouped_mm (what a careful PyTorch user would write)."""
    E = gu.shape[0]
    logits = F.linear(x, rw)
    w_TK, idx_TK = route(logits, top_k, norm)
    flat = idx_TK.flatten()
    order = torch.argsort(flat, stable=True)
    tok = order // top_k
    counts = torch.histc(flat.int() if x.is_cuda else flat.float(), bins=E, min=0, max=E - 1)
    offs = counts.cumsum(0).to(torch.int32)
    h = torch._grouped_mm(x[tok], gu.transpose(1, 2), offs=offs)
    g, u = h.chunk(2, dim=-1)
    o = torch._grouped_mm(F.silu(g) * u, dn.transpose(1, 2), offs=offs)
    o = o * w_TK.flatten()[order, None]
    y = torch.zeros_like(x).index_add_(0, tok, o)
    return y, logits


def make_hf_block(inputs, norm, experts_impl):
    from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    x, rw, gu, dn = inputs.tensors()
    E, I2, D = gu.shape
    cfg = Qwen3MoeConfig(
        hidden_size=D,
        moe_intermediate_size=I2 // 2,
        num_experts=E,
        num_experts_per_tok=inputs.top_k,
        norm_topk_prob=norm,
        num_hidden_layers=1,
        num_attention_heads=16,
        num_key_value_heads=4,
        vocab_size=128,
    )
    cfg._experts_implementation = experts_impl
    with torch.device("meta"):
        block = Qwen3MoeSparseMoeBlock(cfg)
    block = block.to_empty(device="cuda").to(torch.bfloat16)
    with torch.no_grad():
        block.gate.weight.copy_(rw)
        block.experts.gate_up_proj.copy_(gu)
        block.experts.down_proj.copy_(dn)
    return block


@dataclasses.dataclass
class Row:
    shape: tuple
    routing: str
    impl: str
    fwd_ms: float | None = None
    bwd_ms: float | None = None
    both_ms: float | None = None
    peak_gib: float | None = None
    error: str = ""
    max_load: float = 0.0


def bench_one(impl, inputs, norm, reps, peak_tf, shape, routing, max_load) -> Row:
    row = Row(shape, routing, impl, max_load=max_load)
    x, rw, gu, dn = inputs.tensors()
    k = inputs.top_k
    if impl in ("hf_eager", "hf_grouped"):
        block = make_hf_block(inputs, norm, "eager" if impl == "hf_eager" else "grouped_mm")
        params = [x, block.gate.weight, block.experts.gate_up_proj, block.experts.down_proj]

        def fwd():
            return block(x[None])[0]
    elif impl in PEERS:
        params = [x, rw, gu, dn]
        fwd = peer_fwd(impl, inputs, norm)
    else:
        params = [x, rw, gu, dn]

        def fwd():
            if impl == "ours":
                return moe(x, rw, gu, dn, k, norm_topk_prob=norm, impl="triton")[0]
            return torch_grouped_mm_moe(x, rw, gu, dn, k, norm)[0]

    dy = torch.randn_like(x)
    slow = impl == "hf_eager"
    warm, n = (1, 3) if slow else (3, reps)
    try:
        with torch.no_grad():
            row.fwd_ms = cuda_time_ms(fwd, warm, n)

        def both():
            torch.autograd.grad(fwd(), params, dy)

        row.both_ms = cuda_time_ms(both, warm, n)
        y = fwd()
        row.bwd_ms = cuda_time_ms(lambda: torch.autograd.grad(y, params, dy, retain_graph=True), warm, n)
        y = None
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        both()
        torch.cuda.synchronize()
        row.peak_gib = (torch.cuda.max_memory_allocated() - base) / 2**30
    except Exception as exc:  # report the failure in the table; the other rows still run
        row.error = f"{type(exc).__name__}: {str(exc)[:120]}"
    if impl in ("hf_eager", "hf_grouped"):
        del block
    torch.cuda.empty_cache()
    return row


def fmt_row(r: Row, peak_tf: float) -> str:
    T, D, I, E, K = r.shape
    f = T * K * D * I

    def tf(ms, mult):
        return f"{mult * f / ms / 1e9:6.0f}" if ms else "     -"

    def ms(v):
        return f"{v:8.2f}" if v else "       -"

    pct = f"{100 * 18 * f / r.both_ms / 1e9 / peak_tf:5.1f}%" if r.both_ms else "     -"
    mem = f"{r.peak_gib:6.2f}" if r.peak_gib is not None else "     -"
    return (
        f"| {T:>5} {D} {I:>4} {E:>3} {K:>2} | {r.routing:<7} | {r.impl:<10} |{ms(r.fwd_ms)} |{ms(r.bwd_ms)} |"
        f"{ms(r.both_ms)} |{tf(r.fwd_ms, 6)} |{tf(r.both_ms, 18)} | {pct} | {mem} | {r.error}"
    )


HEADER = (
    "| T     D    I    E   K  | routing | impl       |  fwd ms |  bwd ms | f+b ms | fwd TF/s | f+b TF/s "
    "| f+b %peak | peak GiB |\n|---|---|---|---|---|---|---|---|---|---|"
)


def check_parity(inputs, norm) -> str:
    """Relative difference of our y against transformers grouped_mm's on these inputs (bf16 both)."""
    x, rw, gu, dn = inputs.tensors()
    with torch.no_grad():
        ours = moe(x, rw, gu, dn, inputs.top_k, norm_topk_prob=norm, impl="triton")[0].double()
        ref = torch_grouped_mm_moe(x, rw, gu, dn, inputs.top_k, norm)[0].double()
    return f"{((ours - ref).norm() / ref.norm()).item():.2e}"


def run_variants(names, shapes, norm, reps, peak_tf, timeline: bool = False) -> None:
    import kernels.moe_triton as mt

    table = _variants()
    default = mt.CONFIG
    for shape in shapes:
        inputs = make_moe_inputs(*shape, "uniform", device="cuda", seed=2, requires_grad=True)
        for name in names:
            mt.CONFIG = table[name]
            r = bench_one("ours", inputs, norm, reps, peak_tf, shape, "uniform", 0.0)
            r.impl = f"ours:{name}"
            print(fmt_row(r, peak_tf), flush=True)
            if not r.error:
                print("    " + spread(inputs, norm, 40), flush=True)
                print(f"    fwd+bwd replayed as one CUDA graph: {graphed_ms(inputs, norm, reps):.2f} ms", flush=True)
                print("    per kernel (ms per fwd+bwd): " + kernel_breakdown(inputs, norm, timeline=timeline), flush=True)
                print(
                    "    rel diff vs torch_gmm (y, dx, drw, dgu, ddn): " + grad_parity(inputs, norm),
                    flush=True,
                )
                print(f"    (regs, spills, smem): {mt.LAUNCH_INFO}", flush=True)
        del inputs
        torch.cuda.empty_cache()
    mt.CONFIG = default


def stage_fns(inputs, norm) -> dict:
    """Each stage of our fwd+bwd as its own call on fixed intermediates, under the current CONFIG."""
    import kernels.moe_triton as mt

    x, rw, gu, dn = (t.detach() for t in inputs.tensors())
    K, T, dt = inputs.top_k, x.shape[0], x.dtype
    with torch.no_grad():
        logits = F.linear(x, rw)
        r = mt.route(logits, K, norm)
        gu_S2I, h = mt._gate_up(x, gu, r)
        o = mt._down(h, dn, r)
        dy = torch.randn_like(x)
        dgu, hw, dw = mt._down_bwd(dy, dn, gu_S2I, r)
        dxs = mt._dxs(dgu, gu, r)
        dl_out = torch.zeros_like(logits)
    return {
        "router": lambda: mt.route(F.linear(x, rw), K, norm),
        "gate_up": lambda: mt._gate_up(x, gu, r),
        "down": lambda: mt._down(h, dn, r),
        "combine": lambda: mt._combine(o, r, T),
        "down_bwd": lambda: mt._down_bwd(dy, dn, gu_S2I, r),
        "dWd": lambda: mt._dwd(dy, hw, r, dt),
        "dWgu": lambda: mt._dwgu(dgu, x, r, dt),
        "dx": lambda: mt._dxs(dgu, gu, r),
        "router_grads": lambda: mt._router_grads(dxs, dw, logits, x, rw, r, norm, dl_out, True),
    }


def dense_gemms(shape) -> dict:
    """The nine units of GEMM work in one fwd+bwd (gate/up 2, down 1, dH 1, dWd 1, dX 2, dWgu 2; a
    unit is 2*T*K*D*I FLOPs) as six cuBLAS batched matmuls over E groups of exactly T*K/E rows each,
    on preallocated outputs: no routing, gather, activation, scatter or combine, no ragged groups.
    No MoE can do its GEMMs faster than cuBLAS does them on perfectly balanced, contiguous groups,
    so this is a ceiling for a grouped-GEMM MoE's GEMM time on this card: ours and a peer's
    fwd+bwd are read against it (how much of their time is not GEMM at the dense rate)."""
    T, D, I, E, K = shape
    m, dt = T * K // E, torch.bfloat16

    def r(*size):
        return torch.randn(*size, device="cuda", dtype=dt) * 0.1

    x, wgu, h, wd, do, dgu = r(E, m, D), r(E, D, 2 * I), r(E, m, I), r(E, I, D), r(E, m, D), r(E, m, 2 * I)
    o_gu, o_dn, o_dh, o_dwd = r(E, m, 2 * I), r(E, m, D), r(E, m, I), r(E, I, D)
    o_dx, o_dwgu = r(E, m, D), r(E, D, 2 * I)
    return {
        "gate_up": lambda: torch.bmm(x, wgu, out=o_gu),
        "down": lambda: torch.bmm(h, wd, out=o_dn),
        "dH": lambda: torch.bmm(do, wd.transpose(1, 2), out=o_dh),
        "dWd": lambda: torch.bmm(h.transpose(1, 2), do, out=o_dwd),
        "dX": lambda: torch.bmm(dgu, wgu.transpose(1, 2), out=o_dx),
        "dWgu": lambda: torch.bmm(x.transpose(1, 2), dgu, out=o_dwgu),
    }


def dense_fwd_bwd(shape):
    """The six dense GEMMs back to back: the ceiling's one "call"."""
    fns = list(dense_gemms(shape).values())

    def both():
        for f in fns:
            f()

    return both


def run_parts(names, shape, norm, rounds: int = 5, reps: int = 10) -> None:
    """Per-stage A/B of variants: every round times every stage of every variant (the median of
    reps CUDA-event timings), so clock drift within the run hits all variants alike; the table
    gives the median over rounds."""
    import kernels.moe_triton as mt

    table, default = _variants(), mt.CONFIG
    dense = dense_gemms(shape) if CEILING in names else {}
    names = [n for n in names if n != CEILING]
    inputs = make_moe_inputs(*shape, "uniform", device="cuda", seed=2, requires_grad=False)
    fns = stage_fns(inputs, norm)
    got: dict[tuple[str, str], list[float]] = {}
    for i in range(rounds):
        for name in names:
            mt.CONFIG = table[name]
            for stage, fn in fns.items():
                got.setdefault((name, stage), []).append(cuda_time_ms(fn, 2, reps))
            if i == 0:
                print(f"  {name} (regs, spills, smem): {mt.LAUNCH_INFO}", flush=True)
        for gemm, fn in dense.items():
            got.setdefault((CEILING, gemm), []).append(cuda_time_ms(fn, 2, reps))
    mt.CONFIG = default
    med = {k: statistics.median(v) for k, v in got.items()}
    print(f"per-stage ms at {shape}, median of {rounds} rounds (each the median of {reps} calls)")
    print("| stage | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for stage in fns:
        print(f"| {stage} | " + " | ".join(f"{med[n, stage]:.3f}" for n in names) + " |")
    print("| sum | " + " | ".join(f"{sum(med[n, st] for st in fns):.3f}" for n in names) + " |", flush=True)
    if dense:
        T, D, I, E, K = shape
        units = {"gate_up": 2, "down": 1, "dH": 1, "dWd": 1, "dX": 2, "dWgu": 2}
        unit_tf = 2 * T * K * D * I / 1e12
        print(f"the ceiling: each GEMM as a cuBLAS batched matmul over {E} equal groups, same rounds")
        print("| GEMM | units | ms | ms per unit | TFLOP/s |")
        print("|---|---:|---:|---:|---:|")
        for gemm in dense:
            t, u = med[CEILING, gemm], units[gemm]
            print(f"| {gemm} | {u} | {t:.3f} | {t / u:.3f} | {u * unit_tf / t * 1e3:.0f} |")
        total = sum(med[CEILING, g] for g in dense)
        print(f"| sum | 9 | {total:.3f} | {total / 9:.3f} | {9 * unit_tf / total * 1e3:.0f} |", flush=True)


def run_ab(names, shape, norm, rounds: int = 5, reps: int = 10, routing: str = "uniform") -> None:
    """Whole fwd+bwd A/B of variants, interleaved: every round times each variant (the median of reps
    per-call CUDA-event timings, the table's method), so the GPU's clock and power drift over the run
    hits all variants alike; prints every round and the median over rounds. A name from PEERS (sonic,
    liger) times that peer on the same inputs (--ab v12,sonic); "dense" times the ceiling, the same
    GEMM work as cuBLAS batched matmuls over equal groups (dense_gemms)."""
    import kernels.moe_triton as mt

    table, default = _variants(), mt.CONFIG
    inputs = make_moe_inputs(*shape, routing, device="cuda", seed=2, requires_grad=True)
    got: dict[str, list[float]] = {n: [] for n in names}
    fns = {n: peer_fwd_bwd(n, inputs, norm) for n in names if n in PEERS}  # peers: their own kernels
    if CEILING in names:
        fns[CEILING] = dense_fwd_bwd(shape)
    try:
        for i in range(rounds):
            for name in names:
                mt.CONFIG = table.get(name, default)
                got[name].append(cuda_time_ms(fns.get(name) or ours_fwd_bwd(inputs, norm), 2, reps))
            print(f"  round {i}: " + ", ".join(f"{n} {got[n][-1]:.2f}" for n in names), flush=True)
    finally:
        mt.CONFIG = default
    print(f"fwd+bwd ms at {shape} {routing}, median of {rounds} interleaved rounds (each the median of {reps} calls)")
    print("| variant | median | min | max |")
    print("|---|---:|---:|---:|")
    for n in names:
        print(f"| {n} | {statistics.median(got[n]):.2f} | {min(got[n]):.2f} | {max(got[n]):.2f} |", flush=True)


def peer_fwd_bwd(name: str, inputs, norm):
    """One fwd+bwd of a peer against a fixed random dY, warmed once (its compile or autotune)."""
    fwd, ins = peer_fwd(name, inputs, norm), inputs.tensors()
    dy = torch.randn_like(inputs.x_TD)

    def both():
        return torch.autograd.grad(fwd(), ins, dy)

    t0 = time.time()
    both()
    torch.cuda.synchronize()
    print(f"  {name}: first fwd+bwd (compile, autotune) {time.time() - t0:.1f} s", flush=True)
    return both


def ours_fwd_bwd(inputs, norm):
    """One fwd+bwd of ours on these inputs, against a fixed random dY: the call the diagnostics time."""
    x, rw, gu, dn = inputs.tensors()
    dy = torch.randn_like(x)

    def both():
        y = moe(x, rw, gu, dn, inputs.top_k, norm_topk_prob=norm, impl="triton")[0]
        return torch.autograd.grad(y, (x, rw, gu, dn), dy)

    return both


def spread(inputs, norm, reps: int) -> str:
    """Spread of fwd+bwd times over reps back-to-back calls: a drift from first to last is clocks."""
    both = ours_fwd_bwd(inputs, norm)

    t = cuda_times_ms(both, 3, reps)
    n = max(1, reps // 8)
    return (
        f"fwd+bwd over {reps} reps: min {min(t):.2f} median {statistics.median(t):.2f} max {max(t):.2f} ms; "
        f"first {n} {statistics.mean(t[:n]):.2f}, last {n} {statistics.mean(t[-n:]):.2f}"
    )


def capture_graph(fn) -> torch.cuda.CUDAGraph:
    """fn captured as one CUDA graph, after two warm-up calls on a side stream (as capture needs)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def graphed_ms(inputs, norm, reps: int) -> float:
    """fwd+bwd of ours captured once and replayed: the device time without host launch gaps."""
    both = ours_fwd_bwd(inputs, norm)

    graph = capture_graph(both)
    ms = cuda_time_ms(graph.replay, warmup=3, reps=reps)
    del graph
    torch.cuda.empty_cache()
    return ms


def impl_fwd(impl: str, inputs, norm: bool):
    """fwd() -> y for ours, torch_gmm or a peer, on inputs' tensors."""
    x, rw, gu, dn = inputs.tensors()
    if impl == "ours":
        return lambda: moe(x, rw, gu, dn, inputs.top_k, norm_topk_prob=norm, impl="triton")[0]
    if impl == "torch_gmm":
        return lambda: torch_grouped_mm_moe(x, rw, gu, dn, inputs.top_k, norm)[0]
    return peer_fwd(impl, inputs, norm)


def grad_parity(inputs, norm, impl: str = "ours", ref: str = "torch_gmm") -> str:
    """Relative differences of y and all four grads, impl against ref (both bf16), one fixed dY."""
    ins = inputs.tensors()
    g = torch.Generator(device="cuda").manual_seed(5)
    dy = torch.randn(ins[0].shape, generator=g, device="cuda", dtype=ins[0].dtype)
    outs = []
    for f in (impl_fwd(impl, inputs, norm), impl_fwd(ref, inputs, norm)):
        y = f()
        outs.append([y.detach(), *torch.autograd.grad(y, ins, dy)])
    rel = [((a.double() - b.double()).norm() / b.double().norm()).item() for a, b in zip(*outs, strict=True)]
    return " ".join(f"{v:.1e}" for v in rel)


def top_kernels(fn, iters: int = 3, n: int = 14) -> str:
    """The n kernels that take the most device time per call of fn (torch profiler), any impl."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            fn()
        torch.cuda.synchronize()
    rows = sorted(
        ((ev.key, getattr(ev, "device_time_total", 0.0) / 1e3 / iters, ev.count // iters) for ev in prof.key_averages()),
        key=lambda r: -r[1],
    )
    total = sum(t for _, t, _ in rows)
    return f"device busy {total:.2f} ms per call; " + "; ".join(
        f"{t:.3f} ms x{c} {k[:70]}" for k, t, c in rows[:n] if t > 0
    )


def run_peers(peers, shapes, routings, norm, reps, peak_tf) -> list[Row]:
    """Ours and each available peer at each shape and routing, same process, same inputs and weights:
    warm-up (the peer's compile, timed), fwd / bwd / fwd+bwd and peak memory (bench_one), the y and
    grad differences against ours, and each one's heaviest kernels."""
    import kernels.moe_triton as mt

    rows = []
    for shape in shapes:
        saved = mt.saved_bytes(*shape)
        print(f"shape {shape}: ours saves for backward (beyond inputs and weights) "
              + ", ".join(f"{k} {v / 2**30:.3f} GiB" for k, v in saved.items())
              + f"; total {sum(saved.values()) / 2**30:.3f} GiB", flush=True)  # fmt: skip
        for routing in routings:
            inputs = make_moe_inputs(*shape, routing, device="cuda", seed=1, requires_grad=True)
            dy = torch.randn_like(inputs.x_TD)
            for impl in ("ours", *peers):
                fwd = impl_fwd(impl, inputs, norm)

                def both(fwd=fwd, ins=inputs.tensors(), dy=dy):
                    return torch.autograd.grad(fwd(), ins, dy)

                t0 = time.time()
                both()  # a peer's first call per shape compiles (sonic) or autotunes (liger)
                torch.cuda.synchronize()
                print(f"  {shape} {routing} {impl}: first fwd+bwd (compile, autotune) {time.time() - t0:.1f} s",
                      flush=True)  # fmt: skip
                r = bench_one(impl, inputs, norm, reps, peak_tf, shape, routing, 0.0)
                rows.append(r)
                print(fmt_row(r, peak_tf), flush=True)
                if impl != "ours" and not r.error:
                    print(f"    rel diff vs ours (y, dx, drw, dgu, ddn): {grad_parity(inputs, norm, impl, 'ours')}",
                          flush=True)  # fmt: skip
                if not r.error and routing == routings[0]:
                    print(f"    {impl} kernels: {top_kernels(both)}", flush=True)
            del inputs, dy
            torch.cuda.empty_cache()
    print()
    print(HEADER)
    for r in rows:
        print(fmt_row(r, peak_tf))
    print()
    by_key = {(r.shape, r.routing, r.impl): r for r in rows}
    for (shape, routing, impl), r in by_key.items():
        ours = by_key.get((shape, routing, "ours"))
        if impl in PEERS and ours and ours.both_ms and r.both_ms:
            print(f"{shape} {routing}: ours f+b {r.both_ms / ours.both_ms:.3f}x {impl} "
                  f"({ours.both_ms:.2f} vs {r.both_ms:.2f} ms; fwd {ours.fwd_ms:.2f} vs {r.fwd_ms:.2f}, "
                  f"bwd {ours.bwd_ms:.2f} vs {r.bwd_ms:.2f}), "
                  f"peak mem {ours.peak_gib:.2f} vs {r.peak_gib:.2f} GiB")  # fmt: skip
    return rows


def kernel_breakdown(inputs, norm, iters: int = 3, timeline: bool = False) -> str:
    """Per-kernel CUDA times of ours; with timeline, also one fwd+bwd's kernels and idle gaps."""
    from torch.profiler import ProfilerActivity, profile

    both = ours_fwd_bwd(inputs, norm)

    both()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(iters):
            both()
        torch.cuda.synchronize()
    ours, other = {}, 0.0
    span = ""
    try:  # device busy time against the span, and the widest idle gaps between two kernels
        kern = sorted(
            (e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA),
            key=lambda e: e.time_range.start,
        )
        start, end = kern[0].time_range.start, max(e.time_range.end for e in kern)
        busy = sum(e.time_range.end - e.time_range.start for e in kern)
        gaps: dict[str, float] = {}
        for a, b in zip(kern, kern[1:], strict=False):
            gap = b.time_range.start - a.time_range.end
            if gap > 5:  # microseconds
                key = f"{a.name[:28]} -> {b.name[:28]}"
                gaps[key] = gaps.get(key, 0.0) + gap / iters
        top = sorted(gaps.items(), key=lambda kv: -kv[1])[:6]
        if timeline:
            per = len(kern) // iters  # the middle iteration's kernels, with the idle time before each
            one = kern[per : 2 * per]
            for a, b in zip([one[0], *one], one, strict=False):
                t0 = b.time_range.start - one[0].time_range.start
                idle = b.time_range.start - a.time_range.end if a is not b else 0
                print(f"      {t0:8.0f} us +{idle:5.0f} idle {b.time_range.elapsed_us():6.0f} us  {b.name[:100]}")
        span = (
            f"; busy {busy / 1e3 / iters:.2f} of span {(end - start) / 1e3 / iters:.2f} ms per fwd+bwd; "
            "widest gaps (us per fwd+bwd): " + ", ".join(f"{k} {v:.0f}" for k, v in top)
        )
    except Exception as exc:  # a diagnostic only: the table does not depend on it
        span = f"; span n/a ({type(exc).__name__})"
    for ev in prof.key_averages():
        t = getattr(ev, "device_time_total", 0.0)
        t = t / 1e3 / iters
        if ev.key.startswith("_") and ev.key.endswith("_kernel"):
            ours[ev.key.strip("_").removesuffix("_kernel")] = t
        else:
            other += t
    parts = [f"{k} {v:.2f}" for k, v in sorted(ours.items(), key=lambda kv: -kv[1])]
    return ", ".join(parts + [f"other {other:.2f}"]) + span


def profile_ours(shape, norm) -> None:
    from torch.profiler import ProfilerActivity, profile

    inputs = make_moe_inputs(*shape, "uniform", device="cuda", seed=3, requires_grad=True)
    both = ours_fwd_bwd(inputs, norm)

    both()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            both()
        torch.cuda.synchronize()
    print(f"profile of ours, fwd+bwd x3, shape {shape}")
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=18, max_name_column_width=48))
    inputs = None
    torch.cuda.empty_cache()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", nargs="*", default=None, help="T,D,I,E,K ... (default: the issue's four)")
    ap.add_argument("--routings", default="uniform,skewed")
    ap.add_argument("--impls", default=",".join(IMPLS))
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--no-norm", action="store_true", help="norm_topk_prob=False")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument(
        "--variants", default="", help="comma list of Triton block configs to compare (ours only)"
    )
    ap.add_argument("--profile", action="store_true", help="per-kernel CUDA times of ours, first shape")
    ap.add_argument("--timeline", action="store_true", help="with --variants: one fwd+bwd's kernel timeline")
    ap.add_argument("--parts", default="", help="comma list of variants: per-stage A/B on the first shape")
    ap.add_argument("--ab", default="", help="comma list of variants: interleaved fwd+bwd A/B at each --shapes "
                    "(default: the first) and --routings")
    ap.add_argument("--rounds", type=int, default=5, help="with --parts or --ab: interleaved rounds")
    ap.add_argument("--peers", default="", help=f"comma list of {', '.join(PEERS)}: ours against each, same process")
    ap.add_argument("--ours", default="", help="a variant's config as ours for the whole run (default: CONFIG)")
    args = ap.parse_args(argv)
    if args.ours:
        import kernels.moe_triton as mt

        mt.CONFIG = _variants()[args.ours]
        print(f"ours = variant {args.ours}: {mt.CONFIG}")
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else DEFAULT_SHAPES
    impls = args.impls.split(",")
    norm = not args.no_norm
    torch.manual_seed(0)
    peak_tf = matmul_peak_tflops()
    print(
        f"device {torch.cuda.get_device_name()} torch {torch.__version__} bf16 matmul peak {peak_tf:.0f} TFLOP/s"
    )
    if args.parts:  # per-stage A/B of our variants
        run_parts(args.parts.split(","), shapes[0], norm, args.rounds, args.reps)
        return 0
    if args.ab:  # whole fwd+bwd A/B of our variants (and peers), each shape and routing given
        for shape in shapes if args.shapes else shapes[:1]:
            for routing in args.routings.split(","):
                run_ab(args.ab.split(","), shape, norm, args.rounds, args.reps, routing)
        return 0
    if args.variants:  # a tuning run: only our variants, no baselines
        run_variants(args.variants.split(","), shapes, norm, args.reps, peak_tf, timeline=args.timeline)
        return 0
    if args.peers:
        peers = []
        for name in args.peers.split(","):
            ok, what = peer_status(name)
            print(f"peer {name}: {what}" if ok else f"peer {name} unavailable, running without it: {what}")
            peers += [name] if ok else []
        rows = run_peers(peers, shapes, args.routings.split(","), norm, args.reps, peak_tf)
        if args.json:
            args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
        return 0
    if args.profile:
        profile_ours(shapes[0], norm)
    rows = []
    for shape in shapes:
        T, D, I, E, K = shape
        for routing in args.routings.split(","):
            t0 = time.time()
            inputs = make_moe_inputs(T, D, I, E, K, routing, device="cuda", seed=1, requires_grad=True)
            with torch.no_grad():
                _, idx = route(F.linear(inputs.x_TD, inputs.router_w_ED), K, norm)
                load = torch.bincount(idx.flatten(), minlength=E).float()
                max_load = (load.max() / load.mean()).item()
            parity = check_parity(inputs, norm) if "ours" in impls else "-"
            print(
                f"shape {shape} routing {routing}: max/mean expert load {max_load:.2f}, "
                f"rel diff of y vs torch_gmm {parity}",
                flush=True,
            )
            for impl in impls:
                r = bench_one(impl, inputs, norm, args.reps, peak_tf, shape, routing, max_load)
                rows.append(r)
                print(fmt_row(r, peak_tf), flush=True)
            print(f"  ({time.time() - t0:.1f}s)", flush=True)
            del inputs
            torch.cuda.empty_cache()
    print()
    print(f"bf16 matmul peak {peak_tf:.0f} TFLOP/s; fwd FLOPs 6*T*K*D*I, f+b 18*T*K*D*I")
    print(HEADER)
    for r in rows:
        print(fmt_row(r, peak_tf))
    print()
    by_key = {(r.shape, r.routing, r.impl): r for r in rows}
    for (shape, routing, impl), r in by_key.items():
        base = by_key.get((shape, routing, "hf_grouped"))
        if impl == "ours" and base and base.both_ms and r.both_ms:
            print(
                f"{shape} {routing}: ours f+b {base.both_ms / r.both_ms:.2f}x hf_grouped, "
                f"peak mem {r.peak_gib:.2f} vs {base.peak_gib:.2f} GiB"
            )
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
