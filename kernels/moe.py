"""`kernels.moe`: the trainer's MoE block (router, experts, combine), forward and backward.

One API, two implementations behind a switch:
    impl="torch"   plain PyTorch (kernels/moe_reference.py): readable, any device, used by CPU and CI;
    impl="triton"  fused Triton kernels (kernels/moe_triton.py): CUDA only, Triton imported lazily;
    impl="auto"    Triton when x and the weights are one dtype (bf16/fp16) on CUDA and Triton imports;
                   else torch (with a warning when only the dtype stands in the way).
See kernels/moe_reference.py for the shape legend and the exact semantics (transformers' Qwen3-MoE).
"""

from __future__ import annotations

import importlib.util
import warnings

import torch

from kernels.errors import KernelUnavailableError, MoEShapeError
from kernels.moe_reference import moe_reference

IMPLS = ("auto", "torch", "triton")


def _check_shapes(x, router_w_ED, gate_up_E2IH, down_EHI, top_k) -> None:
    d = x.shape[-1]
    e = router_w_ED.shape[0]
    if router_w_ED.dim() != 2 or router_w_ED.shape[1] != d:
        raise MoEShapeError(f"router_w must be (E, D={d}), got {tuple(router_w_ED.shape)}")
    if gate_up_E2IH.dim() != 3 or gate_up_E2IH.shape[0] != e or gate_up_E2IH.shape[2] != d:
        raise MoEShapeError(f"gate_up_proj must be (E={e}, 2I, D={d}), got {tuple(gate_up_E2IH.shape)}")
    if gate_up_E2IH.shape[1] % 2:
        raise MoEShapeError(f"gate_up_proj's dim 1 must be even (2I), got {gate_up_E2IH.shape[1]}")
    i = gate_up_E2IH.shape[1] // 2
    if tuple(down_EHI.shape) != (e, d, i):
        raise MoEShapeError(f"down_proj must be (E={e}, D={d}, I={i}), got {tuple(down_EHI.shape)}")
    if not 1 <= top_k <= e:
        raise MoEShapeError(f"top_k must be in [1, E={e}], got {top_k}")


def triton_available() -> bool:
    """True when the Triton path can run here (CUDA present and the triton package importable)."""
    return torch.cuda.is_available() and importlib.util.find_spec("triton") is not None


def _pick_impl(x_TD, *weights) -> str:
    from kernels.moe_triton import SUPPORTED_DTYPES  # no triton import at module level

    if not (x_TD.is_cuda and triton_available()):
        return "torch"
    if x_TD.dtype not in SUPPORTED_DTYPES or any(w.dtype != x_TD.dtype for w in weights):
        # A slow path chosen silently would cost a trainer its step time without a trace.
        warnings.warn(
            f"kernels.moe(impl='auto'): x is {x_TD.dtype}, weights {[str(w.dtype) for w in weights]}; "
            f"the Triton path needs one dtype of {SUPPORTED_DTYPES}, so the slow reference runs",
            stacklevel=3,
        )
        return "torch"
    return "triton"


def moe(
    x_TD: torch.Tensor,
    router_w_ED: torch.Tensor,
    gate_up_E2IH: torch.Tensor,
    down_EHI: torch.Tensor,
    top_k: int,
    norm_topk_prob: bool = True,
    impl: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Qwen3-MoE sparse block: returns (y, router_logits_TE); differentiable in every tensor input.

    x_TD may have leading dims (B, S, D); y has x's shape and router_logits_TE is (T, E), as in
    transformers. Weights: router_w_ED (E, D), gate_up_E2IH (E, 2I, D) gate rows first, down_EHI (E, D, I).
    """
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    _check_shapes(x_TD, router_w_ED, gate_up_E2IH, down_EHI, top_k)
    if impl == "auto":
        impl = _pick_impl(x_TD, router_w_ED, gate_up_E2IH, down_EHI)
    lead_shape = x_TD.shape
    x2_TD = x_TD.reshape(-1, x_TD.shape[-1])
    if impl == "torch":
        y_TD, logits_TE = moe_reference(x2_TD, router_w_ED, gate_up_E2IH, down_EHI, top_k, norm_topk_prob)
    else:
        if not (x_TD.is_cuda and triton_available()):
            raise KernelUnavailableError("impl='triton' needs a CUDA tensor and `pip install triton`")
        from kernels.moe_triton import moe_triton  # lazy: imports triton

        y_TD, logits_TE = moe_triton(x2_TD, router_w_ED, gate_up_E2IH, down_EHI, top_k, norm_topk_prob)
    return y_TD.reshape(lead_shape), logits_TE
