"""The training loop: dataset in, checkpoints, metrics and a transformers export out.

Entry points:
    train(dataset, recipe="tiny", out=..., steps=None, resume=False, ...) -> TrainResult
        what `factory train` calls; also used under torchrun (reads RANK/WORLD_SIZE).
    python -m trainer.train --dataset D --recipe R --out O [--steps N] [--resume]
    torchrun --nproc-per-node 2 -m trainer.train ... [--fsdp] [--ep 2]

Writes under OUT: tokenizer/, data_stats.json, metrics.jsonl (one JSON object per step, plus
`"eval_loss"` records), checkpoints/, export/ (loads in `transformers.AutoModelForCausalLM`).
Not for: inference or evaluation on SWE-bench (see `factory evaluate`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from trainer.config import TrainConfig, get_recipe
from trainer.cudagraph import GraphedStep
from trainer.data import (
    load_splits,
    load_trajectory_texts,
    mix,
    tasks_from_split,
    text_corpus,
    tokenize_tasks,
    trajectory_sample,
)
from trainer.errors import ConfigError, EmptySplitError, TrainerError
from trainer.expert_parallel import clip_grad_norm_, expert_parameters, finish_expert_grads, shard_experts
from trainer.model import MoEDecoder, expert_load, load_balancing_loss
from trainer.packing import IGNORE, MIN_TURN_ROOM, Packed, pack
from trainer.tokenizer import EOT, check_special_tokens, load_tokenizer, train_tokenizer

__all__ = ["TrainResult", "main", "run", "train"]


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    steps_done: int
    final_loss: float | None
    eval_loss: float | None
    export_dir: Path | None
    metrics_path: Path


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def on(self) -> bool:
        return self.world > 1

    def all_sum(self, x: torch.Tensor) -> torch.Tensor:
        if self.on:
            import torch.distributed as dist

            dist.all_reduce(x, op=dist.ReduceOp.SUM)
        return x

    def barrier(self) -> None:
        if self.on:
            import torch.distributed as dist

            dist.barrier()


def _init_dist(device: str | None) -> _Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    dev = torch.device(f"cuda:{local}") if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if use_cuda else "gloo")
    return _Dist(rank, world, local, dev)


def lr_lambda(cfg: TrainConfig):
    """Linear warm-up to 1, then cosine decay to `min_lr_ratio` at `steps`."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / (cfg.warmup_steps + 1)
        span = max(1, cfg.steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def _optimizer(model, cfg: TrainConfig, device: torch.device, capturable: bool = False):
    """AdamW; `capturable` for a CUDA-graphed step: state and the learning rate live on the device
    (a tensor the scheduler fills in place, so the captured step reads each step's value).
    The experts get a group of their own (same settings as the decayed group): under expert
    parallelism the foreach and fused AdamW kernels, which take one list of tensors per group, cannot
    mix DTensors of FSDP2's mesh and of the EP mesh; and with one group layout for every run, a
    checkpoint resumes under another --ep (the scheduler's state is one entry per group)."""
    experts = {id(p) for p in expert_parameters(model)}
    decay, no_decay, expert = [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if id(p) in experts:
            expert.append(p)
            continue
        (no_decay if p.ndim < 2 or "embed_tokens" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups.append({"params": expert, "weight_decay": cfg.weight_decay})
    lr = torch.tensor(cfg.lr, device=device) if capturable else cfg.lr
    return torch.optim.AdamW(groups, lr=lr, betas=cfg.betas, eps=1e-8, fused=device.type == "cuda",
                             capturable=capturable)


def _use_cuda_graph(cfg: TrainConfig, dist: _Dist, compiled: bool) -> bool:
    if cfg.cuda_graph is not None:
        if cfg.cuda_graph and (dist.device.type != "cuda" or dist.on):
            raise TrainerError("cuda_graph needs one process on CUDA (not under torchrun, not on the CPU)")
        return cfg.cuda_graph
    return dist.device.type == "cuda" and not dist.on and compiled


def accumulate_gradients(model, batch: dict[str, torch.Tensor], cfg: TrainConfig, dist: _Dist,
                         parallel=None) -> dict[str, torch.Tensor]:
    """Forward and backward over stacked micro-batches ((A, B, T) tensors), leaving each parameter's
    gradient of (sum of token losses) / (targets in the global step) + the aux loss, as the optimizer
    step takes it. Returns this rank's sums (device tensors; the global counts already all-reduced)."""
    A = batch["input_ids"].shape[0]
    num_targets = dist.all_sum((batch["labels"] != IGNORE).sum().float())
    num_real = dist.all_sum((batch["doc_ids"] >= 0).sum().float())
    ce_total = torch.zeros((), device=dist.device)
    aux_total = torch.zeros((), device=dist.device)
    load = torch.zeros((cfg.model.num_hidden_layers, cfg.model.num_experts), device=dist.device)
    for a in range(A):
        micro = {k: v[a] for k, v in batch.items()}
        sync = a == A - 1
        ctx = model.no_sync() if (dist.on and not cfg.fsdp and not sync) else contextlib.nullcontext()
        with ctx:
            ce_sum, _, aux, router_logits, valid_N = _forward_loss(model, micro, cfg, dist.device)
            # DDP and FSDP2 average gradients over ranks, so scale by world size to get the
            # gradient of (sum of token losses) / (targets in the global step).
            loss = ce_sum * dist.world / num_targets.clamp_min(1) + cfg.model.router_aux_loss_coef * aux / A
            loss.backward()
        ce_total = ce_total + ce_sum.detach()
        aux_total = aux_total + aux.detach() / A
        load = load + expert_load(router_logits, cfg.model.num_experts_per_tok, valid_N)
    if parallel is not None:
        finish_expert_grads(model, parallel)
    return {"ce_total": ce_total, "aux_total": aux_total, "load": load / A, "num_targets": num_targets,
            "num_real": num_real}


def _make_step(model, optimizer, cfg: TrainConfig, dist: _Dist, parallel=None):
    """One optimizer step over stacked micro-batches ((A, B, T) tensors) with no host sync, so that
    trainer/cudagraph.py can capture it; returns device tensors only. Under expert parallelism
    (`parallel`, never graphed) each MoE layer reads its all-to-all sizes back once per forward."""
    def step(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        acc = accumulate_gradients(model, batch, cfg, dist, parallel)
        if parallel is None:
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        else:
            grad_norm = clip_grad_norm_(model, cfg.grad_clip, parallel)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        num_targets = acc["num_targets"].clamp_min(1)
        return {"loss": dist.all_sum(acc["ce_total"]) / num_targets, "aux": dist.all_sum(acc["aux_total"]) / dist.world,
                "load": dist.all_sum(acc["load"]) / dist.world, "grad_norm": grad_norm, "num_real": acc["num_real"]}
    return step


def _rows_for_step(num_rows: int, cursor: int, count: int, seed: int) -> list[int]:
    """Indices of the `count` packed rows after `cursor`, in a per-epoch seeded shuffle."""
    out: list[int] = []
    perm_epoch, perm = None, None
    for c in range(cursor, cursor + count):
        epoch, i = divmod(c, num_rows)
        if epoch != perm_epoch:
            g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            perm, perm_epoch = torch.randperm(num_rows, generator=g).tolist(), epoch
        out.append(perm[i])
    return out


def _batch(packed: Packed, rows: list[int], device: torch.device) -> dict[str, torch.Tensor]:
    idx = torch.tensor(rows, dtype=torch.long)
    return {k: getattr(packed, k)[idx].to(device, non_blocking=True)
            for k in ("input_ids", "labels", "position_ids", "doc_ids")}


def _forward_loss(model, batch, cfg: TrainConfig, device: torch.device):
    """(sum of token cross-entropies, number of targets, aux loss, router logits, valid mask)."""
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else contextlib.nullcontext())
    labels = batch["labels"]
    with autocast:
        out = model(batch["input_ids"], batch["position_ids"], batch["doc_ids"], labels)
    ce_sum = out.ce_sum
    valid_N = (batch["doc_ids"] >= 0).reshape(-1)
    mc = cfg.model
    aux = load_balancing_loss(out.router_logits, mc.num_experts, mc.num_experts_per_tok, valid_N)
    return ce_sum, (labels != IGNORE).sum(), aux, out.router_logits, valid_N


@torch.no_grad()
def evaluate(model, packed: Packed, cfg: TrainConfig, dist: _Dist) -> float | None:
    if packed is None or len(packed) == 0:
        return None
    module = getattr(model, "module", model)
    was_training = module.training
    module.eval()
    # FSDP needs every rank in the forward; DDP's module does not, but computing the same rows
    # on every rank keeps one code path.
    target = model if cfg.fsdp and dist.on else module
    total, count = 0.0, 0
    n = min(len(packed), cfg.eval_batches * cfg.micro_batch_size)
    for s in range(0, n, cfg.micro_batch_size):
        batch = _batch(packed, list(range(s, min(n, s + cfg.micro_batch_size))), dist.device)
        ce_sum, num, *_ = _forward_loss(target, batch, cfg, dist.device)
        total += ce_sum.item()
        count += int(num.item())
    module.train(was_training)
    return total / max(1, count)


def _wrap(model, cfg: TrainConfig, dist: _Dist):
    if not dist.on:
        return model
    if cfg.fsdp:
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        # An explicit mesh on the run's device: left to itself, FSDP2 builds one on CUDA whenever CUDA
        # exists, so CPU ranks on a one-GPU machine ask for GPU `rank` and fail.
        mesh = init_device_mesh(dist.device.type, (dist.world,))
        # Expert-parallel experts are sharded already (trainer/expert_parallel.py): FSDP2 leaves them.
        ignored = set(expert_parameters(model)) if cfg.ep > 1 else None
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh, ignored_params=ignored)
        return fully_shard(model, mesh=mesh, ignored_params=ignored)
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)


def _prepare_tokenizer(out: Path, tokenizer_path: str | None, tasks, vocab_size: int, dist: _Dist,
                       extra_texts: list[str] = ()):
    if tokenizer_path is not None:
        return load_tokenizer(tokenizer_path)
    tok_dir = out / "tokenizer"
    if dist.rank == 0 and not (tok_dir / "tokenizer.json").exists():
        import itertools

        train_tokenizer(itertools.chain(text_corpus(tasks), extra_texts), vocab_size, tok_dir)
    dist.barrier()
    return load_tokenizer(tok_dir)


def _progress(enabled: bool, total: int, start: int):
    if not enabled:
        return contextlib.nullcontext(None), None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    prog = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                    TimeRemainingColumn(), console=Console(stderr=True))
    task = prog.add_task("train", total=total, completed=start, info="")
    return prog, task


