"""The stage seam: what a stage is, what it returns, and the helpers every stage shares.

A stage reads its inputs from the run directory and writes its outputs there, atomically; it is
split into work items (one repository each, or the whole run); an item whose outputs exist is
skipped; an expected failure is a ``StageOutcome`` with ``ok=False`` and a reason, recorded in
``repos/<key>/failure.json``, never an exception. No stage calls another: a missing input is an
outcome that names the stage to run first.

Stages are registered in ``factory.stages`` and run by ``factory.pipeline.run_pipeline`` through
an executor (``factory.executors``). This module imports no stage, so every stage module can
import it (``factory`` → stages → schema, one way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from factory.config import RunConfig, SandboxConfig
from factory.repo import checkout
from factory.schema import EnvImage, RepoSpec
from factory.store import RunStore, read_json, write_json

__all__ = ["CandidateSource", "Log", "SourceResult", "Stage", "StageOutcome", "WorkItem", "add_candidates",
           "run_source", "ensure_env_image", "limits_of", "load_env",
           "missing_input"]

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


@dataclass(frozen=True)
class WorkItem:
    """One unit of a stage's work: a repository (``spec``), or the whole run (``spec is None``).

    Items are keyed (stage, repo) and idempotent: a retried item finds its finished outputs and
    skips them, so it never duplicates a row.
    """

    stage: str
    repo: str
    spec: RepoSpec | None = None
    # A part of a repository's work (validate: these candidate ids); None: all of it. The empty
    # tuple is the repository's join: judge nothing, assemble what the parts wrote.
    batch: tuple[str, ...] | None = None
    part: str = ""  # "k/n" of a batched stage, for logs and keys

    @property
    def key(self) -> str:
        return f"{self.stage}:{self.repo}" + (f"#{self.part}" if self.part else "")


@dataclass(frozen=True)
class Stage:
    """A registered stage.

    ``needs``: stages whose outputs it reads (checked before it runs); ``reads``/``writes``: the
    files, per repository (``repos/<key>/...``) or per run, for the docs and the missing-input
    message; ``run(cfg, store, item, log, progress)`` does one item.

    Where an item may run: ``containers`` (it starts containers, so it needs a node that can:
    ``factory.executors_ray``'s node resource) and ``cpus(cfg)`` (the CPUs those containers are
    given, which a cluster reserves for it). ``split(cfg, store, item, size)``: the item's work as
    parts of at most ``size`` (validate: batches of candidates), planned by the driver from the
    run directory; the runner then runs the item with ``batch=()`` to join them.
    ``after_land(store)``: what the one writer re-derives after landing a record of this stage
    (run-level files made from every repository's, ``factory.landing``).
    """

    name: str
    scope: Literal["repo", "run"]
    run: Callable[..., StageOutcome]
    needs: tuple[str, ...] = ()
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    help: str = ""
    containers: bool = False
    cpus: Callable[[RunConfig], float] = lambda cfg: 1.0
    split: Callable[..., list[WorkItem]] | None = None
    after_land: Callable[[RunStore], None] | None = None

    def items(self, cfg: RunConfig) -> list[WorkItem]:
        if self.scope == "run":
            return [WorkItem(self.name, "(run)")]
        return [WorkItem(self.name, s.key, s) for s in cfg.repo_specs()]


def ensure_env_image(spec: RepoSpec, store: RunStore, *, log: Log = print, force: bool = False) -> EnvImage:
    """Build (or find) the repository's environment image and record it in ``env.json``.

    The env stage's work, and what validation does when ``env.json`` names an image this engine
    no longer has (tags are content hashes: the rebuild gives the same tag). Raises FactoryError.
    """
    from verifiers.engine import ensure_engine  # noqa: PLC0415
    from verifiers.images import build_env_image  # noqa: PLC0415

    rd = store.repo(spec.key)
    rd.write_spec(spec)
    client = ensure_engine(quiet=True)
    env = build_env_image(client, checkout(spec), log=log, force=force)
    write_json(rd.env_json, {**env.to_json(), "source": spec.source, "repo_spec": spec.__dict__})
    return env


@dataclass
class SourceResult:
    """What a candidate source produced for one repository.

    ``replaces``: origins whose earlier candidates this set replaces (see ``add_candidates``);
    ``record(added)``: writes the source's own stats file and returns the outcome's detail.
    """

    candidates: list
    stats: dict[str, Any]
    replaces: tuple[str, ...] = ()
    record: Callable[[list], dict[str, Any]] | None = None


# A candidate source: (spec, store, log) -> SourceResult, or a StageOutcome when there is nothing
# to do (skipped, or an input missing); raises FactoryError when it fails.
CandidateSource = Callable[..., "SourceResult | StageOutcome"]


def run_source(name: str, spec: RepoSpec, store: RunStore, produce: CandidateSource, *, log: Log = print
               ) -> StageOutcome:
    """The one stage body of every candidate source (mine, mutate, combine, ...): run it, join its
    candidates to the repository's file, record its failure or clear it, time it."""
    import time  # noqa: PLC0415

    from factory.errors import FactoryError  # noqa: PLC0415

    t0 = time.monotonic()
    rd = store.repo(spec.key)
    rd.write_spec(spec)
    try:
        res = produce(spec, store, log)
    except FactoryError as e:
        rd.record_failure(name, str(e), reason_key=e.reason)
        return StageOutcome(name, spec.key, ok=False, reason=str(e), seconds=time.monotonic() - t0)
    if isinstance(res, StageOutcome):
        return res
    added = add_candidates(store, spec.key, res.candidates, replaces=res.replaces)
    detail = res.record(added) if res.record else {**res.stats, "added": len(added)}
    rd.clear_failure(name)
    return StageOutcome(name, spec.key, ok=True, seconds=time.monotonic() - t0, detail=detail)


def add_candidates(store: RunStore, key: str, new, *, replaces: tuple[str, ...] = ()) -> list:
    """The one writer of ``repos/<key>/candidates.parquet``, for every candidate source.

    New candidates join the file by id (a candidate already there is kept as it is, so a re-run
    adds nothing twice); ``replaces`` names origins whose old candidates this source's new set
    replaces (a re-run of ``mutate --force`` replaces mutations and the bugs combined from them,
    never mined PRs). Returns the candidates that were added.
    """
    from factory.schema import Candidate  # noqa: PLC0415
    from factory.store import read_records, write_records  # noqa: PLC0415

    rd = store.repo(key)
    existing = read_records(rd.candidates, Candidate) if rd.candidates.exists() else []
    kept = [c for c in existing if c.origin not in replaces]
    known = {c.candidate_id for c in kept}
    added = []
    for c in new:
        if c.candidate_id not in known:
            known.add(c.candidate_id)
            added.append(c)
    write_records(rd.candidates, kept + added, Candidate)
    return added


def limits_of(cfg: SandboxConfig):
    """The sandbox limits a config section asks for."""
    from verifiers.sandbox import SandboxLimits  # noqa: PLC0415

    return SandboxLimits(timeout_s=cfg.timeout_s, mem=cfg.mem, pids=cfg.pids, cpus=cfg.cpus)


def load_env(store: RunStore, key: str) -> EnvImage | None:
    rd = store.repo(key)
    return EnvImage.from_json({k: v for k, v in read_json(rd.env_json).items()
                               if k not in ("source", "repo_spec")}) if rd.env_json.exists() else None


def missing_input(stage: str, repo: str, what: str, producer: str, command: str) -> StageOutcome:
    """The outcome of a stage whose input is not there: it names the stage (and command) to run."""
    return StageOutcome(stage, repo, ok=False,
                        reason=f"no {what}: run stage {producer!r} first (`{command}`, or `factory run` "
                               f"with {producer!r} before {stage!r} in its stages)")
