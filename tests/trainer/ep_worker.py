"""One rank of the expert-parallel checks in test_ep.py; run under torchrun with gloo on the CPU.

    torchrun --standalone --nproc-per-node N tests/trainer/ep_worker.py --ep EP[,EP...] --out FILE

For each EP size (one process group, a mesh per size), rank 0 also computes the one-process reference in the same process (no communication), and writes
both to FILE (torch.save) for the test to compare:
    layer: `kernels.moe` against the EP layer (`ExpertParallel`) on MoE inputs whose routing leaves half
           the experts without a token (so some ranks receive no rows at all): output, and gradients of
           x, router and experts;
    model: the trainer's own gradient step (`accumulate_gradients`) on a tiny MoEDecoder, once as one
           process with N micro-batches, once as N ranks of FSDP2 + EP with one micro-batch each:
           loss, every parameter's full gradient, and the clipped global gradient norm.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from kernels import moe  # noqa: E402
from kernels.moe_inputs import make_moe_inputs  # noqa: E402
from trainer.config import tiny  # noqa: E402
from trainer.expert_parallel import clip_grad_norm_, expert_parallel_groups, shard_experts  # noqa: E402
from trainer.model import MoEDecoder  # noqa: E402
from trainer.train import _Dist, _wrap, accumulate_gradients  # noqa: E402

CPU = torch.device("cpu")


def _full(t: torch.Tensor) -> torch.Tensor:
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().clone()


def layer_check(ep: int, rank: int, world: int) -> dict:
    from torch.distributed.tensor import DTensor, Shard

    T, E, K = 6, 4, 2
    inp = make_moe_inputs(T * world, 32, 16, E, K, routing="empty", dtype=torch.float32, seed=3)
    g_TD = torch.randn(inp.x_TD.shape, generator=torch.Generator().manual_seed(4))
    ref = None
    if rank == 0:
        ts = [t.clone().requires_grad_(True) for t in inp.tensors()]
        y, _ = moe(*ts, K, impl="torch")
        (y * g_TD).sum().backward()
        ref = {"y": y.detach(), "x": ts[0].grad, "router": ts[1].grad, "gate_up": ts[2].grad, "down": ts[3].grad}
    parallel = expert_parallel_groups(ep, world, CPU, E)
    El, r = parallel.num_local, parallel.rank
    rows = slice(rank * T, (rank + 1) * T)
    x = inp.x_TD[rows].clone().requires_grad_(True)
    router = inp.router_w_ED.clone().requires_grad_(True)
    gu, dn = (DTensor.from_local(w[r * El:(r + 1) * El].clone(), parallel.mesh, [Shard(0)], run_check=False,
                                 shape=w.shape, stride=w.stride()).requires_grad_(True)
              for w in (inp.gate_up_E2IH, inp.down_EHI))
    y, _ = parallel(x, router, gu, dn, K, True, "torch")
    (y * g_TD[rows]).sum().backward()
    ys, xs = [torch.empty_like(y) for _ in range(world)], [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(ys, y.detach())
    dist.all_gather(xs, x.grad)
    dist.all_reduce(router.grad)
    # Each EP group saw only its own ranks' tokens: sum the expert gradients over the replicas.
    gu_g, dn_g = gu.grad.to_local(), dn.grad.to_local()
    if parallel.edp_group is not None:
        dist.all_reduce(gu_g, group=parallel.edp_group)
        dist.all_reduce(dn_g, group=parallel.edp_group)
    got = {"y": torch.cat(ys), "x": torch.cat(xs), "router": router.grad, "gate_up": _full(gu.grad),
           "down": _full(dn.grad)}
    # A rank whose experts no token chose has a zero expert gradient: the check covers that case.
    hit = [torch.zeros(1) for _ in range(world)]
    dist.all_gather(hit, torch.tensor([float(gu_g.abs().sum() > 0)]))
    return {"ref": ref, "got": got, "ranks_with_expert_grad": [int(h.item()) for h in hit]}


def model_check(ep: int, rank: int, world: int) -> dict:
    cfg = tiny(256).replace(micro_batch_size=1, grad_accum=1, fsdp=True, ep=ep)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, moe_impl="torch"))
    T, V = 48, cfg.model.vocab_size
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(0, V, (world, T + 1), generator=g)
    doc = (torch.arange(T) >= T // 3).long().expand(world, T).clone()  # two documents per row
    pos = torch.arange(T).expand(world, T) - torch.where(doc == 1, T // 3, 0)
    labels = ids[:, 1:].clone()
    labels[:, T // 3 - 1] = -100  # no target across the document boundary
    batch = {"input_ids": ids[:, :-1], "labels": labels, "position_ids": pos.contiguous(), "doc_ids": doc}
    ref = None
    if rank == 0:
        torch.manual_seed(cfg.seed)
        one = MoEDecoder(cfg.model)
        one_cfg = cfg.replace(fsdp=False, ep=1, grad_accum=world)
        acc = accumulate_gradients(one, {k: v[:, None] for k, v in batch.items()}, one_cfg, _Dist())
        grads = {n: p.grad.clone() for n, p in one.named_parameters()}
        norm = torch.nn.utils.clip_grad_norm_(one.parameters(), cfg.grad_clip)
        ref = {"loss": (acc["ce_total"] / acc["num_targets"]).item(), "grads": grads, "norm": norm.item()}
    d = _Dist(rank, world, rank, CPU)
    torch.manual_seed(cfg.seed)
    model = MoEDecoder(cfg.model)
    parallel = shard_experts(model, ep, world, CPU)
    model = _wrap(model, cfg, d)
    mine = {k: v[rank:rank + 1, None] for k, v in batch.items()}
    acc = accumulate_gradients(model, mine, cfg, d, parallel)
    loss = (d.all_sum(acc["ce_total"]) / acc["num_targets"]).item()
    grads = {n: _full(p.grad) for n, p in model.named_parameters()}
    norm = clip_grad_norm_(model, cfg.grad_clip, parallel).item()
    return {"ref": ref, "got": {"loss": loss, "grads": grads, "norm": norm}}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--ep", required=True, help="comma-separated EP sizes, each dividing the world size")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    result = {}
    for ep in map(int, a.ep.split(",")):
        result[ep] = {"layer": layer_check(ep, rank, world), "model": model_check(ep, rank, world)}
    if rank == 0:
        torch.save(result, a.out)
    dist.barrier()
    dist.destroy_process_group()
    sys.stdout.flush()
    os._exit(0)  # as trainer.train._exit: no interpreter finalization with FSDP2's gloo threads alive


if __name__ == "__main__":
    main()