def run(cfg: TrainConfig, dataset: str, out: str | os.PathLike, resume: bool = False,
        tokenizer: str | None = None, stop_after: int | None = None, device: str | None = None,
        progress: bool = True, export_model: bool = True, trajectories: tuple[tuple[str, float], ...] = (),
        task_weight: float = 1.0, trajectory_formats: tuple[str, ...] | None = None) -> TrainResult:
    """Train `cfg` on `dataset`, writing everything under `out` (see the module docstring).

    `stop_after` ends the run after that many steps as if interrupted (the schedule still spans
    `cfg.steps`); `--resume` then continues from the newest checkpoint exactly.
    `trajectories`: (dataset, weight) pairs of trajectory datasets (``factory trajectories``), mixed
    with the task samples (weight `task_weight`) so each source's token share is its weight's share;
    `trajectory_formats` picks their rendered columns (default: every format present).
    """
    dist = _init_dist(device)
    compiled = cfg.compile if cfg.compile is not None else dist.device.type == "cuda"
    graphed = _use_cuda_graph(cfg, dist, compiled)  # refused here, before any data is read, if impossible
    if cfg.ep > 1 and dist.world % cfg.ep:
        raise ConfigError(f"--ep {cfg.ep} needs a multiple of {cfg.ep} processes, not {dist.world}: "
                          f"torchrun --nproc-per-node {cfg.ep} -m trainer.train ... --ep {cfg.ep}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    splits = load_splits(dataset)
    train_tasks = tasks_from_split(splits["train"])
    eval_tasks = tasks_from_split(splits["test"]) if "test" in splits else None
    traj_texts = {f"trajectories[{i}]:{path}": (load_trajectory_texts(path, list(trajectory_formats or []) or None), w)
                  for i, (path, w) in enumerate(trajectories)}
    tok = _prepare_tokenizer(out, tokenizer, train_tasks, cfg.tokenizer_vocab_size, dist,
                             [t for texts, _ in traj_texts.values() for t in texts])
    check_special_tokens(tok)
    eot = tok.convert_tokens_to_ids(EOT)
    vocab = int(math.ceil(len(tok) / 64) * 64)
    cfg = cfg.replace(model=dataclasses.replace(cfg.model, vocab_size=vocab, eos_token_id=eot, pad_token_id=eot))

    samples, rstats = tokenize_tasks(train_tasks, tok, cfg.data, cfg.seed)
    mixture = None
    if traj_texts:
        sources = {"tasks": (samples, task_weight)}
        room = cfg.data.seq_len + 1 - MIN_TURN_ROOM
        too_long = {}
        for name, (texts, w) in traj_texts.items():
            ss = [trajectory_sample(t, tok) for t in texts]
            too_long[name] = sum(s.head > room for s in ss)
            if ss and too_long[name] == len(ss):
                raise TrainerError(f"{name}: the tool definitions of every trajectory fill a row of seq_len "
                                   f"{cfg.data.seq_len} (shortest system turn {min(s.head for s in ss)} tokens); "
                                   "train with a longer --seq-len")
            sources[name] = ([s for s in ss if s.head <= room], w)
        samples, mixture = mix(sources, cfg.seed)
        for name, n in too_long.items():
            mixture[name]["dropped_tools_fill_a_row"] = n
    packed = pack(samples, cfg.data.seq_len, eot)
    if len(packed) == 0:
        raise EmptySplitError(f"the train split renders into no samples ({rstats.as_dict()})")
    packed_eval, estats = None, None
    if eval_tasks is not None:
        es, estats = tokenize_tasks(eval_tasks, tok, cfg.data, cfg.seed)
        packed_eval = pack(es, cfg.data.seq_len, eot)
    if dist.rank == 0:
        (out / "data_stats.json").write_text(json.dumps({
            "train": {**rstats.as_dict(), **packed.stats.as_dict()},
            "test": None if estats is None else {**estats.as_dict(), **packed_eval.stats.as_dict()},
            **({"mixture": mixture} if mixture is not None else {}),
        }, indent=2))

    torch.manual_seed(cfg.seed)
    model = MoEDecoder(cfg.model)
    parallel = None
    if cfg.ep > 1:  # every rank built the same full model; each keeps its experts only
        parallel = shard_experts(model, cfg.ep, dist.world, dist.device)
    model = model.to(dist.device)
    if compiled:
        model.compile_for_training()
    model = _wrap(model, cfg, dist)
    optimizer = _optimizer(model, cfg, dist.device, capturable=graphed)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    meta = {"recipe": cfg.recipe, "architecture": cfg.model.architecture(), "seed": cfg.seed, "steps": cfg.steps,
            "ep": cfg.ep}

    start_step, cursor = 0, 0
    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        r = load_checkpoint(ckpt, model, optimizer, scheduler, cfg.recipe, cfg.model.architecture(), cfg.fsdp)
        start_step, cursor = r.step, r.cursor
        if graphed:  # loading maps the learning-rate tensors to the CPU; the captured step reads them on the GPU
            for group in optimizer.param_groups:
                group["lr"] = torch.as_tensor(group["lr"], dtype=torch.float32, device=dist.device)
    metrics_path = out / "metrics.jsonl"
    if dist.rank == 0:
        _truncate_metrics(metrics_path, start_step)

    rows_per_rank = cfg.micro_batch_size * cfg.grad_accum
    rows_per_step = rows_per_rank * dist.world
    end_step = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
    last_loss, eval_loss = None, None
    prog, ptask = _progress(progress and dist.rank == 0 and start_step < end_step, cfg.steps, start_step)
    model.train()
    train_step = _make_step(model, optimizer, cfg, dist, parallel)
    if graphed:  # replays one captured step (trainer/cudagraph.py); the first step runs eagerly
        train_step = GraphedStep(train_step, warmup=1)
    with prog, metrics_path.open("a") as mf:
        for step in range(start_step, end_step):
            t0 = time.perf_counter()
            rows = _rows_for_step(len(packed), cursor, rows_per_step, cfg.seed)
            mine = rows[dist.rank * rows_per_rank:(dist.rank + 1) * rows_per_rank]
            batch = _batch(packed, mine, dist.device)
            batch = {k: v.view(cfg.grad_accum, cfg.micro_batch_size, *v.shape[1:]) for k, v in batch.items()}
            got = train_step(batch)
            scheduler.step()
            cursor += rows_per_step
            step_loss = got["loss"].item()
            if dist.device.type == "cuda":
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
            last_loss = step_loss
            done = step + 1
            num_real = got["num_real"].item()
            record = {"step": done, "loss": step_loss, "aux_loss": got["aux"].item(),
                      "lr": float(scheduler.get_last_lr()[0]), "grad_norm": got["grad_norm"].item(),
                      "tokens": int(num_real), "tokens_per_s": num_real / dt, "step_time_s": dt,
                      "expert_load": [[round(v, 4) for v in row] for row in got["load"].tolist()]}
            if cfg.eval_every and done % cfg.eval_every == 0 and done < cfg.steps:
                eval_loss = evaluate(model, packed_eval, cfg, dist)
                record["eval_loss"] = eval_loss
            if dist.rank == 0 and (done % cfg.log_every == 0 or done == end_step):
                mf.write(json.dumps(record) + "\n")
                mf.flush()
            if prog is not None and hasattr(prog, "update"):
                prog.update(ptask, completed=done, info=f"loss {step_loss:.4f} {record['tokens_per_s']:.0f} tok/s")
            if (cfg.save_every and done % cfg.save_every == 0) or done == end_step:
                save_checkpoint(out, done, cursor, model, optimizer, scheduler, meta, cfg.fsdp)

    export_dir = None
    steps_done = max(end_step, start_step)
    if steps_done >= cfg.steps:
        eval_loss = evaluate(model, packed_eval, cfg, dist)
        if dist.rank == 0 and eval_loss is not None:
            with metrics_path.open("a") as mf:
                mf.write(json.dumps({"step": steps_done, "eval_loss": eval_loss}) + "\n")
        if export_model:
            export_dir = _export(model, tok, out / "export", cfg, dist)
    dist.barrier()
    return TrainResult(out, steps_done, last_loss, eval_loss, export_dir, metrics_path)


def _export(model, tok, path: Path, cfg: TrainConfig, dist: _Dist) -> Path:
    from trainer.export import export

    if cfg.fsdp and dist.on:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        if dist.rank == 0:
            plain = MoEDecoder(cfg.model)
            plain.load_state_dict(full)
            export(plain, tok, path)
    elif dist.rank == 0:
        export(model, tok, path)
    dist.barrier()
    return path


def _truncate_metrics(path: Path, keep_upto_step: int) -> None:
    """Drop records after `keep_upto_step`, so a resumed run's curve has no duplicates."""
    if not path.exists():
        return
    kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= keep_upto_step]
    path.write_text("".join(k + "\n" for k in kept))


