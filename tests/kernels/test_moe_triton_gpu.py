"""CUDA tests of the fused Triton MoE path against a float64 per-expert loop.

Each check draws fresh inputs, runs kernels.moe(impl="triton") forward and backward, and compares
y, dX, d router_w, dW_gate_up and dW_down with the float64 reference (kernels/moe_reference.py)
that follows the same expert choice (bf16 logits have exact ties, which any two top-k
implementations may break differently; the router is checked on its own for a valid top-k).
Skipped without CUDA or Triton.
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from __future__ import annotations

import dataclasses
import importlib.util
import zlib

import pytest
import torch

from kernels import moe
from kernels.moe_inputs import make_moe_inputs
from kernels.moe_reference import moe_reference
from kernels.moe_triton import GemmConfig

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available() or importlib.util.find_spec("triton") is None,
        reason="needs CUDA and triton",
    ),
]

# (T, D, I, E, K, norm): T a multiple of no block size; D=200 exercises the masked-K loop,
# I=96 partial N tiles, E=40 a non-power-of-two expert count.
CASES = [
    (1000, 256, 192, 16, 4, True),
    (777, 200, 96, 64, 8, True),
    (301, 128, 64, 40, 6, False),
    (515, 128, 256, 24, 4, True),  # D % 128 == 0, I % 256 == 0: where the Gluon weight-grad kernel runs
]
TOL = {torch.bfloat16: 1.5e-2, torch.float16: 3e-3}


def _rel(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-30)).item()


def _poison_allocator():
    # Freed NaN blocks are handed out again by the caching allocator: outputs a kernel fails to
    # write then show up as NaN instead of as stale, plausible values.
    buf = torch.full((64 * 2**20,), float("nan"), device="cuda", dtype=torch.float32)
    del buf


def _run_and_check(T, D, I, E, K, norm, routing, dtype, seed):
    from kernels.moe_triton import route

    m = make_moe_inputs(T, D, I, E, K, routing, dtype=dtype, device="cuda", seed=seed, requires_grad=True)
    ins = m.tensors()
    g = torch.Generator(device="cpu").manual_seed(seed + 1)
    dy = torch.randn(T, D, generator=g).to("cuda", dtype)
    dlogits = (0.1 * torch.randn(T, E, generator=g)).to("cuda", dtype)
    _poison_allocator()
    y, logits = moe(*ins, K, norm_topk_prob=norm, impl="triton")
    grads = torch.autograd.grad((y, logits), ins, (dy, dlogits))
    r = route(logits.detach(), K, norm)  # deterministic: the choice the forward made

    ref_ins = [t.detach().double().requires_grad_() for t in ins]
    y64, logits64 = moe_reference(*ref_ins, K, norm, forced_top_idx_TK=r.top_idx_TK)
    grads64 = torch.autograd.grad((y64, logits64), ref_ins, (dy.double(), dlogits.double()))
    names = ["y", "dx", "d_router_w", "d_gate_up", "d_down"]
    errs = dict(
        zip(names, [_rel(y, y64)] + [_rel(a, b) for a, b in zip(grads, grads64, strict=True)], strict=True)
    )
    diff = (y.double() - y64).abs()
    print(
        f"{routing} {(T, D, I, E, K, norm)} {dtype}: max|dy| {diff.max().item():.2e} "
        f"mean {diff.mean().item():.2e} rel " + " ".join(f"{k}={v:.2e}" for k, v in errs.items())
    )
    for t in (y, *grads):
        assert torch.isfinite(t).all()
    bad = {k: v for k, v in errs.items() if not v < TOL[dtype]}
    assert not bad, f"relative errors over {TOL[dtype]}: {bad}"
    return r, m


# Triton kernels only: the Gluon GEMMs (on by default on Hopper) off, so these configurations test
# the Triton paths they name. tma=False turns the Gluon kernels off by itself.
_OFF = dict(persistent="off", gate_up_persistent="off", wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None)
_TRITON = dict(wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None)
_CONFIGS = {
    "ptr_fused": dict(tma=False, down_bwd_split=False, wgrad_idx_prefetch=False, **_OFF),
    "tma_fused": dict(tma=True, down_bwd_split=False, **_OFF),
    "tma_split": dict(tma=True, down_bwd_split=True, wgrad_idx_prefetch=False, **_OFF),
    "ptr_split_idx_prefetch": dict(tma=False, down_bwd_split=True, wgrad_idx_prefetch=True, **_OFF),
    # TMA, split, joint gate/up, dWgu transposed, the router backward in Triton; on Hopper the
    # weight-grad and other grouped GEMMs in Gluon where the shape fits their tiles
    "default": dict(),
    # the same with every GEMM in Triton: persistent flattened grouped GEMMs, indices carried ahead (v8)
    "v8_triton": dict(**_TRITON),
    "ptr_split_persistent_loop": dict(tma=False, persistent="loop", gate_up_persistent="loop"),
    "tma_joint_gate_up_flat_wgrad_gu": dict(
        gate_up_persistent="flat", gate_up_joint=True, wgrad_gu=GemmConfig(128, 128, 64, 8, 3), **_TRITON
    ),
    "v5_two_acc_gate_up_dwgu_torch_router_bwd": dict(
        gate_up_joint=False, dwgu_t=False, router_bwd="torch", **_TRITON
    ),
    "ptr_dwgu_untransposed_per_tile": dict(tma=False, dwgu_t=False, wgrad_idx_prefetch=False, **_OFF),
    "warp_specialize": dict(warp_specialize=True, **_TRITON),
    # The Gluon kernels (Hopper only; elsewhere, and where a shape does not fit, the Triton kernels
    # run), beside the default's Gluon GEMMs: gate/up at 4 stages of BK=64 and at 8 of BK=32, and the
    # fused down-projection backward.
    "gluon_gate_up": dict(gate_up_ws=GemmConfig(128, 128, 64, 8, 4, 168)),
    "gluon_gate_up_mma_epi": dict(gate_up_ws=GemmConfig(128, 128, 64, 8, 4, 168), gate_up_ws_epi="mma"),
    # gate/up as the ping-pong Gluon kernel (v15): two warpgroups, a (128, 2 x 64) tile each
    "gluon_gate_up_pp": dict(gate_up_pp=GemmConfig(128, 64, 64, 4, 4, 168)),
    "gluon_gate_up_k32_down_bwd": dict(
        gate_up_ws=GemmConfig(128, 128, 32, 8, 8, 168), down_bwd_ws=GemmConfig(128, 128, 64, 8, 4, 128)
    ),
    # The weight-grad GEMMs in Gluon at (128, 256) tiles, BK=64 (3 stages) and BK=32 (6 stages).
    "gluon_wgrad": dict(grouped_mm_ws=None, g_swiglu_ws=None),
    "gluon_wgrad_k32": dict(wgrad_ws=GemmConfig(128, 256, 32, 8, 6, 168), grouped_mm_ws=None, g_swiglu_ws=None),
    # down, G and dX in Gluon (where K % 64 == 0) without the Gluon weight-grad kernel.
    "gluon_grouped_mm": dict(wgrad_ws=None, g_swiglu_ws=None),
    # the same kernels with the scale and the next tile's coordinates off the epilogue's path (v16 try)
    "gluon_grouped_mm_early": dict(grouped_mm_epi="early"),
    "gluon_grouped_mm_sub": dict(grouped_mm_epi="sub", grouped_mm_ws=GemmConfig(128, 256, 64, 8, 4, 168)),
    # down and dX as the ping-pong Gluon kernel (v16 try): a (128, 128) tile per consumer warpgroup
    "gluon_grouped_mm_pp": dict(grouped_mm_pp=GemmConfig(128, 128, 64, 4, 5, 168)),
    # The G GEMM with the SwiGLU backward in its consumers' epilogue (v13, the default's): without the
    # other Gluon GEMMs, and with 8-row slices two ahead; "v12_split" is the split path it replaced.
    "gluon_g_swiglu": dict(wgrad_ws=None, grouped_mm_ws=None),
    "v12_split": dict(g_swiglu_ws=None),
    "gluon_g_swiglu_sr8_pf2": dict(g_swiglu_ws=GemmConfig(128, 256, 64, 8, 3, 168), g_swiglu_sr=8, g_swiglu_pf=2),
}


@pytest.fixture(params=list(_CONFIGS), ids=list(_CONFIGS))
def tma(request, monkeypatch):
    """Weights through pointers or TMA descriptors; the down-projection backward fused or split; the
    grouped GEMMs one program per tile or persistent; weight-grad indices loaded in step or ahead."""
    import kernels.moe_triton as mt

    # gluon_min_flops=0: the Gluon kernels take these small shapes too (by default they leave GEMMs
    # this small to the Triton kernels, whose launch costs the host less).
    monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(mt.CONFIG, gluon_min_flops=0, **_CONFIGS[request.param]))
    return request.param


@pytest.mark.parametrize("case", CASES, ids=lambda c: "T{}_D{}_I{}_E{}_K{}".format(*c))
@pytest.mark.parametrize("routing", ["uniform", "balanced", "skewed", "empty"])
def test_triton_matches_float64_reference(case, routing, tma):
    T, D, I, E, K, norm = case
    if routing == "balanced" and D <= E:
        pytest.skip("balanced routing needs D > E")
    seed = zlib.crc32(repr((case, routing, tma)).encode())  # fresh inputs per check, reproducible
    r, m = _run_and_check(T, D, I, E, K, norm, routing, torch.bfloat16, seed)
    if routing == "empty":
        assert (r.counts_E == 0).sum().item() >= E // 2


def test_triton_fp16():
    _run_and_check(513, 128, 64, 16, 2, True, "uniform", torch.float16, seed=7)


# The router cuts tokens into at most ROUTER_CHUNKS chunks: 3001 tokens give one sub-block per
# chunk, 70001 several, and E=512 the smallest sub-blocks and a chunk-prefix loop of many steps.
@pytest.mark.parametrize("T,E,K", [(3001, 128, 8), (70001, 64, 8), (40000, 512, 10), (5, 16, 4)])
def test_router_is_a_valid_top_k_and_permutation(T, E, K):
    from kernels.moe_reference import route as ref_route
    from kernels.moe_triton import route

    logits = torch.randn(T, E, device="cuda").to(torch.bfloat16)
    r = route(logits, K, True)
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    idx = r.top_idx_TK.long()
    chosen = probs.gather(1, idx)
    kth_best = probs.topk(K, dim=-1).values
    # Same multiset of values as torch.topk (ties may pick other indices), in descending order.
    torch.testing.assert_close(chosen, kth_best, rtol=1e-6, atol=0)
    assert (idx.sort(dim=1).values.diff(dim=1) > 0).all(), "an expert was chosen twice"
    want_w, _ = ref_route(logits, K, True)
    torch.testing.assert_close(r.top_w_TK.float(), want_w.float(), rtol=8e-3, atol=1e-6)
    counts = torch.bincount(idx.flatten(), minlength=E)
    assert torch.equal(r.counts_E.long(), counts)
    assert torch.equal(r.offsets_E1[1:].long(), counts.cumsum(0))
    pos = r.pos_TK.long().flatten()
    assert torch.equal(pos.sort().values, torch.arange(T * K, device="cuda"))
    assert torch.equal(r.tok_S.long()[r.pos_TK.long()], torch.arange(T, device="cuda")[:, None].expand(T, K))
    # Rows of each expert are in token order (deterministic, like a stable sort).
    expert_of_row = torch.repeat_interleave(torch.arange(E, device="cuda"), counts)
    key = expert_of_row * T + r.tok_S.long()
    assert (key.diff() > 0).all()
    assert torch.equal(r.w_S[r.pos_TK.long()], r.top_w_TK.float())


def test_triton_is_deterministic_and_keeps_leading_dims():
    m = make_moe_inputs(640, 128, 64, 32, 4, "uniform", device="cuda", seed=11, requires_grad=True)
    x, rw, gu, dn = m.tensors()
    outs = []
    for _ in range(2):
        y, logits = moe(x.view(10, 64, 128), rw, gu, dn, 4, impl="auto")
        assert y.shape == (10, 64, 128) and logits.shape == (640, 32)
        outs.append([y, *torch.autograd.grad(y.float().square().sum(), (x, rw, gu, dn))])
    for a, b in zip(*outs, strict=True):
        assert torch.equal(a, b)


# BT tokens per program is 4096 // E_P: 32 at E=128, 8 at E=512; T a multiple of neither.
@pytest.mark.parametrize("T,E,K,norm", [(1001, 128, 8, True), (333, 40, 6, False), (70, 512, 10, True)])
def test_router_backward_kernel_matches_pytorch(T, E, K, norm):
    from kernels.moe_triton import _router_bwd, route, router_backward

    g = torch.Generator(device="cpu").manual_seed(T + E)
    logits = torch.randn(T, E, generator=g).to("cuda", torch.bfloat16)
    r = route(logits, K, norm)
    dw_S = torch.randn(T * K, generator=g).to("cuda")
    d_out = (0.1 * torch.randn(T, E, generator=g)).to("cuda", torch.bfloat16)
    for direct in (None, d_out):
        got = _router_bwd(logits, r, dw_S, norm, direct)
        want = router_backward(logits, r.top_idx_TK, dw_S[r.pos_TK.long()], norm, direct)
        assert got.dtype == logits.dtype and got.shape == (T, E)
        torch.testing.assert_close(got.float(), want.to(logits.dtype).float(), rtol=1e-2, atol=1e-4)


# The router's gather form (router_gather, an option: one (max, index) reduction per pick, ranks and
# chosen probabilities by tl.gather) against the reduction form (the default): the same routing bit for
# bit, with many exact ties among the logits, and the same router grads to rounding. Not bit for bit:
# with renormalisation sum(v * dv) is zero in exact arithmetic, and the two compiled forms round it
# differently (an H100 showed entries of ~1e-10 that differ).
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize(
    "T,E,K,norm", [(3001, 128, 8, True), (40000, 512, 10, True), (333, 40, 6, False), (77, 64, 1, True)]
)
def test_router_gather_matches_reduction_form(T, E, K, norm, ties, monkeypatch):
    import kernels.moe_triton as mt

    g = torch.Generator(device="cpu").manual_seed(T * E + ties)
    logits = torch.randn(T, E, generator=g)
    if ties:
        logits = (2 * logits).round() / 2
    logits = logits.to("cuda", torch.bfloat16)
    dw_S = torch.randn(T * K, generator=g).to("cuda")
    d_out = (0.1 * torch.randn(T, E, generator=g)).to("cuda", torch.bfloat16)
    outs = []
    for gather in (False, True):
        monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(mt.CONFIG, router_gather=gather))
        r = mt.route(logits, K, norm)
        grads = [mt._router_bwd(logits, r, dw_S, norm, direct) for direct in (None, d_out)]
        outs.append((dataclasses.astuple(r), grads))
    for a, b in zip(outs[0][0], outs[1][0], strict=True):
        assert torch.equal(a, b)
    for a, b in zip(outs[0][1], outs[1][1], strict=True):
        torch.testing.assert_close(b.float(), a.float(), rtol=1e-2, atol=1e-5)


def _gluon_routed(mt, T, D, I, E, K, routing, seed):
    """Inputs and their routing for a Gluon-against-Triton parity test; skips where Gluon cannot run."""
    if torch.cuda.get_device_capability()[0] != 9 or importlib.util.find_spec("triton.experimental.gluon") is None:
        pytest.skip("the Gluon kernels need a Hopper GPU and Triton's Gluon")
    m = make_moe_inputs(T, D, I, E, K, routing, device="cuda", seed=seed, requires_grad=False)
    x, rw, gu, dn = m.tensors()
    return x, rw, gu, dn, mt.route(torch.nn.functional.linear(x, rw), K, True)


# The Gluon GEMMs against the Triton ones on the same operands: every routing (experts with no rows
# get zero weight-grad tiles, partial M tiles take the masked store), row counts that are not
# multiples of BK, both weight-grad output layouts, gathered and TMA-fed A rows.
@pytest.mark.parametrize("routing", ["uniform", "skewed", "empty"])
@pytest.mark.parametrize("T,D,I,E,K", [(515, 128, 256, 24, 4), (4099, 256, 512, 16, 8)])
@pytest.mark.parametrize("kernel", ["wgrad_ws", "grouped_mm_ws", "grouped_mm_ws_early", "grouped_mm_ws_sub", "grouped_mm_pp4", "grouped_mm_pp5"])
def test_gluon_gemms_match_triton(kernel, T, D, I, E, K, routing, monkeypatch):
    import kernels.moe_triton as mt

    x, rw, gu, dn, r = _gluon_routed(mt, T, D, I, E, K, routing, seed=T + E)
    g = torch.Generator(device="cpu").manual_seed(T)
    dy = torch.randn(T, D, generator=g).to("cuda", x.dtype)
    h = torch.randn(T * K, I, generator=g).to("cuda", x.dtype)
    dgu = torch.randn(T * K, 2 * I, generator=g).to("cuda", x.dtype)
    if kernel == "wgrad_ws":
        names = [f"wgrad_ws{D}x{I}", f"wgrad_ws{D}x{2 * I}T"]

        def run():
            return mt._dwd(dy, h, r, x.dtype), mt._dwgu(dgu, x, r, x.dtype)
    elif kernel.startswith("grouped_mm_pp"):  # TMA-fed A only: the G GEMM (gathered) stays Triton's
        names = ["down_pp", "dx_pp"]

        def run():
            return mt._down(h, dn, r), mt._dxs(dgu, gu, r), mt._g_gemm(dy, dn, r)
    else:
        names = ["down_ws", "dx_ws", "g_ws"]

        def run():
            return mt._down(h, dn, r), mt._dxs(dgu, gu, r), mt._g_gemm(dy, dn, r)

    triton_only = dataclasses.replace(mt.CONFIG, wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None, gluon_min_flops=0)
    monkeypatch.setattr(mt, "CONFIG", triton_only)
    want = run()
    if kernel == "grouped_mm_ws_early":  # the scale and the next tile's coordinates early (v16 try)
        gluon = dict(grouped_mm_ws=GemmConfig(128, 256, 64, 8, 3, 168), grouped_mm_epi="early")
    elif kernel == "grouped_mm_ws_sub":  # and whole tiles stored in two halves, 4 stages (v16 try)
        gluon = dict(grouped_mm_ws=GemmConfig(128, 256, 64, 8, 4, 168), grouped_mm_epi="sub")
    elif kernel.startswith("grouped_mm_pp"):  # the ping-pong kernel, 4 or 5 stages (v16 try)
        gluon = dict(grouped_mm_pp=GemmConfig(128, 128, 64, 4, int(kernel[-1]), 168))
    else:
        gluon = {kernel: GemmConfig(128, 256, 64, 8, 3, 168)}
    monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(triton_only, **gluon))
    _poison_allocator()
    mt.LAUNCH_INFO.clear()
    got = run()
    assert set(names) <= set(mt.LAUNCH_INFO), f"the Gluon kernel did not run: {sorted(mt.LAUNCH_INFO)}"
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and torch.isfinite(a).all()
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)
    zero = r.counts_E == 0
    if routing == "empty" and kernel == "wgrad_ws":
        assert zero.any() and (got[0][zero] == 0).all() and (got[1][zero] == 0).all()


# The ping-pong Gluon gate/up (gate_up_pp, v15) against the Triton gate/up on the same routing: GU and h,
# every routing (empty experts, partial M tiles), a partial N tile (I = 96), 3 to 5 stages, both tiles
# ((128, 2 x 64) and (64, 2 x 128) per warpgroup). D = 2048 puts the odd warpgroup's first tile 32 K
# steps ahead of the even one's: the case that read unfilled stages before the main loops took turns.
# ((64, 2 x 128) at 5 stages is over sm_90's shared memory: bench/gluon_sm90_compile.py)
@pytest.mark.parametrize("tile,stages", [((128, 64), 3), ((128, 64), 4), ((128, 64), 5), ((64, 128), 3), ((64, 128), 4)])
@pytest.mark.parametrize("routing", ["uniform", "skewed", "empty"])
@pytest.mark.parametrize(
    "T,D,I,E,K", [(515, 128, 256, 24, 4), (4099, 256, 512, 16, 8), (777, 128, 96, 16, 4), (1031, 2048, 192, 8, 2)]
)
def test_gluon_gate_up_pp_matches_triton(T, D, I, E, K, routing, tile, stages, monkeypatch):
    import kernels.moe_triton as mt

    x, rw, gu, dn, r = _gluon_routed(mt, T, D, I, E, K, routing, seed=T + E + stages)
    base = dataclasses.replace(mt.CONFIG, gate_up_pp=None, gate_up_ws=None, gluon_min_flops=0)
    monkeypatch.setattr(mt, "CONFIG", base)
    want = mt._gate_up(x, gu, r)
    pp = GemmConfig(tile[0], tile[1], 64, 4, stages, 168)
    monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(base, gate_up_pp=pp))
    _poison_allocator()
    mt.LAUNCH_INFO.clear()
    got = mt._gate_up(x, gu, r)
    assert "gate_up_pp" in mt.LAUNCH_INFO, f"the Gluon kernel did not run: {sorted(mt.LAUNCH_INFO)}"
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and torch.isfinite(a).all()
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)


# The Gluon gate/up (gate_up_ws) against the Triton gate/up, with either epilogue: GU and h converted to a
# blocked layout before the stores, or stored from the accumulators' layout (v16 try).
@pytest.mark.parametrize("epi", ["blocked", "mma"])
@pytest.mark.parametrize("routing", ["uniform", "skewed", "empty"])
@pytest.mark.parametrize(
    "T,D,I,E,K", [(515, 128, 256, 24, 4), (4099, 256, 512, 16, 8), (777, 128, 96, 16, 4), (1031, 2048, 192, 8, 2)]
)
def test_gluon_gate_up_ws_matches_triton(T, D, I, E, K, routing, epi, monkeypatch):
    import kernels.moe_triton as mt

    x, rw, gu, dn, r = _gluon_routed(mt, T, D, I, E, K, routing, seed=T + E)
    base = dataclasses.replace(mt.CONFIG, gate_up_pp=None, gate_up_ws=None, gluon_min_flops=0)
    monkeypatch.setattr(mt, "CONFIG", base)
    want = mt._gate_up(x, gu, r)
    ws = GemmConfig(128, 128, 64, 8, 4, 168)
    monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(base, gate_up_ws=ws, gate_up_ws_epi=epi))
    _poison_allocator()
    mt.LAUNCH_INFO.clear()
    got = mt._gate_up(x, gu, r)
    assert "gate_up_ws" in mt.LAUNCH_INFO, f"the Gluon kernel did not run: {sorted(mt.LAUNCH_INFO)}"
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape and torch.isfinite(a).all()
        torch.testing.assert_close(a.float(), b.float(), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("pf", [1, 2])
@pytest.mark.parametrize("routing", ["uniform", "skewed", "empty"])
@pytest.mark.parametrize("T,D,I,E,K", [(515, 128, 256, 24, 4), (4099, 256, 512, 16, 8), (3001, 128, 320, 8, 2)])
def test_gluon_g_swiglu_matches_split_path(T, D, I, E, K, routing, pf, monkeypatch):
    """g_swiglu_ws_kernel (G GEMM + SwiGLU backward in one kernel) against the split Triton path (G
    GEMM, then the pass): dGU and h*w from the same bf16-rounded G, the routing-weight grad up to
    summation order. I = 320 leaves a partial N-tile (masked columns)."""
    import kernels.moe_triton as mt

    x, rw, gu, dn, r = _gluon_routed(mt, T, D, I, E, K, routing, seed=T + I)
    g = torch.Generator(device="cpu").manual_seed(T + 1)
    dy = torch.randn(T, D, generator=g).to("cuda", x.dtype)
    gu_S2I = torch.randn(T * K, 2 * I, generator=g).to("cuda", x.dtype)
    triton_only = dataclasses.replace(mt.CONFIG, wgrad_ws=None, grouped_mm_ws=None, g_swiglu_ws=None, gluon_min_flops=0)
    monkeypatch.setattr(mt, "CONFIG", triton_only)
    want = mt._down_bwd_split(dy, dn, gu_S2I, r)
    fused = dataclasses.replace(triton_only, g_swiglu_ws=GemmConfig(128, 256, 64, 8, 3, 168), g_swiglu_pf=pf)
    monkeypatch.setattr(mt, "CONFIG", fused)
    _poison_allocator()
    mt.LAUNCH_INFO.clear()
    got = mt._down_bwd(dy, dn, gu_S2I, r)
    assert "g_swiglu_ws" in mt.LAUNCH_INFO, f"the Gluon kernel did not run: {sorted(mt.LAUNCH_INFO)}"
    for name, a, b in zip(("dGU", "hw", "dw"), got, want, strict=True):
        assert a.shape == b.shape and torch.isfinite(a).all(), name
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2, msg=name)


def test_small_gemms_stay_on_triton_by_default():
    """Below CONFIG.gluon_min_flops the default leaves a GEMM to the Triton kernels."""
    import kernels.moe_triton as mt

    m = make_moe_inputs(515, 128, 256, 24, 4, "uniform", device="cuda", seed=3, requires_grad=True)
    mt.LAUNCH_INFO.clear()
    y, _ = moe(*m.tensors(), 4, impl="triton")
    y.float().sum().backward()
    assert not [k for k in mt.LAUNCH_INFO if "_ws" in k], sorted(mt.LAUNCH_INFO)


def test_backward_twice_on_a_retained_graph():
    """GU, saved by the down node, stays for a second backward with retain_graph; the grads repeat."""
    m = make_moe_inputs(1000, 256, 192, 16, 4, "uniform", device="cuda", seed=21, requires_grad=True)
    ins = m.tensors()
    y, logits = moe(*ins, 4, impl="triton")
    dy = torch.randn_like(y)
    first = torch.autograd.grad(y, ins, dy, retain_graph=True)
    _poison_allocator()
    second = torch.autograd.grad(y, ins, dy)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("T,D,I,E,K", [(8192, 512, 384, 32, 4), (4096, 1024, 256, 64, 8)])
def test_memory_plan(T, D, I, E, K):
    """What the forward keeps is what saved_bytes lists (no h, no down outputs), and the fwd+bwd peak
    stays inside the plan of kernels/NOTES.md v12: GU freed before the up node's backward, h*w
    written over G, dXs freed before dWgu is allocated."""
    import kernels.moe_triton as mt

    m = make_moe_inputs(T, D, I, E, K, "uniform", device="cuda", seed=T, requires_grad=True)
    ins = m.tensors()
    dy = torch.randn_like(m.x_TD)
    S, b = T * K, 2
    gu, h, o, dgu = S * 2 * I * b, S * I * b, S * D * b, S * 2 * I * b
    dwgu, dwd, td = E * 2 * I * D * b, E * D * I * b, T * D * b
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    y, logits = moe(*ins, K, impl="triton")
    torch.cuda.synchronize()
    held = torch.cuda.memory_allocated() - base
    saved = sum(mt.saved_bytes(T, D, I, E, K).values())
    assert abs(held - saved - td) < 64 * 1024 + h // 4, (held, saved, td)
    torch.cuda.reset_peak_memory_stats()
    grads = torch.autograd.grad(y, ins, dy)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    plan = max(
        gu + h + o + td,  # forward: GU, h and the down outputs, then y
        gu + h + dgu + dwd + td,  # down node: GU, G (then h*w over it), dGU, dWd
        dgu + dwd + max(o + 3 * td, dwgu + 2 * td),  # up node: dXs, combine; then dWgu
    )
    assert peak <= plan + 8 * 2**20, (peak / 2**20, plan / 2**20)
    del grads
