"""The task-making stages over one repository: mine, mutate and combine (candidates), validate
(verdicts and tasks).

Like ``factory.pipeline``'s stages, each reads its inputs from the run directory and writes its
outputs atomically. ``validate`` writes one verdict file per candidate as soon as it is known
(``repos/<key>/validations/<candidate_id>.json``), so an interrupted run resumes where it stopped;
the parquet files are assembled from those files, so a candidate is never judged twice nor
lost. Verdicts of kind ``error`` (infrastructure) are retried by the next run.
"""

from __future__ import annotations

import glob
import json
import time
from collections.abc import Callable, Collection
from pathlib import Path

from factory.config import SandboxConfig
from factory.errors import FactoryError
from factory.repo import checkout
from factory.schema import (
    BaselineEntry,
    BaselineSummary,
    Candidate,
    CoverageEntry,
    RepoSpec,
    TaskInstance,
    Validation,
    VerdictFile,
)
from factory.stage import (
    Log,
    SourceResult,
    StageOutcome,
    ensure_env_image,
    limits_of,
    load_env,
    missing_input,
    run_source,
)
from factory.store import RunStore, read_json, read_records, write_json, write_records

__all__ = ["collect_instances", "current_candidate_ids", "produce_combined", "produce_mined", "produce_mutations",
           "set_aside_stale", "stage_combine", "stage_mine", "stage_mutate", "stage_validate", "stale_instance_ids"]

Progress = Callable[[Validation], None]


def stage_mutate(spec: RepoSpec, store: RunStore, *, seed: int = 0, max_per_function: int = 3,
                 operators: tuple[str, ...] | None = None, max_candidates: int | None = None,
                 force: bool = False, log: Log = print) -> StageOutcome:
    """Candidates from injected bugs on code that the baseline's stable tests execute."""
    def produce(spec: RepoSpec, store: RunStore, log: Log) -> SourceResult | StageOutcome:
        return produce_mutations(spec, store, seed=seed, max_per_function=max_per_function, operators=operators,
                                 max_candidates=max_candidates, force=force)

    return run_source("mutate", spec, store, produce, log=log)


def produce_mutations(spec: RepoSpec, store: RunStore, *, seed: int = 0, max_per_function: int = 3,
                      operators: tuple[str, ...] | None = None, max_candidates: int | None = None,
                      force: bool = False) -> SourceResult | StageOutcome:
    """The mutation source: libcst bugs (``mutators``) on lines the stable tests cover."""
    from mutators import MutateConfig, mutate_repo  # noqa: PLC0415

    rd = store.repo(spec.key)
    # Mined candidates may share the file: done means "mutations are there", and a new set of
    # mutations (--force) replaces the old mutations (and bugs combined from them), nothing else.
    existing = read_records(rd.candidates, Candidate) if rd.candidates.exists() else []
    if any(c.origin == "mutation" for c in existing) and not force:
        return StageOutcome("mutate", spec.key, ok=True, skipped=True, reason="mutation candidates exist")
    if not rd.baseline.exists() or not rd.coverage.exists():
        return missing_input("mutate", spec.key, "baseline with coverage", "baseline",
                             f"factory env baseline {spec.source}")
    baseline = read_records(rd.baseline, BaselineEntry)
    coverage = read_records(rd.coverage, CoverageEntry)
    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    # The files the suite collected tests from are test files whatever their names (rope 1.13.0's
    # `python_files = *test.py`): a bug injected there breaks a test, not the library.
    collected = sorted({glob.escape(e.nodeid.split("::", 1)[0]) for e in baseline})
    cfg = MutateConfig(seed=seed, max_per_function=max_per_function, operators=operators,
                       max_candidates=max_candidates,
                       test_file_patterns=(*spec.test_file_patterns, *collected))
    co = checkout(spec)
    with co.worktree() as tree:
        result = mutate_repo(tree, spec.key, co.commit, coverage, stable, cfg)
    stats = {**dict(result.stats), "candidates": len(result.candidates), "seed": seed}

    def record(added: list) -> dict:
        write_json(rd.root / "mutate.json", stats)
        return stats

    return SourceResult(list(result.candidates), stats, replaces=("mutation", "combined"), record=record)


