"""CPU tests of kernels.moe's reference path (impl="torch") and of the package surface.

The reference must match transformers' own Qwen3MoeSparseMoeBlock on the same weights, and its
gradients must pass float64 gradcheck. The Triton path is tested on CUDA in test_moe_triton_gpu.py.
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import kernels
from kernels import KernelUnavailableError, MoEShapeError, moe
from kernels.moe_reference import moe_reference, route
from kernels.moe_triton import router_backward


def _inputs(T, D, I, E, dtype=torch.float32, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(T, D, generator=g)
    rw = torch.randn(E, D, generator=g) / D**0.5
    gu = torch.randn(E, 2 * I, D, generator=g) / D**0.5
    dn = torch.randn(E, D, I, generator=g) / I**0.5
    return [t.to(dtype).requires_grad_(requires_grad) for t in (x, rw, gu, dn)]


def _hf_block(x, rw, gu, dn, top_k, norm, experts_impl):
    from transformers.models.qwen3_moe.configuration_qwen3_moe import Qwen3MoeConfig
    from transformers.models.qwen3_moe.modeling_qwen3_moe import Qwen3MoeSparseMoeBlock

    E, I2, D = gu.shape
    cfg = Qwen3MoeConfig(
        hidden_size=D,
        moe_intermediate_size=I2 // 2,
        num_experts=E,
        num_experts_per_tok=top_k,
        norm_topk_prob=norm,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=32,
    )
    cfg._experts_implementation = experts_impl
    block = Qwen3MoeSparseMoeBlock(cfg).to(x.dtype)
    with torch.no_grad():
        block.gate.weight.copy_(rw)
        block.experts.gate_up_proj.copy_(gu)
        block.experts.down_proj.copy_(dn)
    return block


def test_public_surface_is_explicit():
    assert sorted(kernels.__all__) == sorted(
        ["KernelError", "KernelUnavailableError", "MoEShapeError", "moe", "moe_reference"]
    )


def test_import_does_not_import_triton():
    code = "import sys, kernels; kernels.moe; assert 'triton' not in sys.modules, 'triton imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("norm", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_reference_matches_transformers_eager_block(norm, dtype):
    x, rw, gu, dn = _inputs(T=29, D=32, I=24, E=8, dtype=dtype)
    block = _hf_block(x, rw, gu, dn, top_k=3, norm=norm, experts_impl="eager")
    with torch.no_grad():
        want = block(x[None])[0]
        got, logits = moe(x, rw, gu, dn, 3, norm_topk_prob=norm, impl="torch")
    diff = (got.float() - want.float()).abs()
    print(f"max diff {diff.max().item():.3e} mean {diff.mean().item():.3e}")
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # same ops in the same order
    torch.testing.assert_close(logits, block.gate(x)[0].detach(), rtol=0, atol=0)


def test_reference_matches_transformers_grouped_mm_block():
    x, rw, gu, dn = _inputs(T=40, D=32, I=16, E=8)
    block = _hf_block(x, rw, gu, dn, top_k=2, norm=True, experts_impl="grouped_mm")
    with torch.no_grad():
        want = block(x[None])[0]
        got, _ = moe(x, rw, gu, dn, 2, impl="torch")
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_gate_rows_come_first_in_gate_up_proj():
    # With the up half zeroed the output must vanish; with the gate half zeroed, silu(0) = 0 too,
    # so instead check directly against a hand-written expert on one token and one expert.
    x, rw, gu, dn = _inputs(T=1, D=8, I=4, E=1)
    y, _ = moe_reference(x, rw, gu, dn, top_k=1, norm_topk_prob=True)
    gate, up = x @ gu[0, :4].T, x @ gu[0, 4:].T
    want = (torch.nn.functional.silu(gate) * up) @ dn[0].T
    torch.testing.assert_close(y, want)


@pytest.mark.parametrize("norm", [True, False])
def test_reference_gradcheck_float64(norm):
    ins = _inputs(T=6, D=5, I=3, E=4, dtype=torch.float64, seed=1, requires_grad=True)

    def f(x, rw, gu, dn):
        y, logits = moe_reference(x, rw, gu, dn, top_k=2, norm_topk_prob=norm)
        return y, logits

    assert torch.autograd.gradcheck(f, ins, eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("norm", [True, False])
def test_router_backward_matches_autograd(norm):
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(11, 9, dtype=torch.float64, generator=g, requires_grad=True)
    w, idx = route(logits, 3, norm)
    dw = torch.randn(w.shape, dtype=torch.float64, generator=g)
    dl_out = torch.randn(logits.shape, dtype=torch.float64, generator=g)
    (want,) = torch.autograd.grad((w, logits), (logits,), (dw, dl_out))
    got = router_backward(logits.detach(), idx, dw, norm, dl_out)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-6)


def test_leading_dims_are_kept():
    x, rw, gu, dn = _inputs(T=12, D=16, I=8, E=4)
    y, logits = moe(x.view(3, 4, 16), rw, gu, dn, 2, impl="torch")
    assert y.shape == (3, 4, 16) and logits.shape == (12, 4)


def test_experts_without_tokens_get_zero_grad():
    x, rw, gu, dn = _inputs(T=10, D=16, I=8, E=6, requires_grad=True)
    with torch.no_grad():
        x[:, 0] = 1.0  # a constant feature carries a bias: experts 4 and 5 never win
        rw[4:, 0] = -100.0
    y, logits = moe(x, rw, gu, dn, 2, impl="torch")
    y.sum().backward()
    assert gu.grad[4:].abs().max() == 0 and dn.grad[4:].abs().max() == 0
    assert gu.grad[:4].abs().max() > 0


def test_bad_shapes_raise():
    x, rw, gu, dn = _inputs(T=4, D=16, I=8, E=4)
    with pytest.raises(MoEShapeError):
        moe(x, rw, gu[:, :, :8], dn, 2)
    with pytest.raises(MoEShapeError):
        moe(x, rw, gu, dn, 5)
    with pytest.raises(ValueError):
        moe(x, rw, gu, dn, 2, impl="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_triton_impl_refuses_cpu_tensors():
    x, rw, gu, dn = _inputs(T=4, D=16, I=8, E=4)
    with pytest.raises(KernelUnavailableError):
        moe(x, rw, gu, dn, 2, impl="triton")


def test_auto_impl_on_cpu_is_the_reference():
    x, rw, gu, dn = _inputs(T=9, D=16, I=8, E=4)
    y_auto, logits_auto = moe(x, rw, gu, dn, 2, impl="auto")
    y_ref, logits_ref = moe_reference(x, rw, gu, dn, 2)
    assert torch.equal(y_auto, y_ref) and torch.equal(logits_auto, logits_ref)


def test_triton_config_refuses_an_unknown_persistent_mode():
    from kernels.moe_triton import TritonMoEConfig

    with pytest.raises(ValueError, match="persistent must be off, loop or flat"):
        TritonMoEConfig(persistent="flatt")


def test_gluon_is_chosen_only_where_it_pays(monkeypatch):
    """The decisions before any GPU query: no config, TMA off, or a GEMM under gluon_min_flops
    leave the work to the Triton kernels (these return before touching CUDA, so they run here)."""
    import dataclasses

    import kernels.moe_triton as mt

    x = torch.empty(4, 128, dtype=torch.bfloat16)
    cfg = mt.GemmConfig(128, 256, 64, 8, 3, 168)
    assert mt.CONFIG.wgrad_ws is not None and mt.CONFIG.grouped_mm_ws is not None  # the default on Hopper
    assert not mt._gluon_ok(x, None, 1e12, (128, "bk"))
    assert not mt._gluon_ok(x, cfg, mt.CONFIG.gluon_min_flops / 2, (128, "bk"))
    monkeypatch.setattr(mt, "CONFIG", dataclasses.replace(mt.CONFIG, tma=False))
    assert not mt._gluon_ok(x, cfg, 1e12, (128, "bk"))


def test_tma_needs_unit_inner_stride_and_16_byte_rows():
    from kernels.moe_triton import _tma_ok

    t = torch.empty(64, 256, dtype=torch.bfloat16)
    assert _tma_ok(t) and _tma_ok(t, t[:, :128])
    assert not _tma_ok(t.t())  # inner stride 64
    assert not _tma_ok(torch.empty(64, 100, dtype=torch.bfloat16))  # 200-byte rows
    assert not _tma_ok(t.view(-1)[1:].view(-1)[: 63 * 256].view(63, 256))  # base 2 bytes off
