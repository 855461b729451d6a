"""The registry: every stage ``factory run`` knows, with what it reads and writes.

Adding a stage is one function in a stage module and one ``register(Stage(...))`` here. Each
adapter maps the run config's section onto the stage function's arguments; nothing else about a
stage lives in the runner.
"""

from __future__ import annotations

from factory.config import RunConfig
from factory.env_stages import stage_baseline, stage_env, stage_publish, stage_train
from factory.stage import Log, Stage, StageOutcome, WorkItem
from factory.store import RunStore
from factory.task_stages import stage_combine, stage_mine, stage_mutate, stage_validate

__all__ = ["REGISTRY", "register", "stage_named"]

REGISTRY: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    if stage.name in REGISTRY:
        raise ValueError(f"stage {stage.name!r} is registered twice")
    REGISTRY[stage.name] = stage
    return stage


def stage_named(name: str) -> Stage:
    from factory.errors import ConfigError  # noqa: PLC0415

    if name not in REGISTRY:
        raise ConfigError(f"unknown stage {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def _env(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    return stage_env(item.spec, store, log=log)


def _baseline(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    from verifiers.truth import TruthLimits  # noqa: PLC0415

    b = cfg.baseline
    return stage_baseline(item.spec, store, reruns=b.reruns, coverage=b.coverage, sandbox=cfg.sandbox,
                          truth=TruthLimits(b.max_error_share, b.max_skip_share, refuse=b.refuse_excess), log=log)


def _mine(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    m = cfg.mine
    return stage_mine(item.spec, store, github=m.github, mirror=m.mirror, since=m.since,
                      max_candidates=m.max_candidates, include_commits=m.commits, log=log)


def _mutate(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    m = cfg.mutate
    return stage_mutate(item.spec, store, seed=m.seed, max_per_function=m.max_per_function,
                        operators=tuple(m.operators) if m.operators else None, max_candidates=m.max_candidates,
                        log=log)


def _combine(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    return stage_combine(item.spec, store, seed=cfg.combine.seed, log=log)


def _validate(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    v = cfg.validate_
    sandbox = cfg.sandbox.model_copy(update={"timeout_s": v.timeout_s}) if v.timeout_s else None
    return stage_validate(item.spec, store, strategy=v.strategy, workers=v.workers, sandbox=sandbox,
                          max_f2p=v.max_f2p, log=log, progress=progress, only=item.batch,
                          confirm_fraction=v.confirm_fraction, allow_disagreement=v.allow_disagreement)


def _validate_batches(cfg: RunConfig, store: RunStore, item: WorkItem, size: int) -> list[WorkItem]:
    """The candidates still to judge (no accepted/rejected verdict on disk), in the file's order,
    as items of at most ``size``; none when everything is judged (the join still assembles)."""
    import json  # noqa: PLC0415

    import pyarrow.parquet as pq  # noqa: PLC0415

    rd = store.repo(item.repo)
    if not rd.candidates.exists():
        return [item]  # the stage itself says what is missing
    ids = pq.read_table(rd.candidates, columns=["candidate_id"]).column("candidate_id").to_pylist()
    todo = []
    for cid in ids:
        p = rd.root / "validations" / f"{cid}.json"
        try:
            verdict = json.loads(p.read_text())["validation"]["verdict"] if p.exists() else None
        except (OSError, ValueError, KeyError, TypeError):
            verdict = None  # unreadable: judged again
        if verdict not in ("accepted", "rejected"):
            todo.append(cid)
    chunks = [tuple(todo[i:i + size]) for i in range(0, len(todo), size)]
    return [WorkItem(item.stage, item.repo, item.spec, batch=c, part=f"{k}/{len(chunks)}")
            for k, c in enumerate(chunks, 1)]


def _collect_instances(store: RunStore) -> None:
    from factory.task_stages import collect_instances  # noqa: PLC0415

    collect_instances(store)


def _sandbox_cpus(cfg: RunConfig) -> float:
    return cfg.sandbox.cpus


def _validate_cpus(cfg: RunConfig) -> float:
    return cfg.validate_.workers * cfg.sandbox.cpus


def _publish(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    return stage_publish(cfg, store, log=log)


def _train(cfg: RunConfig, store: RunStore, item: WorkItem, log: Log, progress=None) -> StageOutcome:
    return stage_train(cfg, store, log=log)


register(Stage("env", "repo", _env, writes=("env.json",),
               help="build (or reuse) the environment image", containers=True))
register(Stage("baseline", "repo", _baseline, needs=("env",), reads=("env.json",),
               writes=("baseline.parquet", "coverage.parquet", "baseline.json"),
               help="the suite N times: outcomes, flaky set, coverage map", containers=True, cpus=_sandbox_cpus))
register(Stage("mine", "repo", _mine, writes=("candidates.parquet", "mine.json"),
               help="candidates from merged pull requests and fix commits"))
register(Stage("mutate", "repo", _mutate, needs=("baseline",), reads=("baseline.parquet", "coverage.parquet"),
               writes=("candidates.parquet", "mutate.json"), help="candidates from injected bugs"))
register(Stage("combine", "repo", _combine, needs=("validate",), reads=("candidates.parquet", "validations/"),
               writes=("candidates.parquet",), help="harder candidates from 2-3 validated bugs of one file"))
register(Stage("validate", "repo", _validate, needs=("env", "baseline"),
               reads=("env.json", "baseline.parquet", "candidates.parquet"),
               writes=("validations/", "validations.parquet", "../../instances.parquet"),
               help="candidates → verdicts → tasks", containers=True, cpus=_validate_cpus,
               split=_validate_batches, after_land=_collect_instances))
register(Stage("publish", "run", _publish, needs=("validate",), reads=("instances.parquet",),
               writes=("dataset/",), help="curate and write the Hugging Face dataset"))
register(Stage("train", "run", _train, needs=("publish",), reads=("dataset/",), writes=("train/",),
               help="a few steps of the bundled trainer on the dataset"))