def stage_mine(spec: RepoSpec, store: RunStore, *, github: str | None = None, mirror: bool = False,
               since: str | None = None, max_candidates: int | None = None, include_commits: bool | None = None,
               github_url: str | None = None, log: Log = print) -> StageOutcome:
    """Candidates from history (local merges/squashes, the GitHub API, or the PR mirror).

    ``include_commits`` (``--commits``) holds in every mode: True adds direct fix commits, False
    keeps pull requests only, None takes direct commits only when the history has no PR. With
    ``github`` the API gives the PRs and the local history the direct commits (``commits`` stats).
    New candidates join the repository's ``candidates.parquet`` (keyed by id, so a re-run adds
    nothing twice); ``mine.json`` keeps the funnel counts of the last run of each mode, and
    ``detail["funnel"]`` is the line a user reads (``miners.local.funnel``).
    """
    def produce(spec: RepoSpec, store: RunStore, log: Log) -> SourceResult:
        return produce_mined(spec, store, github=github, mirror=mirror, since=since, max_candidates=max_candidates,
                             include_commits=include_commits, github_url=github_url)

    return run_source("mine", spec, store, produce, log=log)


def produce_mined(spec: RepoSpec, store: RunStore, *, github: str | None = None, mirror: bool = False,
                  since: str | None = None, max_candidates: int | None = None, include_commits: bool | None = None,
                  github_url: str | None = None) -> SourceResult:
    """The history source: merged PRs and fix commits (local git, the GitHub API, or the mirror)."""
    import miners  # noqa: PLC0415

    rd = store.repo(spec.key)
    mode = "github" if github else "mirror" if mirror else "local"
    # The miners raise MinerError (a FactoryError): run_source records it.
    co = checkout(spec)
    if github:
        kw = {"base_url": github_url} if github_url else {}
        res = miners.mine_github(co.path, github, repo=spec.key, cache_dir=rd.root / "github", since=since,
                                 max_candidates=max_candidates, **kw)
        if include_commits:  # the API knows PRs only; direct commits come from the local history
            direct = miners.mine_local(co.path, repo=spec.key, ref=co.commit, since=since, include_commits=True,
                                       test_globs=tuple(spec.test_file_patterns))
            in_prs = _commits_of(co.path, res.candidates)  # a rebase-merged PR's commits are not direct
            extra = [c for c in direct.candidates if c.pr_number is None
                     and json.loads(c.provenance).get("merge_commit") not in in_prs]
            res.candidates.extend(extra)
            res.stats.update({"commits_scanned": direct.stats.get("commits_scanned", 0),
                              "commits_considered": direct.stats.get("commits_considered", 0),
                              "commit_candidates": len(extra)})
            res.stats["candidates"] = len(res.candidates)
    elif mirror:
        res = miners.mine_mirror(co.path, repo=spec.key, head=co.commit, since=since,
                                 max_candidates=max_candidates, include_commits=include_commits,
                                 test_globs=tuple(spec.test_file_patterns))
    else:
        res = miners.mine_local(co.path, repo=spec.key, ref=co.commit, since=since, max_candidates=max_candidates,
                                include_commits=include_commits, test_globs=tuple(spec.test_file_patterns))

    def record(added: list) -> dict:
        from miners.local import funnel  # noqa: PLC0415

        stats_path = rd.root / "mine.json"
        stats = read_json(stats_path) if stats_path.exists() else {}
        stats[mode] = {**dict(res.stats), "added": len(added), "funnel": funnel(res.stats)}
        write_json(stats_path, stats)
        return stats[mode]

    return SourceResult(list(res.candidates), dict(res.stats), record=record)


def _commits_of(repo_path: Path, candidates: list[Candidate]) -> set[str]:
    """The first-parent commits each PR candidate spans (base, merge commit]."""
    from factory.repo import git  # noqa: PLC0415

    out: set[str] = set()
    for c in candidates:
        top = json.loads(c.provenance or "{}").get("merge_commit")
        if top:
            out.update(git(repo_path, "rev-list", "--first-parent", top, f"^{c.base_commit}").split())
    return out


