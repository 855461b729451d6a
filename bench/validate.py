"""Validation benchmark: the selected strategy against the full-suite one on the same candidates.

On one run directory that holds a baseline (with its coverage map) and candidates for a
repository (``factory mutate``), judges the same seeded sample of candidates with ``--strategy
full`` and ``--strategy selected`` in one process (the audit off: this *is* the audit, on every
candidate), and prints candidates per minute for each, their ratio, how the selected rule
obtained its lists (``selected``: only the covering tests ran; ``full``: the map could not
attribute the change), and how far the two agree: verdicts, FAIL_TO_PASS and PASS_TO_PASS per
candidate and per test id. Every disagreement is printed as one JSON line, to be explained.

``--predict`` judges nothing: from the baseline's test durations, its collect-only time and the
map, it predicts the speed-up on the sample (a screen for which libraries are worth hours of
judging; it leaves out each candidate's apply and reset and the full side's confirmation runs, so
where runs are short it can miss by up to 2× either way: werkzeug 4.28× predicted, 2.23× measured;
the demo 1.40× and 1.77×).

``--host-sample N`` also replays the selected strategy's runs of N candidates with pytest on the
host (``git apply``, a fresh process per run, reset) and compares per-candidate wall time: the
sandbox's overhead. Task images are not built (the same cost for both strategies).

    python bench/validate.py --run runs/demo --sample 40
    python bench/validate.py --run /work/i21/parso --sample 100 --json /tmp/parso.json

On a loaded machine the two strategies can also run side by side, as two processes on the same
sample (the same load for both), each writing its verdicts as they land, then be compared:

    python bench/validate.py --run RUN --sample 12 --strategies full --workers 1 --verdicts /tmp/f.jsonl &
    python bench/validate.py --run RUN --sample 12 --strategies selected --workers 1 --verdicts /tmp/s.jsonl
    python bench/validate.py --run RUN --sample 12 --compare /tmp/f.jsonl /tmp/s.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostenv import make_host_env  # bench/hostenv.py (scripts run from bench/)
from rich.console import Console
from rich.table import Table

from factory import defaults
from factory.pipeline import load_env
from factory.repo import checkout
from factory.schema import BaselineEntry, Candidate, CoverageEntry, RepoSpec, Validation
from factory.store import RunStore, read_json, read_records
from factory.task_stages import adaptive_timeout
from verifiers.attribution import CoverageMap
from verifiers.engine import ensure_engine
from verifiers.runner import runner_for
from verifiers.sandbox import SandboxLimits
from verifiers.validate import ValidateConfig, _Ctx, validate_candidates

HOST_TIMEOUT_S = 300.0  # set from the sandbox's limit in main()


def _host_pytest(py: Path, tree: Path, select: list[str] | None) -> None:
    """One pytest process on the host (the replay only times it)."""
    args = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors", *(select or [])]
    try:
        subprocess.run(args, cwd=tree, capture_output=True, timeout=HOST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass  # the sandbox killed this run at the same limit


def host_replay(py: Path, tree: Path, cand: Candidate, covering: list[str] | None, val: Validation) -> float:
    """The selected strategy's runs for one candidate, replayed with plain pytest on the host:
    the covering tests ``num_runs`` times, or the full suite and then its failing tests."""
    t0 = time.perf_counter()
    patch = tree / ".bench.diff"
    patch.write_text(cand.patch)
    if subprocess.run(["git", "apply", str(patch)], cwd=tree, capture_output=True).returncode == 0:
        runs = [covering] * val.num_runs if val.lists == "selected" else [None, list(val.FAIL_TO_PASS)][: val.num_runs]
        for select in runs:
            _host_pytest(py, tree, select)
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=tree, check=True)
    subprocess.run(["git", "clean", "-qfd"], cwd=tree, check=True)
    return time.perf_counter() - t0


def compare(sample: list[Candidate], full: dict[str, Validation], sel: dict[str, Validation]) -> dict:
    """How far the selected strategy's verdicts and lists agree with the full suite's."""
    ids = [c.candidate_id for c in sample]
    agree = sum((full[i].verdict == "accepted") == (sel[i].verdict == "accepted") for i in ids)
    same_reason = sum((full[i].verdict, full[i].reason) == (sel[i].verdict, sel[i].reason) for i in ids)
    both = [i for i in ids if full[i].verdict == sel[i].verdict == "accepted"]
    out = {"candidates": len(ids), "verdicts_agree": agree, "reasons_agree": same_reason, "accepted_both": len(both),
           "f2p_identical": sum(full[i].FAIL_TO_PASS == sel[i].FAIL_TO_PASS for i in both),
           "p2p_identical": sum(full[i].PASS_TO_PASS == sel[i].PASS_TO_PASS for i in both)}
    for name in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        union = differ = 0
        for i in both:
            a, b = set(getattr(full[i], name)), set(getattr(sel[i], name))
            union += len(a | b)
            differ += len(a ^ b)
        out[f"{name}_ids"], out[f"{name}_ids_differ"] = union, differ
    dis = []
    for i in ids:
        f, s = full[i], sel[i]
        if (f.verdict, f.reason, f.FAIL_TO_PASS, f.PASS_TO_PASS) == (s.verdict, s.reason, s.FAIL_TO_PASS, s.PASS_TO_PASS):
            continue
        if f.verdict != "accepted" and s.verdict != "accepted" and f.reason == s.reason:
            continue  # both rejected for the same reason: the lists of a rejection are no task's
        dis.append({"candidate": i, "lists": s.lists, "full": f"{f.verdict}/{f.reason}",
                    "selected": f"{s.verdict}/{s.reason}", "selected_detail": s.detail[:200],
                    "f2p_only_full": sorted(set(f.FAIL_TO_PASS) - set(s.FAIL_TO_PASS))[:5],
                    "f2p_only_selected": sorted(set(s.FAIL_TO_PASS) - set(f.FAIL_TO_PASS))[:5],
                    "p2p_only_full": sorted(set(f.PASS_TO_PASS) - set(s.PASS_TO_PASS))[:5],
                    "p2p_only_selected": sorted(set(s.PASS_TO_PASS) - set(f.PASS_TO_PASS))[:5]})
    out["disagreements"] = dis
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="A run directory with a baseline, its coverage map and candidates.")
    ap.add_argument("--repo", default=None, help="Repository key in the run (default: the first with candidates).")
    ap.add_argument("--sample", type=int, default=100)
    ap.add_argument("--workers", type=int, default=0, help="Containers in parallel (default: CPU cores).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--host-sample", type=int, default=0, help="Candidates replayed on the host (sandbox overhead).")
    ap.add_argument("--json", default=None, help="Write every verdict of both strategies and the comparison here.")
    ap.add_argument("--strategies", default="full,selected", help="Which to run (comma-separated).")
    ap.add_argument("--verdicts", default=None, help="Append each verdict here (JSON lines) as it lands; "
                    "a strategy's candidates already there are not judged again (a run that stopped resumes, "
                    "its clock going on from the last verdict's elapsed time).")
    ap.add_argument("--compare", nargs=2, metavar=("FULL_JSONL", "SELECTED_JSONL"), default=None,
                    help="Compare two --verdicts files (the candidates both judged) instead of running.")
    ap.add_argument("--predict", action="store_true",
                    help="Judge nothing: predict the speed-up from the baseline's durations and the map alone.")
    ap.add_argument("--timeout", type=float, default=None,
                    help="A run's wall-clock limit, seconds (default: the stage's, from the baseline's median run).")
    args = ap.parse_args(argv)

    store = RunStore(args.run)
    keys = [k for k in store.repo_keys() if store.repo(k).candidates.exists()]
    key = args.repo or (keys[0] if keys else None)
    if key is None:
        print(f"{args.run}: no repository with candidates", file=sys.stderr)
        return 1
    rd = store.repo(key)
    env = load_env(store, key)
    spec = RepoSpec.parse(read_json(rd.env_json)["repo_spec"])
    baseline = read_records(rd.baseline, BaselineEntry)
    cov = CoverageMap.from_entries(read_records(rd.coverage, CoverageEntry))
    root = checkout(spec).path
    cands = [c for c in read_records(rd.candidates, Candidate) if c.origin == "mutation"]
    rng = random.Random(args.seed)
    sample = sorted(rng.sample(cands, min(args.sample, len(cands))), key=lambda c: c.candidate_id)
    if args.predict:
        return _predict(args, key, sample, baseline, cov, root, read_json(rd.root / "baseline.json") if (rd.root / "baseline.json").exists() else {},
                        load_env(store, key))
    limits = SandboxLimits(timeout_s=args.timeout or adaptive_timeout(store, key))
    global HOST_TIMEOUT_S
    HOST_TIMEOUT_S = limits.timeout_s
    workers = args.workers or defaults.cpu_cores()
    client = ensure_engine(quiet=True)

    def source_of(path: str) -> str | None:
        p = root / path
        return p.read_text(encoding="utf-8") if p.is_file() else None

    if args.compare:
        return _compare_files(args, key, sample, baseline)
    timings, verdicts = {}, {}
    for strategy in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        cfg = ValidateConfig(strategy=strategy, workers=workers, limits=limits, build_task_images=False,
                             confirm_fraction=0.0)
        judged, offset = _already_judged(args.verdicts, strategy)
        todo = [c for c in sample if c.candidate_id not in judged]
        done = [len(sample) - len(todo)]
        if judged:
            print(f"  {strategy}: {done[0]} candidates already in {args.verdicts} (resuming at {offset:.0f}s)",
                  file=sys.stderr, flush=True)

        def _tick(v, _i, s=strategy, d=done, t0=time.perf_counter() - offset):
            d[0] += 1
            if args.verdicts:
                with open(args.verdicts, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"strategy": s, "elapsed_s": time.perf_counter() - t0,
                                         **dataclasses.asdict(v)}) + "\n")
            print(f"  {s} {d[0]}/{len(sample)} {v.candidate_id} {v.verdict}/{v.reason} lists={v.lists} "
                  f"runs={v.num_runs} {v.total_s:.1f}s (elapsed {time.perf_counter() - t0:.0f}s)",
                  file=sys.stderr, flush=True)

        t0 = time.perf_counter()
        vals = validate_candidates(client, env, baseline, todo, cfg, on_result=_tick, coverage=cov,
                                   source_of=source_of)
        timings[strategy] = time.perf_counter() - t0 + offset
        verdicts[strategy] = {**judged, **{v.candidate_id: v for v in vals}}

    if set(verdicts) != {"full", "selected"}:
        print(json.dumps({s: {"wall_s": timings[s], "candidates": len(verdicts[s])} for s in verdicts}))
        return 0
    full, sel = verdicts["full"], verdicts["selected"]
    cmp = compare(sample, full, sel)
    cpm = {s: len(sample) / timings[s] * 60 for s in timings}
    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    n = len(sample)
    lists = {k: sum(v.lists == k for v in sel.values()) for k in ("selected", "full")}

    t = Table(title=f"validate: {key}, {n} candidates (seed {args.seed}), {workers} worker(s), "
                    f"{len(stable)} stable-passing tests, run limit {limits.timeout_s:.0f}s")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("full strategy: wall s", f"{timings['full']:.1f}")
    t.add_row("selected strategy: wall s", f"{timings['selected']:.1f}")
    t.add_row("full: candidates / min", f"{cpm['full']:.2f}")
    t.add_row("selected: candidates / min", f"{cpm['selected']:.2f}")
    t.add_row("speed-up (selected / full)", f"{cpm['selected'] / cpm['full']:.2f}x")
    t.add_row("selected rule: lists from covering tests / full suite", f"{lists['selected']} / {lists['full']}")
    t.add_row("verdicts agree (accepted or not)", f"{cmp['verdicts_agree']}/{n} = {100 * cmp['verdicts_agree'] / n:.1f}%")
    t.add_row("verdict and reason agree", f"{cmp['reasons_agree']}/{n}")
    t.add_row("accepted by both: F2P identical", f"{cmp['f2p_identical']}/{cmp['accepted_both']}")
    t.add_row("accepted by both: P2P identical", f"{cmp['p2p_identical']}/{cmp['accepted_both']}")
    for name in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        u, d = cmp[f"{name}_ids"], cmp[f"{name}_ids_differ"]
        t.add_row(f"{name} test ids agreeing (accepted by both)", f"{u - d}/{u} = {100 * (u - d) / max(u, 1):.3f}%")

    if args.host_sample:
        ctx = _Ctx(env, baseline, stable, ValidateConfig(), None, "", coverage=cov, source_of=source_of,
                   is_protected=runner_for(env.spec.test_cmd).protected)
        host_sample = sample[: args.host_sample]
        with tempfile.TemporaryDirectory(prefix="bench-validate-") as d:
            tree, py = make_host_env(checkout(spec), Path(d))
            host = []
            for c in host_sample:
                att = ctx.attribution(c)
                covering = sorted(att.tests & stable) if att.attributable else None
                host.append(host_replay(py, tree, c, covering, sel[c.candidate_id]))
        sandbox = [sel[c.candidate_id].total_s for c in host_sample]
        med = statistics.median
        t.add_row(f"per-candidate s, sandbox selected (median of {len(host_sample)})", f"{med(sandbox):.2f}")
        t.add_row("per-candidate s, same runs with pytest on host", f"{med(host):.2f}")
        t.add_row("sandbox / host per candidate (median of ratios)",
                  f"{med([s / h for s, h in zip(sandbox, host, strict=True)]):.2f}x")
    Console().print(t)
    reasons: dict[str, dict[str, int]] = {}
    for s in ("full", "selected"):
        for v in verdicts[s].values():
            reasons.setdefault(v.reason, {"full": 0, "selected": 0})[s] += 1
    print(json.dumps({"reasons": reasons}, sort_keys=True))
    for d in cmp["disagreements"]:
        print(json.dumps({"disagreement": d}))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "repo": key, "seed": args.seed, "workers": workers, "timings": timings, "cpm": cpm,
            "comparison": cmp, "verdicts": {s: [dataclasses.asdict(v) for v in vs.values()] for s, vs in verdicts.items()}},
            indent=1))
    return 0


def _predict(args, key: str, sample: list[Candidate], baseline: list[BaselineEntry], cov: CoverageMap,
             root: Path, baseline_json: dict, env) -> int:
    """What the selected rule can gain on a library, before spending hours judging it.

    Per candidate, test time only, from the baseline: the full strategy runs the suite once (its
    median wall time); the selected one runs the stable tests of the covering tests' files twice,
    each run paying its tests' durations and the collection of their files (the baseline's
    collect-only wall time, in proportion to the test files collected), or the suite once where
    the map cannot attribute the change. Apply, reset and confirmation runs are left out (about the
    same in both): the figure says which libraries are worth measuring, not what they measure."""
    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    dur = {e.nodeid: e.duration_s for e in baseline}
    walls = sorted(baseline_json.get("run_wall_s") or [])
    wall = statistics.median(walls) if walls else sum(dur.values())
    n_files = len({t.split("::", 1)[0] for t in dur}) or 1
    collect = float(baseline_json.get("collect_wall_s") or 0.0)

    def run_s(tests: set[str]) -> float:
        files = len({t.split("::", 1)[0] for t in tests})
        return collect * files / n_files + sum(dur.get(t, 0.0) for t in tests)

    def source_of(path: str) -> str | None:
        p = root / path
        return p.read_text(encoding="utf-8") if p.is_file() else None

    ctx = _Ctx(env, baseline, stable, ValidateConfig(), None, "", coverage=cov, source_of=source_of,
               is_protected=runner_for(env.spec.test_cmd).protected)
    full_s = sel_s = 0.0
    sizes, reasons = [], {}
    for c in sample:
        att = ctx.attribution(c)
        full_s += wall
        if att.attributable:
            obs = ctx.observers(att.tests)
            sizes.append(len(obs))
            sel_s += 2 * run_s(obs) if obs else 0.0
        else:
            why = att.reason.split(": ", 1)[-1][:70]
            reasons[why] = reasons.get(why, 0) + 1
            sel_s += wall
    t = Table(title=f"predicted: {key}, {len(sample)} candidates (seed {args.seed}), {len(stable)} stable tests")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("suite run, median wall s (collection s)", f"{wall:.1f} ({collect:.1f})")
    t.add_row("attributable candidates", f"{len(sizes)}/{len(sample)} = {100 * len(sizes) / max(len(sample), 1):.0f}%")
    if sizes:
        t.add_row("tests run per attributable candidate, median (max)",
                  f"{statistics.median(sizes):.0f} ({max(sizes)})")
    t.add_row("predicted test time, full / selected s", f"{full_s:.0f} / {sel_s:.0f}")
    t.add_row("predicted speed-up", f"{full_s / max(sel_s, 1e-9):.2f}x")
    Console().print(t)
    for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:8]:
        print(f"  full suite: {n} x {r}")
    return 0


def _verdict_rows(path: str, strategy: str) -> tuple[dict[str, Validation], float]:
    """A --verdicts file's verdicts of one strategy, and the last one's elapsed seconds."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.pop("strategy") == strategy]
    elapsed = max((r.pop("elapsed_s") for r in rows), default=0.0)
    return ({r["candidate_id"]: Validation(**{**r, "FAIL_TO_PASS": tuple(r["FAIL_TO_PASS"]),
                                              "PASS_TO_PASS": tuple(r["PASS_TO_PASS"])}) for r in rows}, elapsed)


