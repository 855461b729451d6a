"""Judge candidates in long-lived worker containers and turn the accepted ones into tasks.

Strategies (``ValidateConfig.strategy``):

- ``selected``: a candidate whose changed lines all lie in function bodies the baseline's
  coverage map attributes to tests (``verifiers.attribution``) runs only those tests, twice.
  FAIL_TO_PASS: stable-passing in the baseline, failing or erroring in both runs; PASS_TO_PASS:
  the covering tests that pass in both runs plus every other stable-passing baseline test (a
  test that never executes a changed line cannot observe the change). Anything the map cannot
  attribute (module level, class bodies, decorators, defaults, code run at import or collection,
  files without coverage data, candidates that change tests) gets the full suite, as ``full``.
- ``full``: the full suite for every candidate (SWE-smith's way; the reference), then a run of
  the failing tests alone: a FAIL_TO_PASS test must fail in both.

Each verdict records how its lists were obtained (``Validation.lists``: ``selected`` or
``full``). The audit (``ValidateConfig.confirm_fraction``) judges a seeded sample of the
candidates the selected rule accepted again with the full suite and reports every disagreement;
the full suite's verdict is the one kept then. A test that does not fail again is dropped as
flaky, and no confirmed test means ``f2p_not_confirmed``. Faults of the infrastructure restart the
worker and retry; if they persist the verdict is ``error`` with reason ``infra_error`` (a re-run
tries again), never a rejection of the candidate.

Not for: persistence (the caller's ``on_result`` and ``on_audit`` write what lands).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from factory import defaults
from factory.schema import BaselineEntry, Candidate, EnvImage, FileContent, TaskInstance, TestRun, Validation
from verifiers.attribution import Attribution, CoverageMap, attribute
from verifiers.problem import Evidence, ProblemWriter, TemplateWriter, candidate_texts, write_statement
from verifiers.runner import Box, Selection, runner_for
from verifiers.sandbox import SandboxLimits, run_problem
from verifiers.taskimage import build_task_image, patch_paths
from verifiers.verdict import Judgement, VerdictRules, judge
from verifiers.worker import LiveWorkers, Worker, WorkerFault, sweep

__all__ = ["AuditRecord", "ValidateConfig", "default_workers", "validate_candidates", "judge_candidate"]

OnResult = Callable[[Validation, "TaskInstance | None"], None]


def default_workers() -> int:
    """Fill the machine: one worker container per CPU core this process may use."""
    return defaults.cpu_cores()


@dataclass(frozen=True)
class AuditRecord:
    """The full suite's second opinion on a candidate the selected rule accepted."""

    candidate_id: str
    agrees: bool
    differences: str  # empty when they agree
    selected: Validation
    full: Validation


@dataclass(frozen=True)
class ValidateConfig:
    strategy: str = defaults.STRATEGY
    workers: int = 2
    rules: VerdictRules = field(default_factory=VerdictRules)
    limits: SandboxLimits = field(default_factory=lambda: SandboxLimits(timeout_s=defaults.VALIDATE_TIMEOUT_S))
    retries: int = 2
    build_task_images: bool = True
    retry_backoff_s: float = 2.0  # after a failed restart: this, twice this, ... (at most 5 s)
    # A run of chosen tests (the covering tests, a confirmation run) has its own limit: this many
    # seconds for starting and collecting, plus ``selected_factor`` times the baseline durations of
    # the tests it runs; never more than ``limits.timeout_s`` (the full suite's). A hanging mutant
    # then costs about a minute under the selected rule, not ten full-suite runs.
    selected_floor_s: float = 60.0
    selected_factor: float = 10.0
    # The audit: this share of the candidates the selected rule accepts (a seeded sample) is
    # judged again with the full suite.
    confirm_fraction: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        if self.strategy not in ("selected", "full"):
            raise ValueError(f"strategy must be 'selected' or 'full', not {self.strategy!r} (--strategy)")
        if self.workers < 1:
            raise ValueError("workers must be at least 1 (--workers)")
        if not 0.0 <= self.confirm_fraction <= 1.0:
            raise ValueError(f"confirm_fraction must be within [0, 1], not {self.confirm_fraction} (--confirm-fraction)")


