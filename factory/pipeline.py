"""The runner: every configured stage over every item, through an executor.

``run_pipeline`` takes the stages a config names (any of ``factory.stages.REGISTRY``: env,
baseline, mine, mutate, combine, validate, publish, train), in the config's order. For each, it
checks the stage's inputs, splits it into work items (one per repository, or one for the run),
hands them to the executor and collects their outcomes: it owns the order, the timing, the
failure records and what a failure stops. A repository whose stage fails is left out of its
later stages (and recorded in ``repos/<key>/failure.json``); the others go on; a run-level stage
that fails ends the run. The stage functions themselves live in ``factory.env_stages`` and
``factory.task_stages``; their names are re-exported here for callers of the older layout.

A stage that can ``split`` (validate) is run as parts when the config or the executor asks for
batches (``validate.batch``; a cluster executor's ``default_batch``): the parts go to the executor
with every other repository's, and the repository's own item then runs here with ``batch=()`` to
join them (assemble the parquet files from what the parts wrote).

A repository whose every repository stage finished in an earlier run with the same settings
(``repos/<key>/finished.json``) is skipped whole: a resumed run of many repositories spends
nothing on those already done. Every container the run starts carries its id
(``factory.landing.run_id_for``); the run ends by sweeping the engines of whatever a killed
worker left.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable

from factory.config import RunConfig
from factory.env_stages import stage_baseline, stage_env, stage_publish, stage_train
from factory.executors import Executor, LocalExecutor, run_item
from factory.landing import RUN_ENV, run_id_for
from factory.stage import Log, Stage, StageOutcome, WorkItem, load_env
from factory.stages import REGISTRY, stage_named
from factory.store import RunStore, read_json, write_json

__all__ = ["STAGES", "StageOutcome", "load_env", "run_pipeline", "stage_baseline", "stage_env", "stage_publish",
           "stage_train"]

STAGES = tuple(REGISTRY)
FINISHED = "finished.json"


def run_pipeline(cfg: RunConfig, store: RunStore, *, log: Log = print, executor: Executor | None = None,
                 progress: Callable | None = None, only: set[str] | None = None,
                 record_config: bool = True) -> list[StageOutcome]:
    """Every configured stage for every repository (``only``: these repository keys); one
    repository's failure stops only itself. ``record_config``: this config is the run's (``factory
    run``); single-stage commands over an existing run leave the manifest's config alone."""
    stages = [stage_named(n) for n in cfg.stages]  # an unknown name is a ConfigError naming the known ones
    if record_config:
        store.update_manifest(config=cfg.model_dump(by_alias=True), name=cfg.name)
    executor = executor or LocalExecutor()
    run_id = run_id_for(cfg, store.root)
    old_env = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = run_id  # every container this process (or a local worker) starts is the run's
    outcomes: list[StageOutcome] = []
    failed: set[str] = set()
    repo_stages = [s for s in stages if s.scope == "repo"]
    finished = _finished_repos(cfg, store, repo_stages) if record_config else set()
    for key in sorted(finished):
        log(f"{key}: finished in an earlier run with these settings; skipped ({FINISHED})")
    try:
        for stage in stages:
            items = [i for i in stage.items(cfg) if i.repo not in failed and i.repo not in finished
                     and (only is None or i.spec is None or i.repo in only)]
            if stage.scope == "repo":
                for item in items:
                    store.repo(item.repo).write_spec(item.spec)
            t0 = time.monotonic()
            stop = False
            for item, out in _run_stage(stage, cfg, store, items, executor, log, progress):
                if not out.seconds:
                    out.seconds = time.monotonic() - t0
                outcomes.append(out)
                if out.ok:
                    continue
                log(f"{item.repo}: {stage.name} failed: {out.reason}")
                if stage.scope == "run":
                    stop = True
                    continue
                failed.add(item.repo)
                rd = store.repo(item.repo)
                if stage.name not in _recorded(rd):
                    rd.record_failure(stage.name, out.reason)
            if stop:
                break
        if record_config and repo_stages:
            for spec in cfg.repo_specs():
                if (spec.key not in failed and spec.key not in finished and (only is None or spec.key in only)
                        and not _has_error_verdicts(store, spec.key)):
                    _mark_finished(cfg, store, spec, repo_stages)
    finally:
        if any(s.containers for s in stages):
            _sweep(executor, run_id, log)
        if old_env is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = old_env
    store.update_manifest(last_run={o.repo + ":" + o.stage: {"ok": o.ok, "reason": o.reason} for o in outcomes},
                          run_id=run_id)
    return outcomes


def _batch_size(stage: Stage, cfg: RunConfig, executor) -> int | None:
    if stage.split is None:
        return None
    return cfg.validate_.batch or getattr(executor, "default_batch", None)


