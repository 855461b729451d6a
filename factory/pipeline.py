"""The stages, as functions over one repository each, and the whole pipeline over a config.

Each stage reads its inputs from the run directory, writes its outputs atomically, and skips
work whose output already exists (``force`` redoes it). An expected failure of one repository
(it does not install, its suite hangs) is written to ``repos/<key>/failure.json`` with its reason
and the run goes on with the others; the stage returns a ``StageOutcome`` saying what happened.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory.config import RunConfig, SandboxConfig
from factory.errors import FactoryError
from factory.repo import checkout
from factory.schema import BaselineEntry, CoverageEntry, EnvImage, RepoSpec
from factory.store import RunStore, read_json, write_json, write_records

__all__ = ["StageOutcome", "stage_env", "stage_baseline", "run_pipeline"]

Log = Callable[[str], None]


@dataclass
class StageOutcome:
    stage: str
    repo: str
    ok: bool
    skipped: bool = False
    reason: str = ""
    seconds: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)


def _limits(cfg: SandboxConfig):
    from verifiers.sandbox import SandboxLimits  # noqa: PLC0415

    return SandboxLimits(timeout_s=cfg.timeout_s, mem=cfg.mem, pids=cfg.pids, cpus=cfg.cpus)


def stage_env(spec: RepoSpec, store: RunStore, *, force: bool = False, log: Log = print) -> StageOutcome:
    """Build or reuse the repository's environment image; writes ``env.json``."""
    from verifiers.engine import ensure_engine  # noqa: PLC0415
    from verifiers.images import build_env_image  # noqa: PLC0415

    t0 = time.monotonic()
    rd = store.repo(spec.key)
    rd.write_spec(spec)
    try:
        client = ensure_engine(quiet=True)
        co = checkout(spec)
        env = build_env_image(client, co, log=log, force=force)
    except FactoryError as e:
        rd.record_failure("env", str(e), reason_key=e.reason, log_tail=getattr(e, "log_tail", ""))
        return StageOutcome("env", spec.key, ok=False, reason=str(e), seconds=time.monotonic() - t0)
    write_json(rd.env_json, {**env.to_json(), "source": spec.source, "repo_spec": spec.__dict__})
    rd.clear_failure("env")
    return StageOutcome("env", spec.key, ok=True, skipped=env.cached, seconds=time.monotonic() - t0,
                        detail={"tag": env.tag, "cached": env.cached, "build_seconds": round(env.build_seconds, 2)})


def load_env(store: RunStore, key: str) -> EnvImage | None:
    rd = store.repo(key)
    return EnvImage.from_json({k: v for k, v in read_json(rd.env_json).items()
                               if k not in ("source", "repo_spec")}) if rd.env_json.exists() else None


def stage_baseline(spec: RepoSpec, store: RunStore, *, reruns: int = 3, coverage: bool = True,
                   sandbox: SandboxConfig = SandboxConfig(), force: bool = False,
                   log: Log = print) -> StageOutcome:
    """Run the suite ``reruns`` times in the sandbox; writes baseline and coverage parquet files."""
    from verifiers.baseline import run_baseline  # noqa: PLC0415
    from verifiers.engine import ensure_engine  # noqa: PLC0415

    t0 = time.monotonic()
    rd = store.repo(spec.key)
    if rd.baseline.exists() and (rd.coverage.exists() or not coverage) and not force:
        return StageOutcome("baseline", spec.key, ok=True, skipped=True, reason="baseline exists")
    env = load_env(store, spec.key)
    if env is None:
        out = stage_env(spec, store, log=log)
        if not out.ok:
            return StageOutcome("baseline", spec.key, ok=False, reason=f"no environment: {out.reason}")
        env = load_env(store, spec.key)
    assert env is not None
    try:
        client = ensure_engine(quiet=True)
        base = run_baseline(client, env.tag, env.spec.test_cmd, reruns=reruns, coverage=coverage,
                            paths=tuple(spec.test_paths), limits=_limits(sandbox),
                            progress=lambda m: log(f"{spec.key}: {m}"))
    except FactoryError as e:
        rd.record_failure("baseline", str(e), reason_key=e.reason)
        return StageOutcome("baseline", spec.key, ok=False, reason=str(e), seconds=time.monotonic() - t0)
    write_records(rd.baseline, base.entries, BaselineEntry)
    if coverage:
        write_records(rd.coverage, base.coverage, CoverageEntry)
    summary = {**base.summary(), "image": env.tag, "reruns": reruns, "wall_s": round(time.monotonic() - t0, 3)}
    write_json(rd.root / "baseline.json", summary)
    rd.clear_failure("baseline")
    return StageOutcome("baseline", spec.key, ok=True, seconds=time.monotonic() - t0, detail=summary)