def stage_combine(spec: RepoSpec, store: RunStore, *, seed: int = 0, log: Log = print) -> StageOutcome:
    """Harder candidates from 2-3 validated bugs of one file whose diffs do not overlap.

    They join ``candidates.parquet`` (origin ``combined``, ``parents`` naming the bugs) and are
    judged by the next ``validate`` like any other candidate.
    """
    def produce(spec: RepoSpec, store: RunStore, log: Log) -> SourceResult | StageOutcome:
        return produce_combined(spec, store, seed=seed)

    return run_source("combine", spec, store, produce, log=log)


def produce_combined(spec: RepoSpec, store: RunStore, *, seed: int = 0) -> SourceResult | StageOutcome:
    """The combination source: 2-3 validated bugs of one file whose diffs do not overlap."""
    from mutators import MutateConfig, combine  # noqa: PLC0415

    rd = store.repo(spec.key)
    if not rd.candidates.exists():
        return missing_input("combine", spec.key, "candidates", "mutate", f"factory mutate {spec.source}")
    cands = read_records(rd.candidates, Candidate)
    accepted = {cid for cid, v in _load_verdicts(store, spec.key, {c.candidate_id for c in cands}).items()
                if v.validation.verdict == "accepted"}
    validated = [c for c in cands if c.candidate_id in accepted and c.origin == "mutation"]
    if not validated:
        # Nothing to combine yet (a first run lists combine before validate): not a failure of the
        # repository; once validate has accepted bugs, the next run combines them.
        return StageOutcome("combine", spec.key, ok=True, skipped=True,
                            reason="no validated mutations yet: run validate, then combine and validate again")
    co = checkout(spec)
    with co.worktree() as tree:
        res = combine(validated, tree, MutateConfig(seed=seed, test_file_patterns=tuple(spec.test_file_patterns)))
    stats = {**dict(res.stats), "validated_bugs": len(validated)}
    return SourceResult(list(res.candidates), stats,
                        record=lambda added: {**stats, "candidates": len(added)})


def _verdict_dir(store: RunStore, key: str) -> Path:
    return store.repo(key).root / "validations"


def _load_verdicts(store: RunStore, key: str, current: set[str] | None = None) -> dict[str, VerdictFile]:
    """The verdict files of this repository; with ``current``, only those of these candidates."""
    d = _verdict_dir(store, key)
    out = {}
    if d.exists():
        for p in sorted(d.glob("*.json")):
            if current is not None and p.stem not in current:
                continue
            try:
                out[p.stem] = VerdictFile.from_json(read_json(p))
            except (json.JSONDecodeError, OSError, KeyError, TypeError):
                continue  # an unreadable verdict is redone
    return out


def current_candidate_ids(store: RunStore, key: str) -> set[str]:
    """The ids in this repository's ``candidates.parquet`` (empty when there is none)."""
    import pyarrow.parquet as pq  # noqa: PLC0415

    rd = store.repo(key)
    if not rd.candidates.exists():
        return set()
    return set(pq.read_table(rd.candidates, columns=["candidate_id"]).column("candidate_id").to_pylist())


def set_aside_stale(store: RunStore, key: str, current: set[str]) -> tuple[int, int]:
    """Verdicts belong to candidates: the files of candidates no longer in ``candidates.parquet``
    (``mutate --force`` made others) move to ``validations/stale/``, kept, not counted, not
    published; a stale verdict whose candidate is back returns. Returns (set aside, restored)."""
    d = _verdict_dir(store, key)
    stale_dir = d / "stale"
    aside = restored = 0
    if d.exists():
        for p in sorted(d.glob("*.json")):
            if p.stem not in current:
                stale_dir.mkdir(exist_ok=True)
                p.replace(stale_dir / p.name)
                aside += 1
    if stale_dir.exists():
        for p in sorted(stale_dir.glob("*.json")):
            if p.stem in current and not (d / p.name).exists():
                p.replace(d / p.name)
                restored += 1
    return aside, restored


