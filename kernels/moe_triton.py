"""Fused Triton MoE block (the `impl="triton"` path of kernels.moe): launches and autograd.

Same function as kernels/moe_reference.py (legend there); the kernels and the sorted-row layout are
described in kernels/_moe_triton_kernels.py, which is imported on first use, so this module itself
imports without Triton (router_backward below, the PyTorch form of the router's backward, is tested
on CPU against autograd, and the Triton kernel against it on the GPU).

Two autograd nodes (since v12, kernels/NOTES.md): _MoEUp (router and gate/up) and _MoEDown (down
projection and combine). Saved for backward: x, the weights, router logits (T, E), the pre-activation
GU (S, 2I) and the routing (O(S) integers and the sorted routing weights); saved_bytes() gives the
cost of each. h = silu(g) * u is recomputed from GU in the backward; neither h nor the down outputs
(S, D) are kept. Only the down node saves GU, so autograd frees it once that node's backward has run,
before the up node's backward allocates dXs (S, D) and dWgu; that node runs dX before dWgu, and the
SwiGLU-backward pass writes h*w over G (CONFIG.hw_in_place).
The router's matmul (T x D x E) and its two gradient matmuls run through cuBLAS; the router's
backward through softmax/top-k/renorm is one Triton kernel (CONFIG.router_bwd; "torch" runs
router_backward instead). The stages (_gate_up, _down, _down_bwd, _dwd, _dwgu, _dxs,
_router_grads) are separate functions so that bench/moe_kernels.py --parts can time each alone.
Block shapes live in CONFIG (TritonMoEConfig); bench/moe_kernels.py --variants compares others.
On Hopper, Gluon kernels (kernels/_moe_gluon_kernels.py, persistent and warp-specialised) run the
weight-grad GEMMs and the other grouped GEMMs by default (CONFIG.wgrad_ws, grouped_mm_ws), and the
down-projection backward as one kernel, the G GEMM with the SwiGLU backward in its consumers'
epilogue (CONFIG.g_swiglu_ws, since v13: G never reaches global memory); they can run the gate/up and
an older fused down-projection backward (gate_up_ws, down_bwd_ws; tested options, not faster);
elsewhere, or where a shape does not fit their tiles, the Triton kernels run (kernels/NOTES.md, v9,
v10, v13).
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from __future__ import annotations

import dataclasses
import functools
import re
import warnings

import torch
import torch.nn.functional as F

from kernels.errors import KernelUnavailableError


@dataclasses.dataclass(frozen=True)
class GemmConfig:
    bm: int
    bn: int
    bk: int
    num_warps: int
    num_stages: int
    maxnreg: int | None = None  # register cap per thread, to fit more programs per SM

    def launch(self) -> dict:
        kw = {"num_warps": self.num_warps, "num_stages": self.num_stages}
        if self.maxnreg is not None:
            kw["maxnreg"] = self.maxnreg
        return kw


@dataclasses.dataclass(frozen=True)
class TritonMoEConfig:
    """Block shapes per kernel. The bench swaps this module's CONFIG to compare variants."""

    gate_up: GemmConfig = GemmConfig(128, 128, 64, 8, 3)  # two (BM, BN) accumulators: gate and up
    down: GemmConfig = GemmConfig(128, 256, 64, 8, 3)
    down_bwd: GemmConfig = GemmConfig(128, 256, 64, 8, 3)  # the G GEMM when split, else the fused kernel
    # dWd; also dWgu unless wgrad_gu is set. 4 stages = 4 buffers of 48 KB once the gather indices
    # are carried ahead (wgrad_idx_prefetch): 4.4-4.7 ms for both against 5.2 (kernels/NOTES.md, v5).
    wgrad: GemmConfig = GemmConfig(128, 256, 64, 8, 4)
    wgrad_gu: GemmConfig | None = None  # dWgu (gathered side is N = D): None = wgrad
    dx: GemmConfig = GemmConfig(128, 256, 64, 8, 3)
    tma: bool = True  # weights and ungathered operands through TMA descriptors (where aligned)
    down_bwd_prefetch: bool = True  # load GU before the main loop of the down-projection backward
    # True: G = dY[tok] @ Wd[e] as a plain grouped GEMM, then one pass for the SwiGLU backward, the
    # routing-weight grad and h*w. False: all of it in the GEMM's epilogue, which needs 255 registers
    # and spills at every tile shape tried (kernels/NOTES.md, v3): 1.4 ms slower at (32768, 2048, 768).
    down_bwd_split: bool = True
    # Persistent grouped GEMMs (down, G, dX): one program per SM over the real tiles; "flat" also
    # pipelines across tiles (tl.range flatten): 4% faster on those GEMMs (kernels/NOTES.md, v4).
    persistent: str = "flat"  # off | loop | flat
    gate_up_persistent: str = "off"  # the same choice for the gate/up kernel
    # Gate/up through one 3-D TMA box per step (gate and up rows of the tile together) into one
    # (BM, 2*BN) accumulator, instead of two boxes and two accumulators.
    gate_up_joint: bool = True
    # Weight-grad GEMMs: carry the next step's gather indices through the K loop, so that Triton's
    # pipeliner sees no load-to-load indirection and gives the loads num_stages - 1 steps of lead.
    wgrad_idx_prefetch: bool = True
    # dWgu as X[tok]^T dGU stored transposed: the gathered operand (X rows) becomes the tile's M side,
    # the layout dWd has, instead of the N side.
    dwgu_t: bool = True
    # Router backward (softmax/top-k/renorm): "triton" = one kernel (_router_bwd_kernel), "torch" =
    # router_backward below (~20 small PyTorch ops).
    router_bwd: str = "triton"
    # Router kernels (both directions): each top-k pick as one (max, index) reduction, and the ranks
    # and chosen probabilities read with tl.gather instead of a masked (BT, E) reduction per pick.
    # Correct (same routing bit for bit) but no measured gain in f+b, so off (kernels/NOTES.md, v14 try).
    router_gather: bool = False
    # Warp-specialised persistent grouped GEMMs (tl.range warp_specialize) where the weights are
    # TMA-fed (down, G, dX); Triton's Hopper support for it is experimental. Correct, no gain (v7).
    warp_specialize: bool = False
    # Gate/up as the Gluon kernel (kernels/_moe_gluon_kernels.py): persistent and warp-specialised, a
    # 4-warp producer gathering X rows with cp.async and loading the weights by TMA, two consumer
    # warpgroups. None = the Triton kernel above. Needs Hopper (9.x) and D % bk == 0; else Triton.
    gate_up_ws: GemmConfig | None = None
    # gate_up_ws's epilogue stores GU and h straight from the accumulators' layout ("mma") instead of
    # converting them to a blocked layout through shared memory first ("blocked"). Correct; gate/up
    # 3.53 ms against the Triton kernel's 3.30 on an H100 (kernels/NOTES.md, v16 tries).
    gate_up_ws_epi: str = "blocked"
    # Gate/up as the ping-pong Gluon kernel (gate_up_pp_kernel): the same producer, and two consumer
    # warpgroups (num_warps = 4 each) with a (bm, 2*bn) tile each, so that one's epilogue runs under the
    # other's MMAs. Taken before gate_up_ws. Needs Hopper and D % bk == 0; else as above. Correct on an
    # H100 but 0.45-1.1 ms slower than the Triton gate/up at the main shape (kernels/NOTES.md, v15
    # try): an option, off.
    gate_up_pp: GemmConfig | None = None
    # The down-projection backward as one Gluon kernel (Hopper): the G GEMM with its SwiGLU backward in
    # a separate epilogue partition that works on the previous tile while the MMAs run (instead of
    # down_bwd and the _swiglu_bwd_kernel pass). None = down_bwd_split as configured.
    down_bwd_ws: GemmConfig | None = None
    # The down-projection backward as the Gluon grouped GEMM with the SwiGLU backward in its 8 consumer
    # warps' epilogue (g_swiglu_ws_kernel, Hopper): no G in global memory, no separate pass; 12 warps,
    # so the (128, 256) tile keeps its registers. Needs D % bk == 0; else down_bwd_split's path.
    # Default since v13: down_bwd stage 2.48 -> 2.22 ms, f+b -0.28 ms at (32768, 2048, 768, 128, 8) on an
    # H100 (kernels/NOTES.md, v13).
    g_swiglu_ws: GemmConfig | None = GemmConfig(128, 256, 64, 8, 3, 168)
    g_swiglu_sr: int = 16  # epilogue rows per slice: 32 spills (bench/gluon_sm90_compile.py)
    g_swiglu_pf: int = 1  # slices of GU loaded ahead of the one computed (1 or 2)
    # The weight-grad GEMMs (dWd; dWgu with dwgu_t) as one Gluon kernel (Hopper): persistent and
    # warp-specialised, so the producer streams the next tile's rows while the consumers finish this
    # one and its TMA store drains. Needs M % bm == 0 and N % bn == 0 (D, I, 2I); else Triton.
    # 3 stages: two fewer buffers than wgrad's 4 leave room for the output tile (kernels/NOTES.md, v10).
    wgrad_ws: GemmConfig | None = GemmConfig(128, 256, 64, 8, 3, 168)
    # The M-grouped GEMMs (down, the G GEMM, dX) as one Gluon kernel (Hopper): persistent and
    # warp-specialised, whole tiles stored by TMA from shared memory while the next tile's MMAs run.
    # Needs K % bk == 0; else Triton. With wgrad_ws: -0.29 to -0.48 ms f+b at (32768, 2048, 768) in
    # three interleaved A/Bs against the Triton kernels alone (v8), kernels/NOTES.md v10.
    grouped_mm_ws: GemmConfig | None = GemmConfig(128, 256, 64, 8, 3, 168)
    # grouped_mm_ws between tiles: "early" loads the row scale before the main loop and works out the
    # next tile's coordinates under the last MMA, off the path where the tensor cores wait for the
    # epilogue; "tma" does both after the drain; "sub" is "early" with whole tiles stored in two
    # halves through a half-size buffer, which leaves room for a 4th stage. Both correct on an H100 and
    # no faster: less fixed cost per tile, more per K step (kernels/NOTES.md, v16 tries).
    grouped_mm_epi: str = "tma"
    # The M-grouped GEMMs with TMA-fed A rows (down, dX) as the ping-pong Gluon kernel
    # (grouped_mm_pp_kernel): two consumer warpgroups (num_warps = 4 each) with a (bm, bn) tile each,
    # one's epilogue under the other's MMAs. Taken before grouped_mm_ws where A is not gathered.
    # Needs Hopper and K % bk == 0. Correct on an H100; its main loop is ~40% slower per K step, so it
    # is ahead only at K <= 512 (kernels/NOTES.md, v16 tries): an option, off.
    grouped_mm_pp: GemmConfig | None = None
    # Smallest GEMM (FLOPs) a Gluon kernel takes. A Gluon launch costs the host 20-140 us more than a
    # Triton one (bench/moe_launch_cost.py on the H200's host: 98-212 against 49-118 us), which only
    # GEMMs that keep the GPU busy longer than that hide; 5e10 is ~90 us at 550 TFLOP/s
    # (kernels/NOTES.md, v10).
    gluon_min_flops: float = 5e10
    # Split down-projection backward: the pass writes h*w over G instead of into a new (S, I) buffer
    # (kernels/NOTES.md, v12: part of keeping peak memory under SonicMoE's).
    hw_in_place: bool = True

    def __post_init__(self) -> None:
        for name in ("persistent", "gate_up_persistent"):
            if getattr(self, name) not in ("off", "loop", "flat"):
                raise ValueError(f"{name} must be off, loop or flat; got {getattr(self, name)!r}")
        if self.gate_up_ws_epi not in ("blocked", "mma"):
            raise ValueError(f"gate_up_ws_epi must be blocked or mma; got {self.gate_up_ws_epi!r}")
        if self.grouped_mm_epi not in ("tma", "early", "sub"):
            raise ValueError(f"grouped_mm_epi must be tma, early or sub; got {self.grouped_mm_epi!r}")
        if self.router_bwd not in ("torch", "triton"):
            raise ValueError(f"router_bwd must be torch or triton; got {self.router_bwd!r}")