STAGES = ("env", "baseline", "mutate", "validate", "publish", "train")
_RUN_LEVEL = ("publish", "train")  # stages over the whole run, after every repository's stages


def run_pipeline(cfg: RunConfig, store: RunStore, *, log: Log = print) -> list[StageOutcome]:
    """Every configured stage for every repository; one repository's failure stops only itself."""
    unknown = [s for s in cfg.stages if s not in STAGES]
    if unknown:
        raise FactoryError(f"unknown stages {unknown}; known: {sorted(STAGES)}", reason="bad_config")
    store.update_manifest(config=cfg.model_dump(), name=cfg.name)
    from factory.task_stages import stage_mutate, stage_validate  # noqa: PLC0415

    outcomes: list[StageOutcome] = []
    for spec in cfg.repo_specs():
        for stage in [s for s in cfg.stages if s not in _RUN_LEVEL]:
            if stage == "env":
                out = stage_env(spec, store, log=log)
            elif stage == "baseline":
                out = stage_baseline(spec, store, reruns=cfg.baseline.reruns, coverage=cfg.baseline.coverage,
                                     sandbox=cfg.sandbox, log=log)
            elif stage == "mutate":
                m = cfg.mutate
                out = stage_mutate(spec, store, seed=m.seed, max_per_function=m.max_per_function,
                                   operators=tuple(m.operators) if m.operators else None,
                                   max_candidates=m.max_candidates, log=log)
            else:
                v = cfg.validate_
                sandbox = cfg.sandbox.model_copy(update={"timeout_s": v.timeout_s}) if v.timeout_s else None
                out = stage_validate(spec, store, strategy=v.strategy, workers=v.workers, sandbox=sandbox,
                                     max_f2p=v.max_f2p, log=log)
            outcomes.append(out)
            if not out.ok:
                log(f"{spec.key}: {stage} failed: {out.reason}")
                break
    for stage in [s for s in cfg.stages if s in _RUN_LEVEL]:
        out = stage_publish(cfg, store, log=log) if stage == "publish" else stage_train(cfg, store, log=log)
        outcomes.append(out)
        if not out.ok:
            log(f"{stage} failed: {out.reason}")
            break
    store.update_manifest(last_run={o.repo + ":" + o.stage: {"ok": o.ok, "reason": o.reason} for o in outcomes})
    return outcomes


def stage_publish(cfg: RunConfig, store: RunStore, *, log: Log = print) -> StageOutcome:
    """Curate the run's instances into RUN/dataset (a Hugging Face dataset folder)."""
    from factory.curate import CurateConfig  # noqa: PLC0415
    from factory.publish import PublishConfig, publish_run  # noqa: PLC0415

    t0 = time.monotonic()
    p = cfg.publish
    try:
        report = publish_run(store.root, store.dataset, PublishConfig(
            curate=CurateConfig(test_fraction=p.test_fraction, max_per_repo=p.max_per_repo,
                                max_per_operator=p.max_per_operator), overwrite=p.overwrite,
            pretty_name=cfg.name))
    except FactoryError as e:
        return StageOutcome("publish", "(run)", ok=False, reason=str(e), seconds=time.monotonic() - t0)
    log(report.summary())
    return StageOutcome("publish", "(run)", ok=True, seconds=time.monotonic() - t0,
                        detail={"dataset": str(store.dataset), "published": report.num_published,
                                "splits": report.splits})


def stage_train(cfg: RunConfig, store: RunStore, *, log: Log = print) -> StageOutcome:
    """A few steps of the bundled trainer on RUN/dataset, exported for transformers."""
    from trainer.errors import TrainerError  # noqa: PLC0415
    from trainer.train import train  # noqa: PLC0415

    t0 = time.monotonic()
    t = cfg.train
    try:
        res = train(str(store.dataset), t.recipe, store.root / "train", steps=t.steps, seed=t.seed,
                    device=t.device, progress=False)
    except TrainerError as e:
        return StageOutcome("train", "(run)", ok=False, reason=str(e), seconds=time.monotonic() - t0)
    log(f"trained {res.steps_done} steps, final loss {res.final_loss}, export {res.export_dir}")
    return StageOutcome("train", "(run)", ok=True, seconds=time.monotonic() - t0,
                        detail={"steps": res.steps_done, "final_loss": res.final_loss, "eval_loss": res.eval_loss,
                                "export": str(res.export_dir), "metrics": str(res.metrics_path)})