@dataclass
class _Ctx:
    env: EnvImage
    baseline: list[BaselineEntry]
    stable: set[str]
    cfg: ValidateConfig
    writer: ProblemWriter
    package_hint: str
    start_patches: dict[str, str] = field(default_factory=dict)  # PRs: env snapshot -> the PR's base
    coverage: CoverageMap | None = None  # the baseline's map; None: nothing is attributable
    source_of: Callable[[str], str | None] | None = None  # clean source of a repository path
    is_protected: Callable[[str], bool] = lambda _p: False  # test files and runner configuration
    _sources: dict[str, str | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _order: dict[str, int] | None = None
    _durations: dict[str, float] | None = None
    _by_file: dict[str, set[str]] | None = None

    def attribution(self, cand: Candidate) -> Attribution:
        """Which tests can observe ``cand`` (``verifiers.attribution``), or why it needs the full suite."""
        if cand.test_patch.strip():
            return Attribution(None, "the candidate adds or changes tests")
        if not self.coverage or self.source_of is None:
            return Attribution(None, "no coverage map")
        return attribute(cand.patch, self.coverage, self._source, self.is_protected)

    def _source(self, path: str) -> str | None:
        with self._lock:
            if path not in self._sources:
                self._sources[path] = self.source_of(path)
            return self._sources[path]

    def in_suite_order(self, tests) -> list[str]:
        """``tests`` in the order the baseline collected them: pytest runs node ids in the order
        given, and a suite whose tests depend on their order must see them in its own."""
        if self._order is None:
            self._order = {e.nodeid: i for i, e in enumerate(self.baseline)}
        return sorted(tests, key=lambda t: (self._order.get(t, len(self._order)), t))

    def observers(self, covering) -> set[str]:
        """The stable tests that can observe a change the ``covering`` tests executed: every stable
        test of their files. A class- or module-scoped fixture (``setup_class``, a fixture with
        ``scope="module"``) runs package code once, inside the first test that needs it, and the map
        credits that test alone; its siblings use what it built (networkx's
        ``TestInternetASTopology``: one test builds the graph, four read it). Running whole files
        costs their tests' time only: pytest collects the whole file either way. The files come from
        every covering test, stable or not: when the test that built the fixture is flaky or failed in
        the baseline, its stable siblings still read what the change built."""
        if self._by_file is None:
            self._by_file = {}
            for t in self.stable:
                self._by_file.setdefault(t.split("::", 1)[0], set()).add(t)
        out: set[str] = set()
        for f in {t.split("::", 1)[0] for t in covering}:
            out |= self._by_file.get(f, set())
        return out

    def limit_for(self, tests: Sequence[str] | None) -> float | None:
        """The wall-clock limit of a session running ``tests`` (None: the whole suite, the worker's
        own limit)."""
        if tests is None:
            return None
        if self._durations is None:
            self._durations = {e.nodeid: e.duration_s for e in self.baseline}
        cfg = self.cfg
        expected = sum(self._durations.get(t, 0.0) for t in tests)
        return min(cfg.limits.timeout_s, cfg.selected_floor_s + cfg.selected_factor * expected)

    def audited(self, cand: Candidate) -> bool:
        """Whether ``cand`` is in the audit's seeded sample (same seed, same sample)."""
        frac = self.cfg.confirm_fraction
        if frac <= 0:
            return False
        h = hashlib.sha256(f"{self.cfg.seed}:{cand.candidate_id}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < frac


def validate_candidates(client, env: EnvImage, baseline: list[BaselineEntry], candidates: Sequence[Candidate],
                        cfg: ValidateConfig = ValidateConfig(), on_result: OnResult | None = None,
                        writer: ProblemWriter | None = None, package_hint: str = "",
                        start_patches: dict[str, str] | None = None, coverage: CoverageMap | None = None,
                        source_of: Callable[[str], str | None] | None = None,
                        on_audit: Callable[[AuditRecord], None] | None = None) -> list[Validation]:
    """Judge every candidate with ``cfg.workers`` containers in parallel; verdicts in input order.

    Mutations and mirrored PRs are judged against ``baseline`` (the environment's own commit).
    Pull requests (origin ``pr``) are judged by their own three runs; ``start_patches`` maps each
    to the diff from the environment's snapshot to the PR's base commit (empty when they match).
    ``coverage`` (the baseline's map) and ``source_of`` (a path's clean source) let the selected
    strategy attribute changes to tests; without them every candidate gets the full suite.
    ``on_audit`` hears every audit (the full suite's second opinion on a selected acceptance).
    """
    runner = runner_for(env.spec.test_cmd)
    ctx = _Ctx(env, list(baseline), {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky},
               cfg, writer or TemplateWriter(), package_hint or env.spec.repo, dict(start_patches or {}),
               coverage=coverage, source_of=source_of, is_protected=runner.protected)
    todo: queue.Queue[tuple[int, Candidate]] = queue.Queue()
    for i, c in enumerate(candidates):
        todo.put((i, c))
    results: dict[int, Validation] = {}
    lock = threading.Lock()
    live = LiveWorkers()

    session = uuid.uuid4().hex[:12]

    def _work() -> None:
        worker = Worker(client, env.tag, cfg.limits, session=session, runner=runner)
        live.join(worker)
        try:
            while not worker.stopped:
                try:
                    i, cand = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    val, inst = _judge_with_retries(worker, cand, ctx)
                    if val.lists == "selected" and val.verdict == "accepted" and ctx.audited(cand):
                        val, inst = _audit(worker, cand, ctx, val, inst, on_audit)
                except Exception as e:  # noqa: BLE001 (a fault no layer below named: this candidate's error, not the run's)
                    val, inst = Validation(cand.candidate_id, cand.repo, "error", "infra_error", strategy=ctx.cfg.strategy,
                                           detail=f"{e.__class__.__name__}: {e}"[:1000]), None
                    if not worker.stopped:
                        with contextlib.suppress(Exception):
                            worker.restart()
                if worker.stopped:  # a judgement the shut cut short is not a verdict: not recorded
                    return
                with lock:
                    results[i] = val
                if on_result is not None:
                    on_result(val, inst)
        finally:
            worker.close()
            live.leave(worker)

    threads = [threading.Thread(target=_work, daemon=True) for _ in range(min(cfg.workers, max(1, len(candidates))))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        # Interrupted (Ctrl-C, SIGTERM as one) or done: shut every worker, so that a thread whose
        # test run this cuts short stops instead of starting a new container, let the threads
        # leave, and remove whatever any of them started meanwhile (a sweep of the session label).
        live.shut_all()
        sweep(client, session)
        deadline = time.monotonic() + 15
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        sweep(client, session)
    return [results[i] for i in range(len(candidates))]


def _audit(worker: Box, cand: Candidate, ctx: _Ctx, val: Validation, inst: TaskInstance | None,
           on_audit: Callable[[AuditRecord], None] | None) -> tuple[Validation, TaskInstance | None]:
    """The full suite's second opinion; where it disagrees, its verdict is the one kept."""
    full_val, full_inst = _judge_with_retries(worker, cand, ctx, force_full=True)
    diffs = []
    if (full_val.verdict, full_val.reason) != (val.verdict, val.reason):
        diffs.append(f"verdict {val.verdict}/{val.reason} vs full {full_val.verdict}/{full_val.reason}")
    for name in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        a, b = set(getattr(val, name)), set(getattr(full_val, name))
        if a != b and full_val.verdict == "accepted":
            diffs.append(f"{name}: only selected {sorted(a - b)[:5]}, only full {sorted(b - a)[:5]}")
    record = AuditRecord(cand.candidate_id, not diffs, "; ".join(diffs), val, full_val)
    if on_audit is not None:
        on_audit(record)
    if not diffs:
        return replace(val, detail=(val.detail + "; " if val.detail else "") + "audited: the full suite agrees"), inst
    if full_val.verdict == "error":
        return val, inst  # no second opinion (infrastructure): the record says so
    return replace(full_val, detail=f"audit: the selected lists disagreed ({record.differences})"[:1000]), full_inst


def _judge_with_retries(worker: Box, cand: Candidate, ctx: _Ctx,
                        force_full: bool = False) -> tuple[Validation, TaskInstance | None]:
    last = ""
    for attempt in range(ctx.cfg.retries + 1):
        try:
            if worker.container is None:
                worker.start()
            if cand.origin == "pr":
                return judge_pr(worker, cand, ctx, ctx.start_patches.get(cand.candidate_id, ""))
            return judge_candidate(worker, cand, ctx, force_full=force_full)
        except WorkerFault as e:
            last = str(e)
            if getattr(worker, "stopped", False):  # shut: the run is stopping, no retry
                break
            try:
                worker.restart()
            except WorkerFault as e2:
                last = f"{last}; restart failed: {e2}"
                time.sleep(min(ctx.cfg.retry_backoff_s * (attempt + 1), 5.0))
    return Validation(cand.candidate_id, cand.repo, "error", "infra_error", strategy=ctx.cfg.strategy,
                      detail=last[:1000], lists="full" if force_full else ""), None


def judge_candidate(worker: Box, cand: Candidate, ctx: _Ctx,
                    force_full: bool = False) -> tuple[Validation, TaskInstance | None]:
    """The whole judgement of one candidate in one box (raises WorkerFault on infra faults).

    ``force_full``: the full suite whatever the strategy (the audit's second opinion)."""
    t0 = time.monotonic()
    cfg = ctx.cfg
    att = None
    if cfg.strategy == "selected" and not force_full:
        att = ctx.attribution(cand)
    lists = "selected" if att is not None and att.attributable else "full"
    applied, msg = worker.apply(cand.patch, reset=True)
    apply_s = time.monotonic() - t0
    runs: list[TestRun] = []

    def _verdict(j: Judgement, detail: str = "") -> Validation:
        if att is not None and not att.attributable and lists == "full" and j.reason != "patch_does_not_apply":
            detail = f"full suite ({att.reason})"
        return Validation(cand.candidate_id, cand.repo, j.verdict, j.reason, j.fail_to_pass, j.pass_to_pass,
                          strategy=cfg.strategy, num_runs=len(runs), apply_s=apply_s,
                          test_s=sum(r.wall_s for r in runs), total_s=time.monotonic() - t0,
                          detail=detail[:1000], lists=lists)

    if not applied:
        return _verdict(Judgement("rejected", "patch_does_not_apply"), msg[-500:]), None

    def _run(select: list[str] | None) -> TestRun:
        run = worker.run(Selection.of(select), timeout_s=ctx.limit_for(select))
        runs.append(run)
        return run

    if lists == "selected":
        final = _judge_selected(ctx.in_suite_order(ctx.observers(att.tests)), ctx, _run)
        if final.verdict != "accepted":
            return _verdict(final, "selected tests"), None
    else:
        j = judge(ctx.baseline, _run(None), rules=cfg.rules)
        if j.verdict != "accepted":
            return _verdict(j, "full suite"), None
        # Confirmation: each F2P test must fail again in a run of its own.
        again = judge(ctx.baseline, _run(ctx.in_suite_order(j.fail_to_pass)), scope=set(j.fail_to_pass),
                      rules=VerdictRules(max_f2p=10**9, max_f2p_fraction=1.0))
        confirmed = tuple(sorted(set(j.fail_to_pass) & set(again.fail_to_pass)))
        if not confirmed:
            return _verdict(Judgement("rejected", "f2p_not_confirmed", (), j.pass_to_pass)), None
        final = Judgement("accepted", "accepted", confirmed, j.pass_to_pass)
    val = _verdict(final)
    gold = worker.diff(reverse=True)
    inst = _instance(worker, cand, ctx, final, gold, runs, val)
    return val, inst


def _judge_selected(tests: list[str], ctx: _Ctx, run: Callable[[list[str]], TestRun]) -> Judgement:
    """The covering tests, twice; every other stable-passing test is PASS_TO_PASS from the baseline.

    The limits of the full rule apply to the whole suite: more than ``max_f2p`` failing tests, or
    more than ``max_f2p_fraction`` of the stable ones, is ``too_many_f2p``; all of them failing is
    ``collection_breaks``."""
    rules = ctx.cfg.rules
    untouched = ctx.stable - set(tests)
    if not tests:  # only flaky or failing tests execute the change: no stable test can fail
        return Judgement("rejected", "no_f2p", (), tuple(sorted(ctx.stable)))
    first = judge(ctx.baseline, run(tests), scope=set(tests), rules=rules)
    if first.verdict != "accepted":
        return Judgement(first.verdict, first.reason, (), tuple(sorted(untouched | set(first.pass_to_pass))))
    f2p = set(first.fail_to_pass)
    if len(f2p) == len(ctx.stable) and len(f2p) > 1:
        return Judgement("rejected", "collection_breaks", tuple(sorted(f2p)), ())
    if len(f2p) > rules.max_f2p or len(f2p) > rules.max_f2p_fraction * len(ctx.stable):
        return Judgement("rejected", "too_many_f2p", tuple(sorted(f2p)), tuple(sorted(untouched)))
    second = judge(ctx.baseline, run(tests), scope=set(tests),
                   rules=VerdictRules(max_f2p=10**9, max_f2p_fraction=1.0, min_f2p=0))
    confirmed = f2p & set(second.fail_to_pass)
    passing = set(first.pass_to_pass) & set(second.pass_to_pass)
    p2p = tuple(sorted(untouched | passing))
    if not confirmed:
        return Judgement("rejected", "f2p_not_confirmed", (), p2p)
    return Judgement("accepted", "accepted", tuple(sorted(confirmed)), p2p)


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
                          detail=detail, lists="full")

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
                       "env_image": ctx.env.tag, "upstream_commit": cand.base_commit, "lists": val.lists})
    return TaskInstance(
        instance_id=instance_id, repo=cand.repo, base_commit=base_commit, patch=gold,
        test_patch=cand.test_patch, problem_statement=problem, hints_text=cand.hints_text,
        created_at=cand.created_at or _now(), version=ctx.env.spec.commit[:12],
        FAIL_TO_PASS=j.fail_to_pass, PASS_TO_PASS=j.pass_to_pass,
        environment_setup_commit=ctx.env.spec.commit, image_name=image_name,
        source=cand.origin, start_files=tuple(FileContent(p, c) for p, c in sorted(start.items())),
        upstream_commit=cand.base_commit, operator=cand.operator, provenance=json.dumps(provenance, sort_keys=True),
        num_f2p=len(j.fail_to_pass), num_p2p=len(j.pass_to_pass), validation_s=val.total_s,
        language=ctx.env.spec.language,
    )


def _now() -> str:
    import datetime as dt  # noqa: PLC0415

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