LAUNCH_INFO: dict[str, tuple] = {}  # kernel -> (registers, spills, shared bytes) of its last launch


def _record(name: str, compiled) -> None:
    md = getattr(compiled, "metadata", None)
    LAUNCH_INFO[name] = (
        getattr(compiled, "n_regs", None), getattr(compiled, "n_spills", None), getattr(md, "shared", None)
    )


CONFIG = TritonMoEConfig()
SUPPORTED_DTYPES = (torch.bfloat16, torch.float16)


def _k():
    from kernels import _moe_triton_kernels  # lazy: needs triton

    return _moe_triton_kernels


def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class Routing:
    """Device-side routing of one call; every field stays on the GPU (no host sync)."""

    top_idx_TK: torch.Tensor  # int32
    top_w_TK: torch.Tensor  # x dtype
    counts_E: torch.Tensor  # int32, assignments per expert
    offsets_E1: torch.Tensor  # int32, first sorted row of each expert, then S
    pos_TK: torch.Tensor  # int32, sorted row of (t, j)
    tok_S: torch.Tensor  # int32, token of sorted row s
    w_S: torch.Tensor  # float32, routing weight of sorted row s


ROUTER_CHUNKS = 256  # token chunks of the router: each scatter program re-sums up to this many histograms


def route(router_logits_TE: torch.Tensor, top_k: int, norm_topk_prob: bool) -> Routing:
    """Softmax/top-k/renorm and the expert-sorted permutation, in two kernels, no host sync.

    Tokens are cut into at most ROUTER_CHUNKS chunks. The first kernel ranks each assignment
    inside its chunk and writes the chunk's per-expert histogram; the second gives each chunk its
    first sorted row per expert by summing the histograms of the chunks before it (a few hundred
    rows of E integers, read again by every program instead of a separate scan kernel) and
    scatters. Order inside an expert is token order, so the backward's sums are deterministic.
    """
    k = _k()
    T, E = router_logits_TE.shape
    dev = router_logits_TE.device
    S = T * top_k
    e_p, k_p = _pow2(E), _pow2(top_k)
    bt = max(1, min(64, 4096 // e_p))  # (BT, E_P) tiles: logits, then the one-hot scan
    ct = bt * triton_cdiv(triton_cdiv(T, bt), ROUTER_CHUNKS)  # tokens per chunk
    nc = triton_cdiv(T, ct)
    top_idx = torch.empty((T, top_k), dtype=torch.int32, device=dev)
    top_w = torch.empty((T, top_k), dtype=router_logits_TE.dtype, device=dev)
    rank = torch.empty((T, top_k), dtype=torch.int32, device=dev)
    hist = torch.empty((nc, E), dtype=torch.int32, device=dev)
    counts = torch.zeros((E,), dtype=torch.int32, device=dev)
    k._router_topk_kernel[(nc,)](
        router_logits_TE.contiguous(), top_idx, top_w, rank, hist, counts, T, ct,
        E=E, E_P=e_p, K=top_k, K_P=k_p, BT=bt, NORM=bool(norm_topk_prob), GATHER=CONFIG.router_gather,
        num_warps=4,
    )  # fmt: skip
    base = torch.empty((nc, E), dtype=torch.int32, device=dev)
    offsets = torch.empty((E + 1,), dtype=torch.int32, device=dev)
    pos = torch.empty((T, top_k), dtype=torch.int32, device=dev)
    tok = torch.empty((S,), dtype=torch.int32, device=dev)
    w_sorted = torch.empty((S,), dtype=torch.float32, device=dev)
    k._scatter_kernel[(nc,)](
        top_idx, top_w, rank, hist, counts, base, offsets, pos, tok, w_sorted, T, ct,
        E=E, E_P=e_p, K=top_k, RB=max(1, 2048 // e_p), BLOCK=1024, num_warps=4,
    )  # fmt: skip
    return Routing(top_idx, top_w, counts, offsets, pos, tok, w_sorted)


def triton_cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _tma_ok(*ts: torch.Tensor) -> bool:
    """Whether TMA can address these views: unit inner stride, 16-byte aligned base and row strides."""
    return all(
        t.stride(-1) == 1 and t.data_ptr() % 16 == 0 and all(st * t.element_size() % 16 == 0 for st in t.stride()[:-1])
        for t in ts
    )


def _desc(t: torch.Tensor, block: list[int]):
    """Host TMA descriptor of a view, or None where TMA is off or the layout does not allow it."""
    if not CONFIG.tma or not _tma_ok(t):
        return None
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor.from_tensor(t, block)


_SMS: dict[int, int] = {}


def _num_sms(device: torch.device) -> int:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _SMS:
        _SMS[idx] = torch.cuda.get_device_properties(idx).multi_processor_count
    return _SMS[idx]


def _m_grid(S: int, E: int, N: int, cfg: GemmConfig) -> tuple[int]:
    # Upper bound on M-tiles: each expert adds at most one partial tile. Extra programs exit at once.
    return ((triton_cdiv(S, cfg.bm) + E) * triton_cdiv(N, cfg.bn),)


GLUON_MIN_TRITON = (3, 6)  # the Gluon API the kernels were written against (experimental, still moving)


@functools.cache
def _gluon_available() -> bool:
    """Whether this Triton has the Gluon API the kernels use; if not, say so once and let the Triton
    kernels do the work (the Gluon ones are on by default, so an older Triton must still run)."""
    import triton

    version = tuple(int(v) for v in re.findall(r"\d+", triton.__version__)[:2])
    try:
        import triton.experimental.gluon  # noqa: F401
    except ImportError:
        version = (0, 0)
    if version < GLUON_MIN_TRITON:
        warnings.warn(
            f"triton {triton.__version__} has no Gluon API >= {'.'.join(map(str, GLUON_MIN_TRITON))}: the MoE "
            "runs the Triton kernels instead of the warp-specialised Gluon ones (slower on Hopper)",
            stacklevel=3,
        )
        return False
    return True


def _gluon_ok(x_TD: torch.Tensor, cfg: GemmConfig | None, flops: float, *dims: tuple[int, str]) -> bool:
    """Whether a configured Gluon kernel runs: TMA on (CONFIG.tma), a 9.x GPU, a GEMM of at least
    CONFIG.gluon_min_flops, each size of dims a multiple of the named block of cfg, e.g. (D, "bk"),
    and a Triton with Gluon; else the Triton kernel does the same work."""
    if cfg is None or not CONFIG.tma or flops < CONFIG.gluon_min_flops:
        return False
    if torch.cuda.get_device_capability(x_TD.device)[0] != 9:
        return False
    if any(n % getattr(cfg, block) for n, block in dims):
        return False
    return _gluon_available()


def _gluon_desc(t: torch.Tensor, block: list[int]):
    """Gluon host TMA descriptor of a view, in the default swizzled (NVMMA) layout for its block."""
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.nvidia.hopper import TensorDescriptor

    dt = gl.bfloat16 if t.dtype == torch.bfloat16 else gl.float16
    return TensorDescriptor.from_tensor(t, block, gl.NVMMASharedLayout.get_default_for(block, dt))


def _gate_up_gluon(x_TD, gate_up_E2IH, r: Routing, gu_S2I, h_SI, cfg: GemmConfig) -> None:
    from kernels import _moe_gluon_kernels as g

    T, D = x_TD.shape
    E, I2, _ = gate_up_E2IH.shape
    w_desc = _gluon_desc(gate_up_E2IH.view(E * I2, D), [cfg.bn, cfg.bk])
    progs = min(_num_sms(x_TD.device), _m_grid(r.tok_S.shape[0], E, I2 // 2, cfg)[0])
    compiled = g.gate_up_ws_kernel[(progs,)](
        x_TD, r.tok_S, r.counts_E, gu_S2I, h_SI, w_desc, D, I2 // 2, E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn,
        BK=cfg.bk, STAGES=cfg.num_stages, NUM_PROGRAMS=progs, num_warps=cfg.num_warps, maxnreg=cfg.maxnreg,
        EPI_MMA=CONFIG.gate_up_ws_epi == "mma")
    _record("gate_up_ws", compiled)


def _gate_up_pp_gluon(x_TD, gate_up_E2IH, r: Routing, gu_S2I, h_SI, cfg: GemmConfig) -> None:
    from kernels import _moe_gluon_kernels as g

    T, D = x_TD.shape
    E, I2, _ = gate_up_E2IH.shape
    w_desc = _gluon_desc(gate_up_E2IH.view(E * I2, D), [cfg.bn, cfg.bk])
    progs = min(_num_sms(x_TD.device), _m_grid(r.tok_S.shape[0], E, I2 // 2, cfg)[0])
    compiled = g.gate_up_pp_kernel[(progs,)](
        x_TD, r.tok_S, r.counts_E, gu_S2I, h_SI, w_desc, D, I2 // 2, E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn,
        BK=cfg.bk, STAGES=cfg.num_stages, NUM_PROGRAMS=progs, num_warps=cfg.num_warps, maxnreg=cfg.maxnreg)
    _record("gate_up_pp", compiled)


def _gate_up(x_TD, gate_up_E2IH, r: Routing):
    k, cfg = _k(), CONFIG.gate_up
    T, D = x_TD.shape
    E, I2, _ = gate_up_E2IH.shape
    I, S = I2 // 2, r.tok_S.shape[0]
    gu_S2I = torch.empty((S, I2), dtype=x_TD.dtype, device=x_TD.device)
    h_SI = torch.empty((S, I), dtype=x_TD.dtype, device=x_TD.device)
    if _gluon_ok(x_TD, CONFIG.gate_up_pp, 2.0 * S * I2 * D, (D, "bk")):
        _gate_up_pp_gluon(x_TD, gate_up_E2IH, r, gu_S2I, h_SI, CONFIG.gate_up_pp)
        return gu_S2I, h_SI
    if _gluon_ok(x_TD, CONFIG.gate_up_ws, 2.0 * S * I2 * D, (D, "bk")):
        _gate_up_gluon(x_TD, gate_up_E2IH, r, gu_S2I, h_SI, CONFIG.gate_up_ws)
        return gu_S2I, h_SI
    w_desc = _desc(gate_up_E2IH.view(E * 2, I, D), [2, cfg.bn, cfg.bk]) if CONFIG.gate_up_joint else None
    joint = w_desc is not None  # one box holds a tile's gate and up rows
    if not joint:
        w_desc = _desc(gate_up_E2IH.view(E * I2, D), [cfg.bn, cfg.bk])
    args = (x_TD, gate_up_E2IH, r.tok_S, r.counts_E, gu_S2I, h_SI, w_desc, D, I)
    meta = dict(E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn, BK=cfg.bk, EVEN_K=D % cfg.bk == 0,
                USE_TMA=w_desc is not None, JOINT=joint, **cfg.launch())  # fmt: skip
    grid = _m_grid(S, E, I, cfg)
    if CONFIG.gate_up_persistent == "off":
        compiled = k._gate_up_swiglu_kernel[grid](*args, **meta)
    else:
        progs = min(_num_sms(x_TD.device), grid[0])
        compiled = k._gate_up_swiglu_persistent_kernel[(progs,)](
            *args, NUM_PROGRAMS=progs, FLATTEN=CONFIG.gate_up_persistent == "flat", **meta)
    _record('gate_up', compiled)
    return gu_S2I, h_SI


def _grouped_mm_gluon(a_SK, w, c_SN, b_nk: bool, N: int, r: Routing, scale_S, cfg: GemmConfig, a_idx, name: str):
    """_grouped_mm by the Gluon kernel: A rows gathered (a_idx) or TMA-fed, weights and C by TMA."""
    from kernels import _moe_gluon_kernels as g

    S, K = c_SN.shape[0], a_SK.shape[1]
    E = w.shape[0]
    desc = _gluon_desc
    b_desc = desc(w.view(E * N, K), [cfg.bn, cfg.bk]) if b_nk else desc(w.view(E * K, N), [cfg.bk, cfg.bn])
    a_src = a_SK if a_idx is not None else desc(a_SK, [cfg.bm, cfg.bk])
    progs = min(_num_sms(a_SK.device), _m_grid(S, E, N, cfg)[0])
    epi = CONFIG.grouped_mm_epi
    c_desc = desc(c_SN, [cfg.bm, cfg.bn // 2 if epi == "sub" else cfg.bn])
    compiled = g.grouped_mm_ws_kernel[(progs,)](
        a_src, a_idx if a_idx is not None else r.tok_S, r.counts_E, b_desc, c_SN, c_desc,
        scale_S if scale_S is not None else r.w_S, K, N, E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn, BK=cfg.bk,
        STAGES=cfg.num_stages, NUM_PROGRAMS=progs, GATHER=a_idx is not None, B_MODE=int(b_nk),
        HAS_SCALE=scale_S is not None, num_warps=cfg.num_warps, maxnreg=cfg.maxnreg,
        EARLY=epi in ("early", "sub"), SUB=epi == "sub")  # fmt: skip
    _record(f"{name}_ws", compiled)


def _grouped_mm_pp_gluon(a_SK, w, c_SN, b_nk: bool, N: int, r: Routing, scale_S, cfg: GemmConfig, name: str):
    """_grouped_mm (A rows TMA-fed) by the ping-pong Gluon kernel: one tile per consumer warpgroup."""
    from kernels import _moe_gluon_kernels as g

    S, K = c_SN.shape[0], a_SK.shape[1]
    E = w.shape[0]
    desc = _gluon_desc
    b_desc = desc(w.view(E * N, K), [cfg.bn, cfg.bk]) if b_nk else desc(w.view(E * K, N), [cfg.bk, cfg.bn])
    progs = min(_num_sms(a_SK.device), _m_grid(S, E, N, cfg)[0])
    compiled = g.grouped_mm_pp_kernel[(progs,)](
        desc(a_SK, [cfg.bm, cfg.bk]), r.tok_S, r.counts_E, b_desc, c_SN, desc(c_SN, [cfg.bm, cfg.bn]),
        scale_S if scale_S is not None else r.w_S, K, N, E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn, BK=cfg.bk,
        STAGES=cfg.num_stages, NUM_PROGRAMS=progs, B_MODE=int(b_nk), HAS_SCALE=scale_S is not None,
        num_warps=cfg.num_warps, maxnreg=cfg.maxnreg)  # fmt: skip
    _record(f"{name}_pp", compiled)


def _grouped_mm(
    a_SK, w, stride_be, stride_bk, stride_bn, N, r: Routing, scale_S, cfg: GemmConfig, a_idx=None, name="mm"
):
    """c[s] = a[row(s)] @ B[e(s)]; B[e][k, n] = w[e] at k*stride_bk + n*stride_bn; row(s) = a_idx[s] or s."""
    k = _k()
    S, K = r.tok_S.shape[0], a_SK.shape[1]
    E = w.shape[0]
    c_SN = torch.empty((S, N), dtype=a_SK.dtype, device=a_SK.device)
    b_nk = stride_bk == 1  # w[e] stored (N, K): the down projection; else (K, N)
    tma_ok = _tma_ok(c_SN, w, *(() if a_idx is not None else (a_SK,)))
    if tma_ok and a_idx is None and _gluon_ok(a_SK, CONFIG.grouped_mm_pp, 2.0 * S * N * K, (K, "bk")):
        _grouped_mm_pp_gluon(a_SK, w, c_SN, b_nk, N, r, scale_S, CONFIG.grouped_mm_pp, name)
        return c_SN
    if tma_ok and _gluon_ok(a_SK, CONFIG.grouped_mm_ws, 2.0 * S * N * K, (K, "bk")):
        _grouped_mm_gluon(a_SK, w, c_SN, b_nk, N, r, scale_S, CONFIG.grouped_mm_ws, a_idx, name)
        return c_SN
    a_desc = _desc(a_SK, [cfg.bm, cfg.bk]) if a_idx is None else None
    if b_nk:
        b_desc = _desc(w.view(E * N, K), [cfg.bn, cfg.bk])
    else:
        b_desc = _desc(w.view(E * K, N), [cfg.bk, cfg.bn])
    args = (a_SK, w, c_SN, scale_S if scale_S is not None else a_SK, r.counts_E,
            a_idx if a_idx is not None else r.tok_S, a_desc, b_desc, N, K, stride_be, stride_bk, stride_bn)
    meta = dict(E=E, E_P=_pow2(E), BM=cfg.bm, BN=cfg.bn, BK=cfg.bk,
                HAS_SCALE=scale_S is not None, EVEN_K=K % cfg.bk == 0, GATHER_A=a_idx is not None,
                TMA_A=a_desc is not None, TMA_B=b_desc is not None, B_NK=b_nk, **cfg.launch())  # fmt: skip
    if CONFIG.persistent == "off":
        compiled = k._grouped_mm_kernel[_m_grid(S, E, N, cfg)](*args, **meta)
    else:
        progs = min(_num_sms(a_SK.device), _m_grid(S, E, N, cfg)[0])
        ws = CONFIG.warp_specialize and b_desc is not None
        compiled = k._grouped_mm_persistent_kernel[(progs,)](
            *args, NUM_PROGRAMS=progs, FLATTEN=CONFIG.persistent == "flat", WARP_SPECIALIZE=ws, **meta)
    _record(name, compiled)
    return c_SN


def _combine(src_SD, r: Routing, T: int, extra_TD=None):
    """out[t] = sum_j src[pos[t, j]] (+ extra[t]), in float32."""
    k = _k()
    D = src_SD.shape[1]
    top_k = r.pos_TK.shape[1]
    out_TD = torch.empty((T, D), dtype=src_SD.dtype, device=src_SD.device)
    bt, bd = 16, 256
    k._combine_kernel[(triton_cdiv(T, bt), triton_cdiv(D, bd))](
        src_SD, r.pos_TK, extra_TD if extra_TD is not None else src_SD, out_TD, T, D,
        K=top_k, HAS_EXTRA=extra_TD is not None, BT=bt, BD=bd, num_warps=4,
    )  # fmt: skip
    return out_TD


def _router_bwd(logits_TE, r: Routing, dw_S, norm_topk_prob: bool, dlogits_out_TE=None):
    """router_backward below as one kernel; returns dlogits (T, E) in the logits' dtype."""
    k = _k()
    T, E = logits_TE.shape
    top_k = r.top_idx_TK.shape[1]
    e_p = _pow2(E)
    bt = max(1, min(64, 4096 // e_p))
    out = torch.empty_like(logits_TE)
    k._router_bwd_kernel[(triton_cdiv(T, bt),)](
        logits_TE, r.top_idx_TK, r.pos_TK, dw_S,
        dlogits_out_TE.contiguous() if dlogits_out_TE is not None else logits_TE, out, T,
        E=E, E_P=e_p, K=top_k, K_P=_pow2(top_k), BT=bt, NORM=bool(norm_topk_prob),
        HAS_DOUT=dlogits_out_TE is not None, GATHER=CONFIG.router_gather, num_warps=4,
    )  # fmt: skip
    return out


def _g_gemm(dy_TD, down_EHI, r: Routing):
    """G = dY[tok] @ Wd[e] per sorted row (the unweighted grad of h): B[k=d, n=i] = down[e, d, i]."""
    E, D, I = down_EHI.shape
    return _grouped_mm(dy_TD, down_EHI, D * I, I, 1, I, r, None, CONFIG.down_bwd, a_idx=r.tok_S, name="g")


def _down_bwd_split(dy_TD, down_EHI, gu_S2I, r: Routing):
    """G = dY[tok] @ Wd[e] as a plain gathered grouped GEMM, then the SwiGLU backward as a pass."""
    k = _k()
    I = down_EHI.shape[2]
    S = gu_S2I.shape[0]
    g_SI = _g_gemm(dy_TD, down_EHI, r)
    dgu_S2I = torch.empty_like(gu_S2I)
    # h*w overwrites G (CONFIG.hw_in_place): one (S, I) buffer fewer at the backward's peak
    hw_SI = g_SI if CONFIG.hw_in_place else torch.empty((S, I), dtype=dy_TD.dtype, device=dy_TD.device)
    dw_S = torch.empty((S,), dtype=torch.float32, device=dy_TD.device)
    br = 32
    k._swiglu_bwd_kernel[(triton_cdiv(S, br),)](
        g_SI, gu_S2I, r.w_S, dgu_S2I, hw_SI, dw_S, S, I, BR=br, BI=128, IN_PLACE=hw_SI is g_SI, num_warps=4
    )
    return dgu_S2I, hw_SI, dw_S


def _down_bwd_outputs(gu_S2I, I: int, num_n: int):
    """dGU (S, 2I), h*w (S, I) and the per-N-tile routing-weight grad partials (S, num_n) fp32."""
    S = gu_S2I.shape[0]
    return (torch.empty_like(gu_S2I), gu_S2I.new_empty((S, I)),
            torch.empty((S, num_n), dtype=torch.float32, device=gu_S2I.device))  # fmt: skip


def _down_bwd_gluon(dy_TD, down_EHI, gu_S2I, r: Routing, cfg: GemmConfig):
    from kernels import _moe_gluon_kernels as g

    T, D = dy_TD.shape
    E, _, I = down_EHI.shape
    S = gu_S2I.shape[0]
    num_n = triton_cdiv(I, cfg.bn)
    dgu_S2I, hw_SI, dw_part = _down_bwd_outputs(gu_S2I, I, num_n)
    wd_desc = _gluon_desc(down_EHI.view(E * D, I), [cfg.bk, cfg.bn])
    gu_desc = _gluon_desc(gu_S2I, [cfg.bm, cfg.bn])
    progs = min(_num_sms(dy_TD.device), _m_grid(S, E, I, cfg)[0])
    compiled = g.down_bwd_ws_kernel[(progs,)](
        dy_TD, r.tok_S, r.counts_E, gu_desc, r.w_S, dgu_S2I, hw_SI, dw_part, wd_desc, D, I, E=E, E_P=_pow2(E),
        BM=cfg.bm, BN=cfg.bn, BK=cfg.bk, STAGES=cfg.num_stages, SR=8, NUM_PROGRAMS=progs,
        num_warps=cfg.num_warps, maxnreg=cfg.maxnreg)  # fmt: skip
    _record("down_bwd_ws", compiled)
    return dgu_S2I, hw_SI, dw_part.sum(dim=1)


def _g_swiglu_gluon(dy_TD, down_EHI, gu_S2I, r: Routing, cfg: GemmConfig):
    """The G GEMM and the SwiGLU backward in one Gluon kernel (g_swiglu_ws_kernel)."""
    from kernels import _moe_gluon_kernels as g

    T, D = dy_TD.shape
    E, _, I = down_EHI.shape
    S = gu_S2I.shape[0]
    num_n = triton_cdiv(I, cfg.bn)
    dgu_S2I, hw_SI, dw_part = _down_bwd_outputs(gu_S2I, I, num_n)
    wd_desc = _gluon_desc(down_EHI.view(E * D, I), [cfg.bk, cfg.bn])
    progs = min(_num_sms(dy_TD.device), _m_grid(S, E, I, cfg)[0])
    compiled = g.g_swiglu_ws_kernel[(progs,)](
        dy_TD, r.tok_S, r.counts_E, wd_desc, gu_S2I, r.w_S, dgu_S2I, hw_SI, dw_part, D, I, E=E, E_P=_pow2(E),
        BM=cfg.bm, BN=cfg.bn, BK=cfg.bk, STAGES=cfg.num_stages, SR=CONFIG.g_swiglu_sr, PF=CONFIG.g_swiglu_pf,
        NUM_PROGRAMS=progs,
        num_warps=cfg.num_warps, maxnreg=cfg.maxnreg)  # fmt: skip
    _record("g_swiglu_ws", compiled)
    return dgu_S2I, hw_SI, dw_part.sum(dim=1) if num_n > 1 else dw_part.view(S)


def _down_bwd(dy_TD, down_EHI, gu_S2I, r: Routing):
    T, D = dy_TD.shape
    flops = 2.0 * gu_S2I.shape[0] * (gu_S2I.shape[1] // 2) * D
    if _gluon_ok(dy_TD, CONFIG.down_bwd_ws, flops, (D, "bk")):
        return _down_bwd_gluon(dy_TD, down_EHI, gu_S2I, r, CONFIG.down_bwd_ws)
    if _tma_ok(down_EHI, gu_S2I) and _gluon_ok(dy_TD, CONFIG.g_swiglu_ws, flops, (D, "bk")):
        return _g_swiglu_gluon(dy_TD, down_EHI, gu_S2I, r, CONFIG.g_swiglu_ws)
    if CONFIG.down_bwd_split:
        return _down_bwd_split(dy_TD, down_EHI, gu_S2I, r)
    k, cfg = _k(), CONFIG.down_bwd
    E, _, I = down_EHI.shape
    S = gu_S2I.shape[0]
    num_n = triton_cdiv(I, cfg.bn)
    dgu_S2I, hw_SI, dw_part = _down_bwd_outputs(gu_S2I, I, num_n)
    wd_desc = _desc(down_EHI.view(E * D, I), [cfg.bk, cfg.bn])
    compiled = k._down_bwd_swiglu_kernel[_m_grid(S, E, I, cfg)](
        dy_TD,
        down_EHI,
        r.tok_S,
        r.counts_E,
        gu_S2I,
        r.w_S,
        dgu_S2I,
        hw_SI,
        dw_part,
        wd_desc,
        D,
        I,
        E=E,
        E_P=_pow2(E),
        BM=cfg.bm,
        BN=cfg.bn,
        BK=cfg.bk,
        EVEN_K=D % cfg.bk == 0,
        USE_TMA=wd_desc is not None,
        PREFETCH=CONFIG.down_bwd_prefetch,
        **cfg.launch(),
    )
    _record('down_bwd', compiled)
    return dgu_S2I, hw_SI, dw_part.sum(dim=1)


def _wgrad_gluon(a_src, a_idx, b_src, out, M: int, N: int, r: Routing, cfg: GemmConfig, out_t: bool) -> None:
    """out[e] = a_src[a_idx]^T b_src over expert e's rows by the Gluon kernel (the gathered operand on
    the tile's M side, b_src sorted and TMA-fed)."""
    from kernels import _moe_gluon_kernels as g

    E = r.counts_E.shape[0]
    desc = _gluon_desc
    b_desc = desc(b_src, [cfg.bk, cfg.bn])
    out_desc = desc(out.view(E * N, M), [cfg.bn, cfg.bm]) if out_t else desc(out.view(E * M, N), [cfg.bm, cfg.bn])
    tiles = E * (M // cfg.bm) * (N // cfg.bn)
    progs = min(_num_sms(a_src.device), tiles)
    compiled = g.wgrad_ws_kernel[(progs,)](
        a_src, a_idx, r.counts_E, r.offsets_E1, b_desc, out_desc, M, N, a_src.stride(0), E=E, BM=cfg.bm,
        BN=cfg.bn, BK=cfg.bk, STAGES=cfg.num_stages, NUM_PROGRAMS=progs, OUT_T=out_t,
        num_warps=cfg.num_warps, maxnreg=cfg.maxnreg)  # fmt: skip
    _record(f"wgrad_ws{M}x{N}" + ("T" if out_t else ""), compiled)


def _wgrad(a_src, a_idx, b_src, b_idx, M: int, N: int, r: Routing, dtype, cfg: GemmConfig, out_t: bool = False):
    """out[e] (M, N) = sum_s a_src[a_idx[s]]^T b_src[b_idx[s]] over expert e's sorted rows; (N, M),
    the transpose, with out_t."""
    k = _k()
    E = r.counts_E.shape[0]
    out = torch.empty((E, N, M) if out_t else (E, M, N), dtype=dtype, device=a_src.device)
    flops = 2.0 * r.tok_S.shape[0] * M * N
    if a_idx is not None and _tma_ok(b_src, out) and _gluon_ok(a_src, CONFIG.wgrad_ws, flops, (M, "bm"), (N, "bn")):
        _wgrad_gluon(a_src, a_idx, b_src, out, M, N, r, CONFIG.wgrad_ws, out_t)
        return out
    grid = (triton_cdiv(M, cfg.bm) * triton_cdiv(N, cfg.bn), E)
    # TMA only on the ungathered side, and only when the other side is gathered (and so masked).
    assert (a_idx is None) != (b_idx is None)
    a_desc = _desc(a_src, [cfg.bk, cfg.bm]) if a_idx is None else None
    b_desc = _desc(b_src, [cfg.bk, cfg.bn]) if b_idx is None else None
    compiled = k._grouped_wgrad_kernel[grid](
        a_src,
        b_src,
        out,
        a_idx if a_idx is not None else r.tok_S,
        b_idx if b_idx is not None else r.tok_S,
        r.counts_E,
        r.offsets_E1,
        a_desc,
        b_desc,
        M,
        N,
        a_src.stride(0),
        b_src.stride(0),
        BM=cfg.bm,
        BN=cfg.bn,
        BK=cfg.bk,
        GATHER_A=a_idx is not None,
        GATHER_B=b_idx is not None,
        TMA_A=a_desc is not None,
        TMA_B=b_desc is not None,
        IDX_PREFETCH=CONFIG.wgrad_idx_prefetch,
        OUT_T=out_t,
        **cfg.launch(),
    )
    _record(f"wgrad{M}x{N}" + ("T" if out_t else ""), compiled)
    return out


def router_backward(
    router_logits_TE: torch.Tensor,
    top_idx_TK: torch.Tensor,
    d_top_w_TK: torch.Tensor,
    norm_topk_prob: bool,
    d_logits_TE: torch.Tensor | None = None,
) -> torch.Tensor:
    """Gradient wrt the router logits (float32) from the gradient of the top-k weights.

    Backward of softmax(fp32) -> gather top-k -> optional renormalisation (the cast to x dtype passes
    the gradient through), plus the gradient arriving directly on the returned logits.
    """
    probs_TE = torch.softmax(router_logits_TE.float(), dim=-1)
    idx = top_idx_TK.long()
    v_TK = probs_TE.gather(1, idx)
    dv_TK = d_top_w_TK.float()
    if norm_topk_prob:
        s_T1 = v_TK.sum(dim=1, keepdim=True)
        w_TK = v_TK / s_T1
        dv_TK = (dv_TK - (dv_TK * w_TK).sum(dim=1, keepdim=True)) / s_T1
    dp_TE = torch.zeros_like(probs_TE).scatter_(1, idx, dv_TK)
    dlogits_TE = probs_TE * (dp_TE - (v_TK * dv_TK).sum(dim=1, keepdim=True))
    if d_logits_TE is not None:
        dlogits_TE = dlogits_TE + d_logits_TE.float()
    return dlogits_TE


def _down(h_SI, down_EHI, r: Routing):
    """O = (h @ Wd[e]^T) * w per sorted row: B[k=i, n=d] = down[e, d, i]."""
    E, D, I = down_EHI.shape
    return _grouped_mm(h_SI, down_EHI, D * I, 1, I, D, r, r.w_S, CONFIG.down, name="down")


def _dwd(dy_TD, hw_SI, r: Routing, dtype):
    """dWd[e] (D, I) = dY[tok]^T (h * w) over expert e's rows."""
    return _wgrad(dy_TD, r.tok_S, hw_SI, None, dy_TD.shape[1], hw_SI.shape[1], r, dtype, CONFIG.wgrad)


def _dwgu(dgu_S2I, x_TD, r: Routing, dtype):
    """dWgu[e] (2I, D) = dGU^T X[tok] over expert e's rows; with dwgu_t, computed as its transpose
    X[tok]^T dGU (the gathered X rows on the tile's M side, as in dWd) and stored transposed."""
    cfg = CONFIG.wgrad_gu or CONFIG.wgrad
    I2, D = dgu_S2I.shape[1], x_TD.shape[1]
    if CONFIG.dwgu_t:
        return _wgrad(x_TD, r.tok_S, dgu_S2I, None, D, I2, r, dtype, cfg, out_t=True)
    return _wgrad(dgu_S2I, None, x_TD, r.tok_S, I2, D, r, dtype, cfg)


def _dxs(dgu_S2I, gate_up_E2IH, r: Routing):
    """dXs = dGU @ Wgu[e] per sorted row: B[k=j, n=d] = gate_up[e, j, d]."""
    E, I2, D = gate_up_E2IH.shape
    return _grouped_mm(dgu_S2I, gate_up_E2IH, I2 * D, D, 1, D, r, None, CONFIG.dx, name="dx")


def _router_grads(dxs_SD, dw_S, logits_TE, x_TD, router_w_ED, r: Routing, norm_topk_prob, dlogits_out_TE,
                  need_router_w: bool):  # fmt: skip
    """The backward's tail: router-logit grads, d router_w, and dX (the combine of dXs plus the
    router's share dlogits @ router_w)."""
    if CONFIG.router_bwd == "triton":
        dlogits_TE = _router_bwd(logits_TE, r, dw_S, norm_topk_prob, dlogits_out_TE)
    else:
        d_top_w_TK = dw_S[r.pos_TK.long()]  # routing-weight grads, from sorted rows back to (t, j)
        dlogits_TE = router_backward(logits_TE, r.top_idx_TK, d_top_w_TK, norm_topk_prob, dlogits_out_TE)
        dlogits_TE = dlogits_TE.to(x_TD.dtype)
    dx_TD = _combine(dxs_SD, r, x_TD.shape[0], extra_TD=dlogits_TE @ router_w_ED)
    d_router_w = dlogits_TE.t() @ x_TD if need_router_w else None
    return dx_TD, d_router_w


def _routing_outputs(r: Routing) -> tuple[torch.Tensor, ...]:
    """The integer routing tensors that pass from the up node to the down node (w_S travels apart)."""
    return r.top_idx_TK, r.top_w_TK, r.counts_E, r.offsets_E1, r.pos_TK, r.tok_S


class _MoEUp(torch.autograd.Function):
    """Router and gate/up: x -> (GU, h, w_S, logits, routing). Saves x, the weights, the logits and the
    routing; not GU, which only the down node saves, so that autograd frees it once that node's
    backward has run, before this node's backward allocates dXs and dWgu (kernels/NOTES.md, v12)."""

    @staticmethod
    def forward(ctx, x_TD, router_w_ED, gate_up_E2IH, top_k, norm_topk_prob):
        logits_TE = F.linear(x_TD, router_w_ED)
        r = route(logits_TE, top_k, norm_topk_prob)
        gu_S2I, h_SI = _gate_up(x_TD, gate_up_E2IH, r)
        ints = _routing_outputs(r)
        ctx.save_for_backward(x_TD, router_w_ED, gate_up_E2IH, logits_TE, *ints, r.w_S)
        ctx.norm_topk_prob = norm_topk_prob
        ctx.mark_non_differentiable(h_SI, *ints)
        ctx.set_materialize_grads(False)  # no zero tensors for h and the integer outputs
        return gu_S2I, h_SI, r.w_S, logits_TE, *ints

    @staticmethod
    def backward(ctx, dgu_S2I, _dh, dw_S, dlogits_out_TE, *_ints):
        x_TD, router_w_ED, gate_up_E2IH, logits_TE, *rt = ctx.saved_tensors
        top_idx, top_w, counts, offsets, pos, tok, w_S = rt
        r = Routing(top_idx, top_w, counts, offsets, pos, tok, w_S)
        S, I2 = tok.shape[0], gate_up_E2IH.shape[1]
        if dgu_S2I is None:
            dgu_S2I = x_TD.new_zeros((S, I2))
        if dw_S is None:
            dw_S = torch.zeros_like(w_S)
        # dX first, then dWgu: dXs (S, D) is freed by the combine before dWgu (E, 2I, D) is allocated
        dxs_SD = _dxs(dgu_S2I, gate_up_E2IH, r)
        dx_TD, d_router_w = _router_grads(dxs_SD, dw_S, logits_TE, x_TD, router_w_ED, r, ctx.norm_topk_prob,
                                          dlogits_out_TE, ctx.needs_input_grad[1])  # fmt: skip
        del dxs_SD
        d_gate_up = _dwgu(dgu_S2I, x_TD, r, gate_up_E2IH.dtype) if ctx.needs_input_grad[2] else None
        return dx_TD, d_router_w, d_gate_up, None, None


class _MoEDown(torch.autograd.Function):
    """Down projection and combine: (GU, w_S, down, h, routing) -> y. Saves GU (the pre-activation:
    h is recomputed from it), the down weights and the routing; h itself is used here and dropped."""

    @staticmethod
    def forward(ctx, gu_S2I, w_S, down_EHI, h_SI, top_idx, top_w, counts, offsets, pos, tok):
        r = Routing(top_idx, top_w, counts, offsets, pos, tok, w_S)
        o_SD = _down(h_SI, down_EHI, r)
        y_TD = _combine(o_SD, r, pos.shape[0])
        ctx.save_for_backward(gu_S2I, down_EHI, top_idx, top_w, counts, offsets, pos, tok, w_S)
        return y_TD

    @staticmethod
    def backward(ctx, dy_TD):
        gu_S2I, down_EHI, *rt = ctx.saved_tensors
        r = Routing(*rt)
        dy_TD = dy_TD.contiguous()
        dgu_S2I, hw_SI, dw_S = _down_bwd(dy_TD, down_EHI, gu_S2I, r)
        d_down = _dwd(dy_TD, hw_SI, r, down_EHI.dtype) if ctx.needs_input_grad[2] else None
        return dgu_S2I, dw_S, d_down, None, None, None, None, None, None, None


def saved_bytes(T: int, D: int, I: int, E: int, K: int, dtype=torch.bfloat16) -> dict[str, int]:
    """Bytes each tensor saved for the backward holds beyond the inputs and weights (which the caller
    holds anyway): GU (S, 2I), the only large one; the router logits; the routing (int32 and the
    sorted routing weights in float32). h (S, I) and the down outputs (S, D) are not saved."""
    S, b = T * K, torch.empty((), dtype=dtype).element_size()
    return {
        "GU (S x 2I)": S * 2 * I * b,
        "logits (T x E)": T * E * b,
        "routing (top_idx, top_w, pos: T x K; tok, w_S: S; counts, offsets: E)":
            T * K * (4 + b + 4) + S * (4 + 4) + (2 * E + 1) * 4,
    }  # fmt: skip


def moe_triton(x_TD, router_w_ED, gate_up_E2IH, down_EHI, top_k, norm_topk_prob=True):
    """Fused MoE block on 2-D x_TD (bf16/fp16, CUDA); returns (y_TD, router_logits_TE)."""
    if x_TD.dtype not in SUPPORTED_DTYPES:
        raise KernelUnavailableError(
            f"impl='triton' supports {SUPPORTED_DTYPES}, got {x_TD.dtype}; use impl='torch'"
        )
    for name, t in (("router_w", router_w_ED), ("gate_up_proj", gate_up_E2IH), ("down_proj", down_EHI)):
        if t.dtype != x_TD.dtype:
            raise KernelUnavailableError(f"{name} is {t.dtype} but x is {x_TD.dtype}; cast them to one dtype")
    gu_S2I, h_SI, w_S, logits_TE, *ints = _MoEUp.apply(
        x_TD.contiguous(), router_w_ED.contiguous(), gate_up_E2IH.contiguous(), int(top_k), bool(norm_topk_prob)
    )
    y_TD = _MoEDown.apply(gu_S2I, w_S, down_EHI.contiguous(), h_SI, *ints)
    return y_TD, logits_TE