def stale_instance_ids(run_dir: Path, rows: list[tuple[str, str, str]]) -> set[str]:
    """Of these instances — (instance_id, repo, provenance) rows of ``instances.parquet`` — those
    whose candidate is not in its repository's current ``candidates.parquet``: their verdicts are
    stale and must not be published. The candidate id is the provenance's ``candidate_id`` (else
    the id after ``__``). A repository without ``candidates.parquet`` in this run judges nothing."""
    store = RunStore(run_dir)
    current: dict[str, set[str] | None] = {}
    stale = set()
    for iid, repo, prov in rows:
        if repo not in current:
            current[repo] = current_candidate_ids(store, repo) if store.repo(repo).candidates.exists() else None
        ids = current[repo]
        if ids is None:
            continue
        try:
            cid = json.loads(prov or "{}").get("candidate_id") or iid.rsplit("__", 1)[-1]
        except json.JSONDecodeError:
            cid = iid.rsplit("__", 1)[-1]
        if cid not in ids:
            stale.add(iid)
    return stale


def adaptive_timeout(store: RunStore, key: str, floor_s: float = 60.0, factor: float = 10.0) -> float:
    """A run's wall-clock limit from the baseline: ``factor`` × its median full run, at least ``floor_s``.

    The median, not the slowest: on a loaded machine one baseline run can take several times the
    idle time, and ten times that is minutes a hanging candidate costs for nothing. The floor is
    for fast suites on a machine busier than at baseline time (a 1 s suite can take 20 s then). A bug that
    makes the suite ten times slower than it typically was is a hang for our purposes; a suite
    that is slow because it fails a lot is told apart by its partial report (``too_many_f2p``,
    ``verifiers.verdict.judge``).
    """
    path = store.repo(key).root / "baseline.json"
    walls = sorted(BaselineSummary.from_json(read_json(path)).run_wall_s) if path.exists() else []
    if not walls:
        return 300.0
    mid = len(walls) // 2
    median = walls[mid] if len(walls) % 2 else (walls[mid - 1] + walls[mid]) / 2
    return max(floor_s, factor * median)


def _coverage_inputs(spec: RepoSpec, store: RunStore, log: Log):
    """The baseline's coverage map and the clean sources it speaks of (the checkout the mutators
    and the environment image were made from), for the selected strategy's attribution."""
    from verifiers.attribution import CoverageMap  # noqa: PLC0415

    rd = store.repo(spec.key)
    if not rd.coverage.exists():
        log(f"{spec.key}: no coverage map (baseline --no-coverage?): every candidate gets the full suite")
        return None, None
    cov = CoverageMap.from_entries(read_records(rd.coverage, CoverageEntry))
    root = checkout(spec).path

    def source_of(path: str) -> str | None:
        p = root / path
        try:
            return p.read_text(encoding="utf-8") if p.resolve().is_relative_to(root.resolve()) else None
        except (OSError, UnicodeDecodeError):
            return None

    return cov, source_of


def _audit_dir(store: RunStore, key: str) -> Path:
    """Under ``validations/`` (what the stage declares it writes), beside the verdict files."""
    return _verdict_dir(store, key) / "audit"


def _audit_disagreements(store: RunStore, key: str, current: set[str]) -> tuple[int, list[dict]]:
    """(audited candidates, the records of those whose full-suite judgement disagreed)."""
    d = _audit_dir(store, key)
    seen, bad = 0, []
    if d.exists():
        for p in sorted(d.glob("*.json")):
            if p.stem not in current:
                continue
            try:
                rec = read_json(p)
            except (json.JSONDecodeError, OSError):
                continue
            seen += 1
            if not rec.get("agrees", True):
                bad.append(rec)
    return seen, bad


