"""Expert parallelism (EP): each rank of an expert-parallel group holds E/ep of every layer's experts.

What it is for: training a model whose expert weights do not fit, or should not be replicated, on
every GPU. `trainer.train` composes it with FSDP2 (`--ep N` under torchrun): the router, attention,
norms and embeddings are sharded by FSDP2 over all ranks; the experts are sharded by EP instead and
FSDP2 ignores them. What it is not: tensor parallelism inside an expert, or capacity-limited routing
(no token is ever dropped; the all-to-all sizes follow the routing).

One MoE layer under EP (`ExpertParallel.__call__`, every rank at once):
    1. route locally: router logits, top-k and weights exactly as `kernels.moe_reference.route`;
       the (token, slot) assignments sorted by expert (stable, so token order inside an expert);
    2. exchange counts: an all-to-all of the E per-expert counts (fixed size, no host sync);
    3. one host sync: `all_to_all_single` takes its split sizes as Python ints (NCCL needs them on the
       host to size the transfer, and the receive buffer's size is data-dependent). The send and
       receive sizes are read back together, once per layer per forward; the backward reuses them.
       Avoiding it would need a fixed capacity per expert (padding to the worst case, or dropping
       tokens), which this trainer does not do;
    4. dispatch: all-to-all of the sorted rows (kernels.moe regroups them by local expert itself);
    5. local experts: one `kernels.moe` call over every received row (`local_experts`), made to pick
       each row's expert by marker columns (its docstring), so the fused Triton path runs on CUDA and
       the PyTorch reference on the CPU, chosen as for one process (`ModelConfig.moe_impl`).
       kernels.moe routes inside its own call and has no entry point for rows already routed;
    6. combine: the reverse all-to-all, the routing weights applied on the token's own rank (so the
       router's gradient stays local), and an index_add into the token rows.
The result equals the one-process MoE on the same global batch up to float summation order.

Parameters: each expert tensor becomes a DTensor on the EP mesh, Shard(0) (its E/ep local experts),
so `torch.distributed.checkpoint.state_dict` gathers all experts for checkpoints and the export, and
scatters them again on load. With ep < world the EP groups are replicas of each other (mesh
`(world/ep, ep)`, dims "edp" and "ep"), and their expert gradients are summed over "edp".
Gradient scale: the trainer's loss is scaled for FSDP2's average over all ranks; an expert's local
gradient is the sum over the ranks that sent it tokens, so `finish_expert_grads` divides by the
world size (after the "edp" sum) to match.

Shape legend: N tokens on this rank, D hidden, E experts, El = E/ep local experts, K top-k,
S = N*K assignments, R rows received by this rank, I expert width, P ranks of the EP group,
C marker columns (`local_experts`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from trainer.errors import ConfigError

__all__ = [
    "ExpertParallel",
    "clip_grad_norm_",
    "expert_parallel_groups",
    "expert_parameters",
    "finish_expert_grads",
    "local_experts",
    "shard_experts",
]


class _AllToAll(torch.autograd.Function):
    """all_to_all_single of rows with uneven splits; the backward sends the gradients back the same way."""

    @staticmethod
    def forward(ctx, x_SD: torch.Tensor, out_splits: list[int], in_splits: list[int], group) -> torch.Tensor:
        ctx.out_splits, ctx.in_splits, ctx.group = out_splits, in_splits, group
        out_RD = x_SD.new_empty((sum(out_splits), x_SD.shape[1]))
        dist.all_to_all_single(out_RD, x_SD.contiguous(), out_splits, in_splits, group=group)
        return out_RD

    @staticmethod
    def backward(ctx, dout_RD: torch.Tensor):
        dx_SD = dout_RD.new_empty((sum(ctx.in_splits), dout_RD.shape[1]))
        dist.all_to_all_single(dx_SD, dout_RD.contiguous(), ctx.in_splits, ctx.out_splits, group=ctx.group)
        return dx_SD, None, None, None


@dataclass(frozen=True)
class ExpertParallel:
    """The EP group of one rank, and the MoE layer computed across it (see the module docstring)."""

    mesh: object          # the 1-D DeviceMesh over this rank's EP group
    edp_group: object     # the group of ranks holding the same experts (None when ep == world)
    num_experts: int
    world: int

    @property
    def size(self) -> int:
        return self.mesh.size()

    @property
    def rank(self) -> int:
        return self.mesh.get_local_rank()

    @property
    def group(self):
        return self.mesh.get_group()

    @property
    def num_local(self) -> int:
        return self.num_experts // self.size

    def __call__(self, x_ND, router_w_ED, gate_up_El2ID, down_ElDI, top_k: int, norm_topk_prob: bool,
                 impl: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _ep_moe(self, x_ND, router_w_ED, gate_up_El2ID, down_ElDI, top_k, norm_topk_prob, impl)


@torch.compiler.disable
def _ep_moe(ep: ExpertParallel, x_ND, router_w_ED, gate_up_El2ID, down_ElDI, top_k, norm_topk_prob, impl):
    from kernels.moe_reference import route
    from trainer.model import autocast_operands

    gate_up_El2ID, down_ElDI = gate_up_El2ID.to_local(), down_ElDI.to_local()
    x_ND, router_w_ED, gate_up_El2ID, down_ElDI = autocast_operands(x_ND, router_w_ED, gate_up_El2ID, down_ElDI)
    N, D = x_ND.shape
    E, El, P = ep.num_experts, ep.num_local, ep.size
    router_logits_NE = torch.nn.functional.linear(x_ND, router_w_ED)
    top_w_NK, top_idx_NK = route(router_logits_NE, top_k, norm_topk_prob)
    expert_S = top_idx_NK.reshape(-1)
    order_S = torch.argsort(expert_S, stable=True)
    token_S = order_S // top_k
    w_S = top_w_NK.reshape(-1)[order_S]
    counts_E = torch.zeros(E, dtype=torch.long, device=x_ND.device).scatter_add_(
        0, expert_S, torch.ones_like(expert_S))
    recv_counts_PEl = torch.empty_like(counts_E)
    dist.all_to_all_single(recv_counts_PEl, counts_E, group=ep.group)
    recv_counts_PEl = recv_counts_PEl.view(P, El)
    # The one host sync of the layer (module docstring, step 3).
    sizes = torch.cat([counts_E.view(P, El).sum(1), recv_counts_PEl.sum(1)]).tolist()
    in_splits, out_splits = sizes[:P], sizes[P:]
    R = sum(out_splits)

    recv_RD = _AllToAll.apply(x_ND[token_S], out_splits, in_splits, ep.group)
    # Received rows come grouped by source rank, then by local expert.
    local_id_R = torch.repeat_interleave(torch.arange(El, device=x_ND.device).repeat(P),
                                         recv_counts_PEl.reshape(-1), output_size=R)
    if R:
        y_RD = local_experts(recv_RD, local_id_R, gate_up_El2ID, down_ElDI, impl)
    else:  # nothing reached this rank's experts; still a graph node, so that this rank's backward runs
        # both all-to-alls with the others (and the experts get a zero gradient)
        y_RD = recv_RD * 0 + (gate_up_El2ID.sum() + down_ElDI.sum()) * 0
    y_SD = _AllToAll.apply(y_RD, in_splits, out_splits, ep.group)
    y_ND = torch.zeros_like(x_ND).index_add(0, token_S, y_SD * w_S[:, None])
    return y_ND, router_logits_NE


CODE_ALIGN = 64  # marker columns are padded to a multiple of this, so that D + C keeps D's alignment


def local_experts(x_RD: torch.Tensor, local_id_R: torch.Tensor, gate_up_El2ID: torch.Tensor,
                  down_ElDI: torch.Tensor, impl: str) -> torch.Tensor:
    """Expert `local_id_R[r]` applied to row r (no routing weight), as ONE `kernels.moe` call.

    kernels.moe routes inside its own call. To make it pick the expert already chosen, each row gets
    C extra columns holding a one-hot marker of its expert (C = El rounded up to CODE_ALIGN), the
    router is the identity on those columns and zero elsewhere, and the expert weights get C zero
    columns (gate/up) and C zero output rows (down). Then: the router's top-1 is the marked expert
    with routing weight p/p = 1 exactly; gate/up see the marker times zero, so they compute the real
    x @ W exactly; the extra output columns are h @ 0 = 0 and are dropped; no gradient reaches the
    real columns through the router (its weights there are zero). The price: a padded copy of the
    local expert weights per forward (under bf16 autocast it takes the place of the cast copy
    kernels.moe keeps for the backward, C/D larger; in fp32 it is an extra copy) and C/D more work in
    the two expert GEMMs; in exchange one fused launch per layer instead of one per
    local expert.
    """
    import torch.nn.functional as F

    import kernels

    R, D = x_RD.shape
    El = gate_up_El2ID.shape[0]
    C = -(-El // CODE_ALIGN) * CODE_ALIGN
    marker_RC = F.one_hot(local_id_R, C).to(x_RD.dtype)
    router_ElX = torch.cat([x_RD.new_zeros((El, D)), torch.eye(El, C, dtype=x_RD.dtype, device=x_RD.device)], 1)
    y_RX, _ = kernels.moe(torch.cat([x_RD, marker_RC], 1), router_ElX, F.pad(gate_up_El2ID, (0, C)),
                          F.pad(down_ElDI, (0, 0, 0, C)), 1, norm_topk_prob=True, impl=impl)
    return y_RX[:, :D]


def _expert_modules(model: nn.Module) -> Iterator[nn.Module]:
    from trainer.model import SparseMoE

    for m in model.modules():
        if isinstance(m, SparseMoE):
            yield m


def expert_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The expert weights (sharded by EP, not by FSDP2), in module order."""
    return [p for m in _expert_modules(model) for p in m.experts.parameters()]