def train(dataset: str, recipe: str = "tiny", out: str | os.PathLike = "runs/train", steps: int | None = None,
          resume: bool = False, tokenizer: str | None = None, seed: int | None = None,
          device: str | None = None, progress: bool = True, trajectories: tuple[tuple[str, float], ...] = (),
          task_weight: float = 1.0, trajectory_formats: tuple[str, ...] | None = None, seq_len: int | None = None,
          **overrides) -> TrainResult:
    """Train recipe `recipe` on `dataset` (a local folder or Hub id) into `out`. What `factory train` calls.

    `steps` and `seed` override the recipe's; further keyword arguments override `TrainConfig` fields.
    Raises a `trainer.errors.TrainerError` subclass naming what is wrong with the input.
    """
    cfg = get_recipe(recipe)
    changes = dict(overrides)
    if steps is not None:
        changes["steps"] = steps
    if seed is not None:
        changes["seed"] = seed
    if seq_len is not None:
        changes["data"] = dataclasses.replace(cfg.data, seq_len=seq_len)
    if changes.get("ep", 1) > 1 and "fsdp" not in changes:
        changes["fsdp"] = True  # expert parallelism composes with FSDP2 (TrainConfig refuses --no-fsdp)
    if changes:
        cfg = cfg.replace(**changes)
    return run(cfg, dataset, out, resume=resume, tokenizer=tokenizer, device=device, progress=progress,
               trajectories=tuple(trajectories), task_weight=task_weight, trajectory_formats=trajectory_formats)