def stage_validate(spec: RepoSpec, store: RunStore, *, strategy: str = "selected", workers: int = 0,
                   sandbox: SandboxConfig | None = None, max_f2p: int = 50,
                   build_task_images: bool = True, log: Log = print,
                   progress: Progress | None = None, only: Collection[str] | None = None,
                   confirm_fraction: float = 0.05, allow_disagreement: bool = False, seed: int = 0) -> StageOutcome:
    """Judge this repository's candidates; resumes from the verdicts already on disk.

    ``workers`` 0: one container per CPU core. The audit (``confirm_fraction`` of the candidates
    the selected rule accepts, judged again with the full suite) writes ``validations/audit/<id>.json``; a
    disagreement fails the stage unless ``allow_disagreement`` (verdicts are kept either way: the
    full suite's where they disagree).

    ``only``: judge just these candidate ids (a batch of a cluster run); ``()`` judges none and
    only assembles the parquet files from the verdicts there (the batches' join)."""
    from verifiers.engine import ensure_engine  # noqa: PLC0415
    from verifiers.validate import ValidateConfig, default_workers, validate_candidates  # noqa: PLC0415
    from verifiers.verdict import VerdictRules  # noqa: PLC0415

    t0 = time.monotonic()
    workers = workers or default_workers()
    rd = store.repo(spec.key)
    if not rd.candidates.exists():
        return StageOutcome("validate", spec.key, ok=False, reason="no candidates; run `factory mutate` first")
    candidates = read_records(rd.candidates, Candidate)
    current = {c.candidate_id for c in candidates}
    aside, restored = set_aside_stale(store, spec.key, current)
    done = {cid: v for cid, v in _load_verdicts(store, spec.key, current).items()
            if v.validation.verdict in ("accepted", "rejected")}
    todo = [c for c in candidates if c.candidate_id not in done and (only is None or c.candidate_id in only)]
    log(f"{spec.key}: {len(candidates)} candidates, {len(done)} already judged, {len(todo)} to go"
        + (f"; {aside} verdicts of candidates no longer mined set aside in validations/stale/" if aside else "")
        + (f"; {restored} restored from validations/stale/" if restored else ""))
    vdir = _verdict_dir(store, spec.key)

    def _on_result(val: Validation, inst: TaskInstance | None) -> None:
        write_json(vdir / f"{val.candidate_id}.json", VerdictFile(val, inst).to_json())
        if progress is not None:
            progress(val)

    def _on_audit(rec) -> None:
        import dataclasses  # noqa: PLC0415

        write_json(_audit_dir(store, spec.key) / f"{rec.candidate_id}.json", dataclasses.asdict(rec))
        if not rec.agrees:
            log(f"{spec.key}: AUDIT DISAGREEMENT on {rec.candidate_id}: the full suite says otherwise "
                f"({rec.differences}); its verdict is kept")

    if todo:
        try:
            client = ensure_engine(quiet=True)
            if sandbox is None:
                sandbox = SandboxConfig(timeout_s=adaptive_timeout(store, spec.key))
                log(f"{spec.key}: test-run limit {sandbox.timeout_s:.0f}s (10x the median baseline run)")
            cfg = ValidateConfig(strategy=strategy, workers=workers, rules=VerdictRules(max_f2p=max_f2p),
                                 limits=limits_of(sandbox), build_task_images=build_task_images,
                                 confirm_fraction=confirm_fraction, seed=seed)
            at_head = [c for c in todo if c.origin != "pr"]
            prs = [c for c in todo if c.origin == "pr"]
            if at_head:
                env = load_env(store, spec.key)
                if env is None:
                    return missing_input("validate", spec.key, "environment image", "env",
                                         f"factory env build {spec.source}")
                if not _image_exists(client, env.tag):  # removed since: the same tag is built again
                    env = ensure_env_image(spec, store, log=log)
                if not rd.baseline.exists():
                    return missing_input("validate", spec.key, "baseline", "baseline",
                                         f"factory env baseline {spec.source}")
                baseline = read_records(rd.baseline, BaselineEntry)
                cov, source_of = _coverage_inputs(spec, store, log) if strategy == "selected" else (None, None)
                validate_candidates(client, env, baseline, at_head, cfg, on_result=_on_result,
                                    package_hint=_package(spec), coverage=cov, source_of=source_of,
                                    on_audit=_on_audit)
            if prs:
                _validate_prs(client, spec, store, prs, cfg, _on_result, log)
        except (FactoryError, ValueError) as e:
            rd.record_failure("validate", str(e))
            return StageOutcome("validate", spec.key, ok=False, reason=str(e), seconds=time.monotonic() - t0)
    verdicts = _load_verdicts(store, spec.key, current)
    vals = [verdicts[c.candidate_id].validation for c in candidates if c.candidate_id in verdicts]
    write_records(rd.validations, vals, Validation)
    collect_instances(store)
    counts: dict[str, int] = {}
    for v in vals:
        counts[v.reason] = counts.get(v.reason, 0) + 1
    lists = {k: sum(v.lists == k for v in vals) for k in ("selected", "full")}
    audited, disagree = _audit_disagreements(store, spec.key, current)
    detail = {"candidates": len(candidates), "judged": len(vals), "reasons": counts,
              "accepted": counts.get("accepted", 0), "stale_set_aside": aside, "lists": lists,
              "audited": audited, "audit_disagreements": [r["candidate_id"] for r in disagree]}
    if disagree:
        ids = ", ".join(r["candidate_id"] for r in disagree[:10])
        msg = (f"audit: {len(disagree)} of {audited} audited candidates got other lists from the full suite "
               f"({ids}; see {_audit_dir(store, spec.key)}/)")
        log(f"{spec.key}: {msg}")
        if not allow_disagreement:
            rd.record_failure("validate", msg + "; --allow-disagreement accepts them (the full suite's verdicts are kept)")
            return StageOutcome("validate", spec.key, ok=False, reason=msg + " (--allow-disagreement to go on)",
                                seconds=time.monotonic() - t0, detail=detail)
    rd.clear_failure("validate")
    return StageOutcome("validate", spec.key, ok=True, seconds=time.monotonic() - t0, detail=detail)