def expert_parallel_groups(ep: int, world: int, device: torch.device, num_experts: int) -> ExpertParallel:
    """This rank's EP group: the mesh (world/ep, ep), dims "edp" and "ep"; ranks r*ep .. r*ep+ep-1
    form one EP group (neighbours, so on one host an EP group shares NVLink)."""
    from torch.distributed.device_mesh import init_device_mesh

    if ep < 1 or world % ep:
        raise ConfigError(f"--ep {ep} must divide the number of processes ({world})")
    if num_experts % ep:
        raise ConfigError(f"--ep {ep} must divide num_experts ({num_experts})")
    mesh = init_device_mesh(device.type, (world // ep, ep), mesh_dim_names=("edp", "ep"))
    return ExpertParallel(mesh["ep"], mesh["edp"].get_group() if world > ep else None, num_experts, world)


def shard_experts(model: nn.Module, ep: int, world: int, device: torch.device) -> ExpertParallel:
    """Keep this rank's E/ep experts of every layer, as DTensor parameters Shard(0) on the EP mesh.

    Call it on the full model (every rank built it from the same seed) before `model.to(device)`:
    the other ranks' experts are dropped on the host and never reach the device.
    """
    from torch.distributed.tensor import DTensor, Shard

    parallel = expert_parallel_groups(ep, world, device, model.config.num_experts)
    r, El = parallel.rank, parallel.num_local
    for moe in _expert_modules(model):
        for name, p in list(moe.experts.named_parameters(recurse=False)):
            local = p.detach()[r * El:(r + 1) * El].to(device).clone()
            shard = DTensor.from_local(local, parallel.mesh, [Shard(0)], run_check=False,
                                       shape=p.shape, stride=p.stride())
            setattr(moe.experts, name, nn.Parameter(shard, requires_grad=p.requires_grad))
        moe.expert_parallel = parallel
    return parallel


@torch.no_grad()
def finish_expert_grads(model: nn.Module, parallel: ExpertParallel) -> None:
    """After the last backward of a step: sum expert gradients over the EP replicas and divide by the
    world size, the average FSDP2 takes of every other gradient (module docstring). An expert no row
    reached on any rank gets a zero gradient, as its slice of the one-process tensor would."""
    from torch.distributed.tensor import DTensor

    for p in expert_parameters(model):
        if p.grad is None:
            p.grad = DTensor.from_local(torch.zeros_like(p.to_local()), p.device_mesh, p.placements,
                                        run_check=False, shape=p.shape, stride=p.stride())
        g = p.grad.to_local()
        if parallel.edp_group is not None:
            dist.all_reduce(g, group=parallel.edp_group)
        g.div_(parallel.world)


@torch.no_grad()
def clip_grad_norm_(model: nn.Module, max_norm: float, parallel: ExpertParallel) -> torch.Tensor:
    """The global 2-norm of every gradient, clipped to `max_norm` as `torch.nn.utils.clip_grad_norm_`
    does; that function cannot stack the norms of DTensors on two meshes (FSDP2's and EP's)."""
    experts = {id(p) for p in expert_parameters(model)}
    rest = [p.grad for p in model.parameters() if p.grad is not None and id(p) not in experts]
    mine = [p.grad.to_local() for p in expert_parameters(model)]
    dev = mine[0].device if mine else torch.device("cpu")
    rest_sq = torch.zeros((), device=dev)
    if rest:
        norm = torch.nn.utils.get_total_norm(rest, 2.0)
        rest_sq = (norm.full_tensor() if hasattr(norm, "full_tensor") else norm).float() ** 2
    exp_sq = sum((g.float().pow(2).sum() for g in mine), torch.zeros((), device=dev))
    dist.all_reduce(exp_sq, group=parallel.group)  # each EP replica holds every expert once
    total = torch.sqrt(rest_sq + exp_sq)
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in rest:
        g.mul_(coef.to(g.device))
    for g in mine:
        g.mul_(coef.to(g.device, g.dtype))
    return total