def _already_judged(path: str | None, strategy: str) -> tuple[dict[str, Validation], float]:
    if not path or not Path(path).exists():
        return {}, 0.0
    return _verdict_rows(path, strategy)


def _compare_files(args, key: str, sample: list[Candidate], baseline: list[BaselineEntry]) -> int:
    """The comparison of two side-by-side runs: candidates per minute from each one's own clock
    (its last verdict's elapsed time over the verdicts it gave), lists on the candidates both judged."""
    runs = {}
    for strategy, path in zip(("full", "selected"), args.compare, strict=True):
        runs[strategy] = _verdict_rows(path, strategy)
    both = [c for c in sample if c.candidate_id in runs["full"][0] and c.candidate_id in runs["selected"][0]]
    cmp = compare(both, runs["full"][0], runs["selected"][0])
    n = len(both)
    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    t = Table(title=f"validate side by side: {key}, {n} candidates judged by both (of {len(sample)}), "
                    f"{len(stable)} stable-passing tests")
    t.add_column("measure")
    t.add_column("value", justify="right")
    cpm = {}
    for s in ("full", "selected"):
        vals, elapsed = runs[s]
        cpm[s] = len(vals) / elapsed * 60 if elapsed else float("nan")
        t.add_row(f"{s}: candidates judged / wall s", f"{len(vals)} / {elapsed:.0f}")
        t.add_row(f"{s}: candidates / min", f"{cpm[s]:.2f}")
    t.add_row("speed-up (selected / full)", f"{cpm['selected'] / cpm['full']:.2f}x")
    sel = runs["selected"][0]
    t.add_row("selected rule: lists from covering tests / full suite",
              f"{sum(v.lists == 'selected' for v in sel.values())} / {sum(v.lists == 'full' for v in sel.values())}")
    t.add_row("verdicts agree (accepted or not)", f"{cmp['verdicts_agree']}/{n}")
    t.add_row("verdict and reason agree", f"{cmp['reasons_agree']}/{n}")
    t.add_row("accepted by both: F2P identical", f"{cmp['f2p_identical']}/{cmp['accepted_both']}")
    t.add_row("accepted by both: P2P identical", f"{cmp['p2p_identical']}/{cmp['accepted_both']}")
    for name in ("FAIL_TO_PASS", "PASS_TO_PASS"):
        u, d = cmp[f"{name}_ids"], cmp[f"{name}_ids_differ"]
        t.add_row(f"{name} test ids agreeing (accepted by both)", f"{u - d}/{u} = {100 * (u - d) / max(u, 1):.3f}%")
    Console().print(t)
    for d in cmp["disagreements"]:
        print(json.dumps({"disagreement": d}))
    return 0


if __name__ == "__main__":
    from factory.interrupt import terminate_as_interrupt

    terminate_as_interrupt()  # SIGTERM unwinds like Ctrl-C: the worker containers are removed
    sys.exit(main())
