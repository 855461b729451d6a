"""Checkpoints that resume a run exactly: model, optimizer, scheduler, RNG and data position.

Layout: OUT/checkpoints/step_NNNNNNN/{model.pt, optim.pt, sched.pt, meta.json, rng_rankR.pt} and
OUT/checkpoints/latest (the name of the newest complete one, written last and atomically, so a
run killed mid-save resumes from the previous checkpoint). Under FSDP2 the full state is gathered
to rank 0 through `torch.distributed.checkpoint.state_dict` (with `--ep`, the experts too: they are
DTensors on the expert-parallel mesh), so a checkpoint holds full tensors whatever the layout;
under DDP rank 0 writes module weights.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.errors import CheckpointError, CheckpointMismatchError

__all__ = ["Resumed", "latest_checkpoint", "load_checkpoint", "save_checkpoint"]


@dataclass(frozen=True)
class Resumed:
    step: int
    cursor: int      # global number of packed rows consumed so far
    path: Path


def _rank_world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def _states(model, optimizer, fsdp: bool):
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

        return get_state_dict(model, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return getattr(model, "module", model).state_dict(), optimizer.state_dict()


def save_checkpoint(out: Path, step: int, cursor: int, model, optimizer, scheduler, meta: dict,
                    fsdp: bool = False) -> Path:
    rank, world = _rank_world()
    root = Path(out) / "checkpoints"
    path = root / f"step_{step:07d}"
    model_sd, optim_sd = _states(model, optimizer, fsdp)
    if rank == 0:
        path.mkdir(parents=True, exist_ok=True)
        torch.save(model_sd, path / "model.pt")
        torch.save(optim_sd, path / "optim.pt")
        torch.save(scheduler.state_dict(), path / "sched.pt")
        (path / "meta.json").write_text(json.dumps({**meta, "step": step, "cursor": cursor,
                                                    "world_size": world}, indent=2))
    _barrier()
    torch.save(_rng_state(), path / f"rng_rank{rank}.pt")
    _barrier()
    if rank == 0:
        tmp = root / "latest.tmp"
        tmp.write_text(path.name)
        tmp.replace(root / "latest")
    _barrier()
    return path


def latest_checkpoint(out: Path) -> Path | None:
    marker = Path(out) / "checkpoints" / "latest"
    if not marker.exists():
        return None
    path = marker.parent / marker.read_text().strip()
    if not (path / "meta.json").exists():
        raise CheckpointError(f"{marker} points to {path}, which is not a complete checkpoint")
    return path


def check_compatible(path: Path, recipe: str, architecture: dict) -> dict:
    meta = json.loads((path / "meta.json").read_text())
    diffs = [f"{k}: checkpoint {meta.get('architecture', {}).get(k)!r} != run {v!r}"
             for k, v in architecture.items() if meta.get("architecture", {}).get(k) != v]
    if meta.get("recipe") != recipe or diffs:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written by recipe {meta.get('recipe')!r}, this run uses --recipe {recipe!r}"
            + (f"; differing model fields: {'; '.join(diffs)}" if diffs else "")
            + ". Use the same --recipe, or a fresh --out without --resume."
        )
    return meta


def load_checkpoint(path: Path, model, optimizer, scheduler, recipe: str, architecture: dict,
                    fsdp: bool = False) -> Resumed:
    meta = check_compatible(path, recipe, architecture)
    rank, _ = _rank_world()
    model_sd = torch.load(path / "model.pt", map_location="cpu", weights_only=False)
    optim_sd = torch.load(path / "optim.pt", map_location="cpu", weights_only=False)
    if fsdp:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

        set_state_dict(model, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                       options=StateDictOptions(full_state_dict=True))
    else:
        getattr(model, "module", model).load_state_dict(model_sd)
        if len(optim_sd.get("param_groups", [])) != len(optimizer.param_groups):
            raise CheckpointMismatchError(
                f"checkpoint {path} has {len(optim_sd.get('param_groups', []))} optimizer parameter groups, "
                f"this trainer {len(optimizer.param_groups)} (the experts have had a group of their own since "
                "expert parallelism, issue #26); start from a fresh --out without --resume")
        optimizer.load_state_dict(optim_sd)
    scheduler.load_state_dict(torch.load(path / "sched.pt", weights_only=False))
    rng_path = path / f"rng_rank{rank}.pt"
    if rng_path.exists():
        _set_rng_state(torch.load(rng_path, weights_only=False))
    return Resumed(step=meta["step"], cursor=meta["cursor"], path=path)
