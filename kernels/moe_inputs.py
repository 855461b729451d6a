"""Random MoE inputs with controlled routing, shared by the tests and bench/moe_kernels.py.

Routing modes (the router weight shapes the expert choice, the rest is N(0, 1)):
    uniform   random router: loads vary only by chance
    balanced  token t picks experts (t*K + j) mod E exactly: every expert gets T*K/E rows
    skewed    a bias toward 1/16 of the experts: those get about 3-6 times the mean load
    empty     half of the experts never win a token
Bias is carried by a constant feature x[:, 0] = 1 against router_w[:, 0]; balanced routing uses
features 1..E as one-hot markers, so it needs D > E.
"""

# ruff: noqa: E741  (I is the expert width, as in the shape legend)

from __future__ import annotations

import dataclasses
import math

import torch

ROUTINGS = ("uniform", "balanced", "skewed", "empty")


@dataclasses.dataclass(frozen=True)
class MoEInputs:
    x_TD: torch.Tensor
    router_w_ED: torch.Tensor
    gate_up_E2IH: torch.Tensor
    down_EHI: torch.Tensor
    top_k: int

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x_TD, self.router_w_ED, self.gate_up_E2IH, self.down_EHI


def make_moe_inputs(
    T: int,
    D: int,
    I: int,
    E: int,
    top_k: int,
    routing: str = "uniform",
    *,
    dtype=torch.bfloat16,
    device="cpu",
    seed: int = 0,
    requires_grad: bool = False,
) -> MoEInputs:
    if routing not in ROUTINGS:
        raise ValueError(f"routing must be one of {ROUTINGS}, got {routing!r}")
    # Drawn on the target device (the bench's weights are GBs), in float32, then cast.
    g = torch.Generator(device=device).manual_seed(seed)
    kw = dict(generator=g, device=device)
    x = torch.randn(T, D, **kw)
    rw = torch.randn(E, D, **kw) / math.sqrt(D)
    if routing == "balanced":
        if D <= E:
            raise ValueError(f"balanced routing needs D > E, got D={D}, E={E}")
        rw *= 0.05  # logits: 4 on the chosen experts, noise of about 0.05
        rw[:, 1 : E + 1] = torch.eye(E, device=device)
        x[:, 1 : E + 1] *= 0.05
        ar = lambda n: torch.arange(n, device=device)  # noqa: E731
        chosen = (ar(T)[:, None] * top_k + ar(top_k)[None, :]) % E
        x[ar(T)[:, None], 1 + chosen] += 4.0
    elif routing in ("skewed", "empty"):
        x[:, 0] = 1.0
        if routing == "skewed":
            rw[:, 0] = torch.where(torch.arange(E, device=device) < max(1, E // 16), 1.0, 0.0)
        else:
            rw[:, 0] = torch.where(torch.arange(E, device=device) < E // 2, 0.0, -30.0)
    gu = (torch.randn(E, 2 * I, D, **kw) / math.sqrt(D)).to(dtype)
    dn = (torch.randn(E, D, I, **kw) / math.sqrt(I)).to(dtype)
    ts = [t.to(dtype).requires_grad_(requires_grad) for t in (x, rw, gu, dn)]
    return MoEInputs(*ts, top_k=top_k)
