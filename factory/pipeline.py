"""The runner: every configured stage over every item, through an executor.

``run_pipeline`` takes the stages a config names (any of ``factory.stages.REGISTRY``: env,
baseline, mine, mutate, combine, validate, publish, train), in the config's order. For each, it
checks the stage's inputs, splits it into work items (one per repository, or one for the run),
hands them to the executor and collects their outcomes: it owns the order, the timing, the
failure records and what a failure stops. A repository whose stage fails is left out of its
later stages (and recorded in ``repos/<key>/failure.json``); the others go on; a run-level stage
that fails ends the run. The stage functions themselves live in ``factory.env_stages`` and
``factory.task_stages``; their names are re-exported here for callers of the older layout.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from factory.config import RunConfig
from factory.env_stages import stage_baseline, stage_env, stage_publish, stage_train
from factory.executors import Executor, LocalExecutor
from factory.stage import Log, StageOutcome, load_env
from factory.stages import REGISTRY, stage_named
from factory.store import RunStore

__all__ = ["STAGES", "StageOutcome", "load_env", "run_pipeline", "stage_baseline", "stage_env", "stage_publish",
           "stage_train"]

STAGES = tuple(REGISTRY)


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
    outcomes: list[StageOutcome] = []
    failed: set[str] = set()
    for stage in stages:
        items = [i for i in stage.items(cfg) if i.repo not in failed and (only is None or i.spec is None
                                                                           or i.repo in only)]
        if stage.scope == "repo":
            for item in items:
                store.repo(item.repo).write_spec(item.spec)
        stop = False
        t0 = time.monotonic()
        for item, out in executor.run(cfg, store.root, items, log=log, progress=progress):
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
    store.update_manifest(last_run={o.repo + ":" + o.stage: {"ok": o.ok, "reason": o.reason} for o in outcomes})
    return outcomes


def _recorded(rd) -> dict:
    from factory.store import read_json  # noqa: PLC0415

    return read_json(rd.failure) if rd.failure.exists() else {}