def parse_weighted(spec: str) -> tuple[str, float]:
    """``DATASET[@WEIGHT]`` → (dataset, weight); the weight defaults to 1."""
    path, at, w = spec.rpartition("@")
    if not at:
        return spec, 1.0
    try:
        weight = float(w)
    except ValueError:
        raise TrainerError(f"{spec!r}: the weight after @ must be a number") from None
    if weight < 0:
        raise TrainerError(f"{spec!r}: the weight must not be negative")
    return path, weight


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="trainer.train", description=__doc__.splitlines()[0])
    p.add_argument("--dataset", required=True, help="dataset folder or Hugging Face Hub id")
    p.add_argument("--recipe", default="tiny", help="tiny | small | medium")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/latest")
    p.add_argument("--tokenizer", default=None, help="existing tokenizer directory (else one is trained)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--micro-batch-size", type=int, default=None, help="rows per forward pass, per process")
    p.add_argument("--grad-accum", type=int, default=None, help="micro-batches per optimizer step")
    p.add_argument("--save-every", type=int, default=None, help="steps between checkpoints (0: end only)")
    p.add_argument("--fsdp", action=argparse.BooleanOptionalAction, default=None,
                   help="FSDP2 instead of DDP under torchrun (default: the recipe's choice)")
    p.add_argument("--ep", type=int, default=None,
                   help="expert-parallel group size: each rank holds num_experts/EP experts (needs FSDP2)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the layers and the loss head (default: on CUDA only)")
    p.add_argument("--cuda-graph", action=argparse.BooleanOptionalAction, default=None,
                   help="replay each step as one CUDA graph (default: on one CUDA process, when compiled)")
    p.add_argument("--trajectories", action="append", default=[], metavar="DATASET[@WEIGHT]",
                   help="a trajectory dataset (factory trajectories) to mix in; repeatable")
    p.add_argument("--task-weight", type=float, default=1.0, help="mixture weight of the task dataset")
    p.add_argument("--seq-len", type=int, default=None, help="tokens per packed row (default: the recipe's)")
    p.add_argument("--trajectory-formats", default=None, help="comma-separated formats (default: all present)")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    overrides = {k: v for k, v in (("micro_batch_size", a.micro_batch_size), ("grad_accum", a.grad_accum),
                                   ("save_every", a.save_every), ("fsdp", a.fsdp), ("ep", a.ep),
                                   ("compile", a.compile), ("cuda_graph", a.cuda_graph)) if v is not None}
    try:
        res = train(a.dataset, a.recipe, a.out, steps=a.steps, resume=a.resume, tokenizer=a.tokenizer,
                    seed=a.seed, device=a.device, progress=not a.no_progress,
                    trajectories=tuple(parse_weighted(x) for x in a.trajectories), task_weight=a.task_weight,
                    trajectory_formats=tuple(a.trajectory_formats.split(",")) if a.trajectory_formats else None,
                    seq_len=a.seq_len, **overrides)
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    import torch.distributed as tdist

    if tdist.is_available() and tdist.is_initialized():
        tdist.destroy_process_group()
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({"steps": res.steps_done, "final_loss": res.final_loss, "eval_loss": res.eval_loss,
                          "export": str(res.export_dir) if res.export_dir else None}))
    return 0


def _exit(code: int) -> None:
    """Leave a torchrun rank without interpreter finalization, once everything is written.

    DDP and FSDP2 keep references to the process group that `destroy_process_group` does not drop:
    its gloo worker threads still run afterwards (checked with two CPU ranks: after a plain
    all_reduce none remain; after wrapping a module in DDP or FSDP2 they do). Finalization then
    tears the group's C++ object down in whatever order module teardown reaches it. A CI run once
    saw a rank of the two-process test abort with "terminate called without an active exception"
    and no Python traceback, which torchrun reports as the whole job failing; ~80 local runs did
    not repeat it, so the cause is inferred, not proven. Every file is closed and the group
    destroyed by the time we get here, so skipping finalization loses nothing. A single process
    exits normally.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    _exit(main())
