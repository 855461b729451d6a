"""The stages over the environment (env, baseline) and over the whole run (publish, train).

Each is registered in ``factory.stages``; see ``factory.stage`` for what a stage may and may not
do (in short: read inputs from the run directory, write outputs atomically, skip what is done,
return an outcome, call no other stage).
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING

from factory.config import RunConfig, SandboxConfig
from factory.errors import FactoryError
from factory.schema import BaselineEntry, CoverageEntry, RepoSpec
from factory.stage import Log, StageOutcome, ensure_env_image, limits_of, load_env, missing_input
from factory.store import RunStore, write_json, write_records

if TYPE_CHECKING:
    from verifiers.truth import TruthLimits

__all__ = ["stage_baseline", "stage_env", "stage_publish", "stage_train"]


def stage_env(spec: RepoSpec, store: RunStore, *, force: bool = False, log: Log = print) -> StageOutcome:
    """Build or reuse the repository's environment image; writes ``env.json``."""
    from verifiers.failures import strip_ansi  # noqa: PLC0415

    t0 = time.monotonic()
    rd = store.repo(spec.key)
    try:
        env = ensure_env_image(spec, store, log=log, force=force)
    except FactoryError as e:
        reason = strip_ansi(str(e))
        rd.record_failure("env", reason, reason_key=e.reason, log_tail=strip_ansi(getattr(e, "log_tail", "")))
        return StageOutcome("env", spec.key, ok=False, reason=reason, seconds=time.monotonic() - t0,
                            detail={"reason_key": e.reason})
    rd.clear_failure("env")
    for w in env.checks.get("warnings", []):
        log(f"{spec.key}: warning: {w}")
    return StageOutcome("env", spec.key, ok=True, skipped=env.cached, seconds=time.monotonic() - t0,
                        detail={"tag": env.tag, "cached": env.cached, "build_seconds": round(env.build_seconds, 2),
                                "python": env.spec.python, "warnings": env.checks.get("warnings", [])})


def stage_baseline(spec: RepoSpec, store: RunStore, *, reruns: int = 3, coverage: bool = True,
                   sandbox: SandboxConfig = SandboxConfig(), force: bool = False,
                   truth: TruthLimits | None = None, log: Log = print) -> StageOutcome:
    """Run the suite ``reruns`` times in the sandbox, then the truth checks (``verifiers.truth``);
    writes baseline and coverage parquet files and ``baseline.json``, or the failure and why."""
    from verifiers.baseline import run_baseline  # noqa: PLC0415
    from verifiers.engine import ensure_engine  # noqa: PLC0415
    from verifiers.failures import explain_run, strip_ansi  # noqa: PLC0415
    from verifiers.truth import TruthLimits, check_baseline  # noqa: PLC0415

    t0 = time.monotonic()
    truth = truth or TruthLimits()
    rd = store.repo(spec.key)
    if rd.baseline.exists() and (rd.coverage.exists() or not coverage) and not force:
        return StageOutcome("baseline", spec.key, ok=True, skipped=True, reason="baseline exists")
    env = load_env(store, spec.key)
    if env is None:
        return missing_input("baseline", spec.key, "environment image", "env", f"factory env build {spec.source}")
    try:
        client = ensure_engine(quiet=True)
        base = run_baseline(client, env.tag, env.spec.test_cmd, reruns=reruns, coverage=coverage,
                            paths=tuple(spec.test_paths), limits=limits_of(sandbox),
                            progress=lambda m: log(f"{spec.key}: {m}"))
    except FactoryError as e:
        why = explain_run(*_run_status(e))
        reason = strip_ansi(str(e))
        if why and why.cause not in reason:
            reason += f": {why.line()}"
        elif why and why.fix:
            reason += f" (try: {why.fix})"
        key = why.key if why else e.reason
        rd.record_failure("baseline", reason, reason_key=key, log_tail=strip_ansi(getattr(e, "log_tail", "") or ""))
        return StageOutcome("baseline", spec.key, ok=False, reason=reason, seconds=time.monotonic() - t0,
                            detail={"reason_key": key})
    verdict = check_baseline(base.entries, base.runs, base.collect_errors, truth)
    warnings = tuple(verdict.warnings)
    if base.renamed:
        warnings += (f"the runs reported {len(base.renamed)} test ids that collection did not list (random "
                     f"parameter ids, e.g. {base.renamed[0][:120]}): no task can name the tests they belong "
                     "to, so those count as flaky",)
    summary = dataclasses.replace(base.summary(), image=env.tag, reruns=reruns, wall_s=round(time.monotonic() - t0, 3),
                                  checks=verdict.checks, warnings=warnings).to_json()
    for w in warnings:
        log(f"{spec.key}: warning: {w}")
    if verdict.refusal is not None:
        write_json(rd.root / "baseline.refused.json", summary)
        reason = f"{verdict.refusal.key}: {verdict.refusal.line()}"
        rd.record_failure("baseline", reason, reason_key=verdict.refusal.key)
        return StageOutcome("baseline", spec.key, ok=False, reason=reason, seconds=time.monotonic() - t0,
                            detail={"reason_key": verdict.refusal.key, **summary})
    write_records(rd.baseline, base.entries, BaselineEntry)
    if coverage:
        write_records(rd.coverage, base.coverage, CoverageEntry)
    write_json(rd.root / "baseline.json", summary)
    rd.clear_failure("baseline")
    return StageOutcome("baseline", spec.key, ok=True, seconds=time.monotonic() - t0, detail=summary)


def _run_status(e: FactoryError) -> tuple[str, str, str]:
    """(run status, reason, log tail) of a baseline that failed, for ``explain_run``."""
    status = {"no_tests": "no_tests", "collection_error": "collection_error", "run_aborted": "aborted"}.get(e.reason, e.reason)
    return status, str(e), getattr(e, "log_tail", "") or ""


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