def _run_stage(stage: Stage, cfg: RunConfig, store: RunStore, items: list[WorkItem], executor, log: Log,
               progress):
    """(item, outcome) per repository item (or the run's item): its parts through the executor,
    then its join here, when the stage is split; else the items themselves."""
    size = _batch_size(stage, cfg, executor)
    if not size:
        yield from executor.run(cfg, store.root, items, log=log, progress=progress)
        return
    parts: list[WorkItem] = []
    for item in items:
        planned = stage.split(cfg, store, item, size)
        parts.extend(planned)
        n = sum(1 for p in planned if p.batch)
        log(f"{item.repo}: {stage.name} in {n} part(s) of at most {size}" if n else
            f"{item.repo}: {stage.name}: nothing left to judge")
    whole = {p.repo: (p, None) for p in parts if p.batch is None}  # not splittable (an input missing)
    part_failures: dict[str, list[StageOutcome]] = {}
    runnable = [p for p in parts if p.batch]
    for part, out in executor.run(cfg, store.root, runnable + [w for w, _ in whole.values()], log=log,
                                  progress=progress):
        if part.batch is None:
            whole[part.repo] = (part, out)
        elif not out.ok:
            log(f"{part.key}: failed: {out.reason}")
            part_failures.setdefault(part.repo, []).append(out)
    for item in items:
        if item.repo in whole:
            yield whole[item.repo]
            continue
        joined = run_item(cfg, str(store.root), dataclasses.replace(item, batch=()), log)
        bad = part_failures.get(item.repo)
        if bad and joined.ok:
            joined = dataclasses.replace(joined, ok=False, reason=f"{len(bad)} part(s) failed; first: {bad[0].reason}")
        yield item, joined


# The config sections each repository stage's results depend on.
_SECTIONS = {"env": (), "baseline": ("baseline", "sandbox"), "mine": ("mine",), "mutate": ("mutate",),
             "combine": ("combine",), "validate": ("validate", "sandbox")}


def _settings_digest(cfg: RunConfig, spec, repo_stages: list[Stage]) -> str:
    """What a repository's results depend on: its spec, the repository stages, their settings."""
    dump = cfg.model_dump(by_alias=True)
    wanted = {sec for s in repo_stages for sec in _SECTIONS.get(s.name, tuple(dump))}
    data = {k: v for k, v in dump.items() if k in wanted and k not in ("name", "repos", "stages")}
    if "validate" in data:  # how work is cut into items never changes a result
        data["validate"] = {k: v for k, v in data["validate"].items() if k not in ("batch", "workers")}
    blob = json.dumps({"spec": dataclasses.asdict(spec), "stages": [s.name for s in repo_stages],
                       "settings": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _finished_repos(cfg: RunConfig, store: RunStore, repo_stages: list[Stage]) -> set[str]:
    out = set()
    for spec in cfg.repo_specs():
        path = store.repo(spec.key).root / FINISHED
        try:
            if path.exists() and read_json(path).get("digest") == _settings_digest(cfg, spec, repo_stages):
                out.add(spec.key)
        except (OSError, ValueError, AttributeError):
            continue
    return out


def _has_error_verdicts(store: RunStore, key: str) -> bool:
    """Verdicts of kind ``error`` (infrastructure) are tried again by the next run: not finished."""
    d = store.repo(key).root / "validations"
    for p in d.glob("*.json") if d.is_dir() else ():
        try:
            if read_json(p)["validation"]["verdict"] == "error":
                return True
        except (OSError, ValueError, KeyError, TypeError):
            return True
    return False


def _mark_finished(cfg: RunConfig, store: RunStore, spec, repo_stages: list[Stage]) -> None:
    from factory.store import _now  # noqa: PLC0415

    write_json(store.repo(spec.key).root / FINISHED, {
        "digest": _settings_digest(cfg, spec, repo_stages), "stages": [s.name for s in repo_stages], "at": _now()})


def _sweep(executor, run_id: str, log: Log) -> None:
    """Remove the run's leftover containers (a killed worker's) wherever the executor runs them."""
    try:
        sweep = getattr(executor, "sweep", None)
        n = sweep(run_id) if sweep is not None else _sweep_here(run_id)
    except Exception as e:  # no engine here (a run without containers), or a node gone: nothing to sweep
        log(f"sweep of run {run_id}: {e.__class__.__name__}: {str(e)[:200]}")
        return
    if n:
        log(f"swept {n} container(s) of run {run_id} left by killed workers")


def _sweep_here(run_id: str) -> int:
    from verifiers.engine import docker_client  # noqa: PLC0415
    from verifiers.isolation import sweep_run  # noqa: PLC0415

    return sweep_run(docker_client(), run_id)


def _recorded(rd) -> dict:
    return read_json(rd.failure) if rd.failure.exists() else {}