def _validate_prs(client, spec: RepoSpec, store: RunStore, prs: list[Candidate], cfg, on_result, log: Log) -> None:
    """Pull requests by install group: one environment image per group, at its setup commit.

    Each PR's base is reached from the group's snapshot by a diff (the group guarantees the
    dependency files are the same), so no PR needs an image of its own.
    """
    import miners  # noqa: PLC0415
    from factory.errors import InstallFailed, RepoError  # noqa: PLC0415
    from factory.repo import git  # noqa: PLC0415
    from verifiers.images import build_env_image  # noqa: PLC0415
    from verifiers.validate import validate_candidates  # noqa: PLC0415

    co = checkout(spec)
    for key, group in miners.group_candidates(prs).items():
        gspec = RepoSpec.parse({**{k: v for k, v in spec.__dict__.items()}, "commit": group.setup_commit})
        try:
            gco = checkout(gspec)
            env = build_env_image(client, gco, log=log)
        except (InstallFailed, RepoError) as e:
            # One install group's environment does not build (an old Python, a dependency gone from
            # PyPI): its PRs get an `error` verdict (tried again by the next run); the other groups go on.
            log(f"{spec.key}: install group {key}: no environment ({str(e)[:200]}); {len(group.candidates)} PR(s) left")
            for c in group.candidates:
                on_result(Validation(c.candidate_id, c.repo, "error", "env_build_failed", strategy="pr",
                                     detail=str(e)[-1000:]), None)
            continue
        write_json(store.repo(spec.key).root / "envs" / f"{key}.json", env.to_json())
        starts = {c.candidate_id: git(co.path, "diff", "--binary", "--full-index", gco.commit, c.base_commit)
                  for c in group.candidates}
        log(f"{spec.key}: install group {key}: {len(group.candidates)} PR(s) on {env.tag}")
        validate_candidates(client, env, [], group.candidates, cfg, on_result=on_result,
                            package_hint=_package(spec), start_patches=starts)


def collect_instances(store: RunStore) -> list[TaskInstance]:
    """RUN/instances.parquet from every repository's accepted verdicts of current candidates
    (sorted, no duplicates): a verdict whose candidate is no longer mined is not a task."""
    instances: dict[str, TaskInstance] = {}
    for key in store.repo_keys():
        for v in _load_verdicts(store, key, current_candidate_ids(store, key)).values():
            if v.accepted:
                instances[v.instance.instance_id] = v.instance
    out = [instances[k] for k in sorted(instances)]
    write_records(store.instances, out, TaskInstance)
    return out


def _image_exists(client, tag: str) -> bool:
    import docker  # noqa: PLC0415

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def _package(spec: RepoSpec) -> str:
    if spec.kind == "pypi":
        return spec.pypi[0]
    return spec.name or Path(spec.source.rstrip("/")).name.removesuffix(".git")
