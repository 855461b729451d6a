"""Plain-PyTorch reference of the Qwen3-MoE sparse block: the `impl="torch"` path of `kernels.moe`.

It follows transformers' `Qwen3MoeTopKRouter` + `Qwen3MoeExperts` (eager) operation by operation, so
that on the same weights it gives the same output, and autograd gives every gradient. It is the
readable definition of the op, runs on any device, and is what CPU and CI use. It is not fast: the
per-expert loop syncs with the host once per call (to find the experts that got tokens).

Shape legend (used in every file of this package):
    T  tokens (leading dims of x flattened)      D  hidden size
    E  experts                                   I  expert width (moe_intermediate_size)
    K  experts per token (top_k)                 S  token-expert assignments, S = T * K
    H  hidden size again, in weight names (H == D), as the trainer's call site spells them
Weights follow transformers' Qwen3MoeExperts: gate_up_E2IH is (E, 2I, H) with the gate rows first
(`gate, up = (x @ gate_up[e].T).chunk(2, dim=-1)`), down_EHI is (E, H, I).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _softmax_dtype(dtype: torch.dtype) -> torch.dtype:
    # transformers takes the softmax in float32; float64 stays float64 so that oracles stay exact.
    return torch.promote_types(dtype, torch.float32)


def route(
    router_logits_TE: torch.Tensor, top_k: int, norm_topk_prob: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k routing weights (x dtype) and expert indices (int64), as Qwen3MoeTopKRouter computes them."""
    probs_TE = torch.softmax(router_logits_TE, dim=-1, dtype=_softmax_dtype(router_logits_TE.dtype))
    top_w_TK, top_idx_TK = torch.topk(probs_TE, top_k, dim=-1)
    if norm_topk_prob:
        top_w_TK = top_w_TK / top_w_TK.sum(dim=-1, keepdim=True)
    return top_w_TK.to(router_logits_TE.dtype), top_idx_TK


def experts_forward(
    x_TD: torch.Tensor,
    gate_up_E2IH: torch.Tensor,
    down_EHI: torch.Tensor,
    top_idx_TK: torch.Tensor,
    top_w_TK: torch.Tensor,
) -> torch.Tensor:
    """The per-expert loop of Qwen3MoeExperts (eager): gather, gate/up, SwiGLU, down, weight, index_add."""
    num_experts = gate_up_E2IH.shape[0]
    y_TD = torch.zeros_like(x_TD)
    with torch.no_grad():
        # (E, K, T) mask of which (slot, token) pairs each expert serves.
        mask_EKT = F.one_hot(top_idx_TK, num_classes=num_experts).permute(2, 1, 0)
        experts_hit = torch.greater(mask_EKT.sum(dim=(-1, -2)), 0).nonzero().flatten().tolist()
    for e in experts_hit:
        slot_idx, token_idx = torch.where(mask_EKT[e])
        gate, up = F.linear(x_TD[token_idx], gate_up_E2IH[e]).chunk(2, dim=-1)
        h = F.silu(gate) * up
        out = F.linear(h, down_EHI[e]) * top_w_TK[token_idx, slot_idx, None]
        y_TD = y_TD.index_add(0, token_idx, out.to(y_TD.dtype))
    return y_TD


def moe_reference(
    x_TD: torch.Tensor,
    router_w_ED: torch.Tensor,
    gate_up_E2IH: torch.Tensor,
    down_EHI: torch.Tensor,
    top_k: int,
    norm_topk_prob: bool = True,
    *,
    forced_top_idx_TK: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference MoE block on 2-D `x_TD`; returns (y_TD, router_logits_TE).

    `forced_top_idx_TK` is for tests only: it replaces the top-k choice (the weights are still the
    softmax of these logits at those indices), so that a float64 oracle can follow the exact expert
    choice of a bf16 run, whose near-ties would otherwise resolve differently.
    """
    router_logits_TE = F.linear(x_TD, router_w_ED)
    if forced_top_idx_TK is None:
        top_w_TK, top_idx_TK = route(router_logits_TE, top_k, norm_topk_prob)
    else:
        top_idx_TK = forced_top_idx_TK.long()
        probs_TE = torch.softmax(router_logits_TE, dim=-1, dtype=_softmax_dtype(router_logits_TE.dtype))
        top_w_TK = probs_TE.gather(1, top_idx_TK)
        if norm_topk_prob:
            top_w_TK = top_w_TK / top_w_TK.sum(dim=-1, keepdim=True)
        top_w_TK = top_w_TK.to(router_logits_TE.dtype)
    y_TD = experts_forward(x_TD, gate_up_E2IH, down_EHI, top_idx_TK, top_w_TK)
    return y_TD, router_logits_TE
