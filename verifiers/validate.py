"""Judge candidates in long-lived worker containers and turn the accepted ones into tasks.

Strategies (``ValidateConfig.strategy``):

- ``selected``: first run only the stable-passing tests that cover the changed lines (from the
  baseline's coverage map). Nothing fails there: rejected (``no_f2p``) after one small run.
  Something fails: one full-suite run makes FAIL_TO_PASS and PASS_TO_PASS exact.
- ``full``: the full suite for every candidate (SWE-smith's way; the reference).

Either way every FAIL_TO_PASS test must fail in two runs: with ``selected``, the covering run
counts as one of them; the others get a second run of just those tests. A test that does not
fail again is dropped as flaky, and no confirmed test means ``f2p_not_confirmed``. Faults of the
infrastructure restart the worker and retry; if they persist the verdict is ``error`` with
reason ``infra_error`` (a re-run tries again), never a rejection of the candidate.

Not for: persistence (the caller's ``on_result`` writes each verdict as it lands).
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from factory import defaults
from factory.schema import BaselineEntry, Candidate, EnvImage, FileContent, TaskInstance, TestRun, Validation
from verifiers.problem import Evidence, ProblemWriter, TemplateWriter, candidate_texts, write_statement
from verifiers.runner import Box, Selection, runner_for
from verifiers.sandbox import SandboxLimits, run_problem
from verifiers.taskimage import build_task_image, patch_paths
from verifiers.verdict import Judgement, VerdictRules, judge
from verifiers.worker import Worker, WorkerFault, sweep

__all__ = ["ValidateConfig", "validate_candidates", "judge_candidate"]

OnResult = Callable[[Validation, "TaskInstance | None"], None]


@dataclass(frozen=True)
class ValidateConfig:
    strategy: str = defaults.STRATEGY
    workers: int = 2
    rules: VerdictRules = field(default_factory=VerdictRules)
    limits: SandboxLimits = field(default_factory=lambda: SandboxLimits(timeout_s=defaults.VALIDATE_TIMEOUT_S))
    retries: int = 2
    build_task_images: bool = True
    retry_backoff_s: float = 2.0  # after a failed restart: this, twice this, ... (at most 5 s)

    def __post_init__(self) -> None:
        if self.strategy not in ("selected", "full"):
            raise ValueError(f"strategy must be 'selected' or 'full', not {self.strategy!r} (--strategy)")
        if self.workers < 1:
            raise ValueError("workers must be at least 1 (--workers)")


@dataclass
class _Ctx:
    env: EnvImage
    baseline: list[BaselineEntry]
    stable: set[str]
    cfg: ValidateConfig
    writer: ProblemWriter
    package_hint: str
    start_patches: dict[str, str] = field(default_factory=dict)  # PRs: env snapshot -> the PR's base


def validate_candidates(client, env: EnvImage, baseline: list[BaselineEntry], candidates: Sequence[Candidate],
                        cfg: ValidateConfig = ValidateConfig(), on_result: OnResult | None = None,
                        writer: ProblemWriter | None = None, package_hint: str = "",
                        start_patches: dict[str, str] | None = None) -> list[Validation]:
    """Judge every candidate with ``cfg.workers`` containers in parallel; verdicts in input order.

    Mutations and mirrored PRs are judged against ``baseline`` (the environment's own commit).
    Pull requests (origin ``pr``) are judged by their own three runs; ``start_patches`` maps each
    to the diff from the environment's snapshot to the PR's base commit (empty when they match).
    """
    ctx = _Ctx(env, list(baseline), {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky},
               cfg, writer or TemplateWriter(), package_hint or env.spec.repo, dict(start_patches or {}))
    todo: queue.Queue[tuple[int, Candidate]] = queue.Queue()
    for i, c in enumerate(candidates):
        todo.put((i, c))
    results: dict[int, Validation] = {}
    lock = threading.Lock()

    session = uuid.uuid4().hex[:12]

    runner = runner_for(env.spec.test_cmd)

    def _work() -> None:
        worker = Worker(client, env.tag, cfg.limits, session=session, runner=runner)
        try:
            while True:
                try:
                    i, cand = todo.get_nowait()
                except queue.Empty:
                    return
                val, inst = _judge_with_retries(worker, cand, ctx)
                with lock:
                    results[i] = val
                if on_result is not None:
                    on_result(val, inst)
        finally:
            worker.close()

    threads = [threading.Thread(target=_work, daemon=True) for _ in range(min(cfg.workers, max(1, len(candidates))))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sweep(client, session)
    return [results[i] for i in range(len(candidates))]


def _judge_with_retries(worker: Box, cand: Candidate, ctx: _Ctx) -> tuple[Validation, TaskInstance | None]:
    last = ""
    for attempt in range(ctx.cfg.retries + 1):
        try:
            if worker.container is None:
                worker.start()
            if cand.origin == "pr":
                return judge_pr(worker, cand, ctx, ctx.start_patches.get(cand.candidate_id, ""))
            return judge_candidate(worker, cand, ctx)
        except WorkerFault as e:
            last = str(e)
            try:
                worker.restart()
            except WorkerFault as e2:
                last = f"{last}; restart failed: {e2}"
                time.sleep(min(ctx.cfg.retry_backoff_s * (attempt + 1), 5.0))
    return Validation(cand.candidate_id, cand.repo, "error", "infra_error", strategy=ctx.cfg.strategy,
                      detail=last[:1000]), None


def judge_candidate(worker: Box, cand: Candidate, ctx: _Ctx) -> tuple[Validation, TaskInstance | None]:
    """The whole judgement of one candidate in one box (raises WorkerFault on infra faults)."""
    t0 = time.monotonic()
    cfg = ctx.cfg
    applied, msg = worker.apply(cand.patch, reset=True)
    apply_s = time.monotonic() - t0
    runs: list[TestRun] = []

    def _verdict(j: Judgement, detail: str = "") -> Validation:
        return Validation(cand.candidate_id, cand.repo, j.verdict, j.reason, j.fail_to_pass, j.pass_to_pass,
                          strategy=cfg.strategy, num_runs=len(runs), apply_s=apply_s,
                          test_s=sum(r.wall_s for r in runs), total_s=time.monotonic() - t0, detail=detail)

    if not applied:
        return _verdict(Judgement("rejected", "patch_does_not_apply"), msg[-500:]), None

    def _run(select: list[str] | None) -> TestRun:
        run = worker.run(Selection.of(select))
        runs.append(run)
        return run

    selected = sorted(set(cand.covering_tests) & ctx.stable)
    seen_failing: set[str] = set()  # F2P tests that already failed in an earlier run
    if cfg.strategy == "selected" and selected:
        first = judge(ctx.baseline, _run(selected), scope=set(selected), rules=cfg.rules)
        if first.verdict != "accepted":
            return _verdict(first, "selected tests"), None
        seen_failing = set(first.fail_to_pass)
    j = judge(ctx.baseline, _run(None), rules=cfg.rules)
    if j.verdict != "accepted":
        return _verdict(j, "full suite"), None
    # Confirmation: each F2P test must fail in two runs. Those that failed in the selected run
    # already have; the rest get a run of their own.
    confirmed = set(j.fail_to_pass) & seen_failing
    pending = sorted(set(j.fail_to_pass) - confirmed)
    if pending:
        again = judge(ctx.baseline, _run(pending), scope=set(pending),
                      rules=VerdictRules(max_f2p=10**9, max_f2p_fraction=1.0))
        confirmed |= set(pending) & set(again.fail_to_pass)
    confirmed = tuple(sorted(confirmed))
    if not confirmed:
        return _verdict(Judgement("rejected", "f2p_not_confirmed", (), j.pass_to_pass)), None
    final = Judgement("accepted", "accepted", confirmed, j.pass_to_pass)
    val = _verdict(final)
    gold = worker.diff(reverse=True)
    inst = _instance(worker, cand, ctx, final, gold, runs, val)
    return val, inst


def judge_pr(worker: Box, cand: Candidate, ctx: _Ctx, start_patch: str) -> tuple[Validation, TaskInstance | None]:
    """A pull request's three runs, as Multi-SWE-bench does: base, base + tests, base + tests + fix.

    FAIL_TO_PASS: fails (or is missing) with the new tests alone and passes with the fix.
    PASS_TO_PASS: passes at base and with the fix. A test that passed at base and fails with the
    fix means the PR breaks something: rejected (``breaks_passing_tests``).
    """
    t0 = time.monotonic()
    cfg = ctx.cfg
    runs: list[TestRun] = []

    def _verdict(verdict: str, reason: str, f2p=(), p2p=(), detail: str = "") -> Validation:
        return Validation(cand.candidate_id, cand.repo, verdict, reason, tuple(f2p), tuple(p2p), strategy="pr",
                          num_runs=len(runs), test_s=sum(r.wall_s for r in runs), total_s=time.monotonic() - t0,
                          detail=detail)

    def _full() -> dict[str, str] | str:
        run = worker.run(Selection())
        runs.append(run)
        problem = run_problem(run)
        return problem if problem is not None else dict(run.outcomes())

    worker.reset()
    if start_patch.strip():
        ok, msg = worker.apply(start_patch)
        if not ok:
            return _verdict("rejected", "base_unreachable", detail=msg[-500:]), None
    base = _full()
    if isinstance(base, str):
        return _verdict("rejected", f"base_{base}"), None
    ok, msg = worker.apply(cand.test_patch)
    if not ok:
        return _verdict("rejected", "test_patch_does_not_apply", detail=msg[-500:]), None
    with_tests = _full()
    ok, msg = worker.apply(cand.patch)
    if not ok:
        return _verdict("rejected", "patch_does_not_apply", detail=msg[-500:]), None
    fixed = _full()
    if isinstance(fixed, str):
        return _verdict("rejected", fixed), None
    broken_tests = {} if isinstance(with_tests, str) else with_tests  # collection broke: every new test failed
    f2p = sorted(n for n, o in fixed.items() if o == "passed" and broken_tests.get(n, "failed") in ("failed", "error"))
    p2p = sorted(n for n, o in fixed.items() if o == "passed" and base.get(n) == "passed" and n not in f2p)
    # A test the PR's test patch removed is not broken; one still collected that stopped passing is.
    broke = sorted(n for n, o in base.items() if o == "passed" and n in fixed and fixed[n] != "passed")
    if broke:
        return _verdict("rejected", "breaks_passing_tests", f2p, p2p, detail=", ".join(broke[:5])), None
    if not f2p:
        return _verdict("rejected", "no_f2p", (), p2p), None
    if len(f2p) > cfg.rules.max_f2p:
        return _verdict("rejected", "too_many_f2p", f2p, p2p), None
    val = _verdict("accepted", "accepted", f2p, p2p)
    final = Judgement("accepted", "accepted", tuple(f2p), tuple(p2p))
    # The task starts at the PR's base without its tests: the start patch alone, then a fresh repo.
    inst = _instance(worker, cand, ctx, final, cand.patch, runs, val, start_patch=start_patch)
    return val, inst


def _instance(worker: Box, cand: Candidate, ctx: _Ctx, j: Judgement, gold: str, runs: list[TestRun],
              val: Validation, start_patch: str | None = None) -> TaskInstance:
    instance_id = f"{cand.repo}__{cand.candidate_id}"
    paths = patch_paths(gold)
    failing_msgs = {}
    for run in runs:
        for r in run.results:
            if r.nodeid in j.fail_to_pass and r.message and r.nodeid not in failing_msgs:
                failing_msgs[r.nodeid] = r.message
    bug = cand.patch if start_patch is None else start_patch
    if ctx.cfg.build_task_images:
        ti = build_task_image(worker.client, ctx.env.tag, instance_id, bug, paths)
        image_name, base_commit, start = ti.image_name, ti.base_commit, ti.start_files
    else:
        image_name, base_commit = "", ""
        # Mutations: the worker's tree is the start state. PRs: it is past it (tests and fix applied).
        start = {} if start_patch is not None else {
            p: c for p, c in worker.read_files(paths).items() if c is not None}
    provenance = json.loads(cand.provenance or "{}")
    issue_text, commit_message = candidate_texts(cand.problem_statement, provenance)
    problem, provenance["problem_statement"] = write_statement(ctx.writer, Evidence(
        instance_id=instance_id, repo=cand.repo,
        failing=tuple((n, failing_msgs.get(n, "")) for n in j.fail_to_pass),
        num_passing=len(j.pass_to_pass), hints=(ctx.package_hint,), source=cand.origin,
        issue_text=issue_text), gold, commit_message)
    provenance.update({"candidate_id": cand.candidate_id, "origin": cand.origin, "file": cand.file,
                       "symbol": cand.symbol, "start_line": cand.start_line, "end_line": cand.end_line,
                       "seed": cand.seed, "parents": list(cand.parents), "pr_number": cand.pr_number,
                       "env_image": ctx.env.tag, "upstream_commit": cand.base_commit})
    return TaskInstance(
        instance_id=instance_id, repo=cand.repo, base_commit=base_commit, patch=gold,
        test_patch=cand.test_patch, problem_statement=problem, hints_text=cand.hints_text,
        created_at=cand.created_at or _now(), version=ctx.env.spec.commit[:12],
        FAIL_TO_PASS=j.fail_to_pass, PASS_TO_PASS=j.pass_to_pass,
        environment_setup_commit=ctx.env.spec.commit, image_name=image_name,
        source=cand.origin, start_files=tuple(FileContent(p, c) for p, c in sorted(start.items())),
        upstream_commit=cand.base_commit, operator=cand.operator, provenance=json.dumps(provenance, sort_keys=True),
        num_f2p=len(j.fail_to_pass), num_p2p=len(j.pass_to_pass), validation_s=val.total_s,
    )


def _now() -> str:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
