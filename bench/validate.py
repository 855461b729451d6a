"""Validation benchmark: the selected strategy against the full-suite one, and the sandbox's overhead.

On one run directory that holds a baseline and candidates for a repository (``factory mutate``),
judges the same sample of candidates with ``--strategy full`` and ``--strategy selected`` in one
process, and prints candidates per minute for each, their ratio and the verdict agreement. Then,
for the selected strategy, it replays each candidate's test runs (the same selections, in the same
order) with pytest directly on the host — ``git apply``, a fresh ``pytest`` process per run, reset —
and compares per-candidate wall time: the sandbox's whole overhead.

Task images are not built here (the same cost for both strategies, and no host equivalent).

    python bench/validate.py --run runs/demo --sample 60 --workers 1
"""

from __future__ import annotations

import argparse
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

from factory.pipeline import load_env
from factory.repo import checkout
from factory.schema import BaselineEntry, Candidate, RepoSpec
from factory.store import RunStore, read_json, read_records
from factory.task_stages import adaptive_timeout
from verifiers.engine import ensure_engine
from verifiers.sandbox import SandboxLimits
from verifiers.validate import ValidateConfig, validate_candidates

HOST_TIMEOUT_S = 300.0  # set from the sandbox's limit in main()


def _host_pytest(py: Path, tree: Path, select: list[str] | None) -> dict[str, str]:
    """One pytest process on the host; outcomes from JUnit XML (only for the replay's decisions)."""
    import xml.etree.ElementTree as ET  # noqa: PLC0415

    xml = tree / ".bench-junit.xml"
    args = [str(py), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--continue-on-collection-errors",
            f"--junitxml={xml}", *(select or [])]
    try:
        subprocess.run(args, cwd=tree, capture_output=True, timeout=HOST_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pass  # the sandbox killed this run at the same limit
    failed = 0
    if xml.exists():
        root = ET.parse(xml).getroot()
        failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in root.iter("testsuite"))
        xml.unlink()
    return {"failed": failed}


def host_replay(py: Path, tree: Path, cand: Candidate, stable: set[str], val) -> float:
    """The selected strategy's runs for one candidate, replayed with plain pytest on the host.

    The same selections in the same order as the sandbox ran them (read off its verdict: which
    stage decided, how many runs), each in a fresh pytest process with the same collection flag.
    """
    t0 = time.perf_counter()
    patch = tree / ".bench.diff"
    patch.write_text(cand.patch)
    ok = subprocess.run(["git", "apply", str(patch)], cwd=tree, capture_output=True).returncode == 0
    if ok:
        selected = sorted(set(cand.covering_tests) & stable)
        runs: list[list[str] | None] = []
        if selected:
            runs.append(selected)
        if val.detail != "selected tests" and val.num_runs > len(runs):
            runs.append(None)  # the full suite
        if val.num_runs > len(runs):
            runs.append(sorted(set(val.FAIL_TO_PASS) - set(selected)) or list(val.FAIL_TO_PASS))
        for select in runs[: val.num_runs]:
            _host_pytest(py, tree, select)
    subprocess.run(["git", "reset", "-q", "--hard"], cwd=tree, check=True)
    subprocess.run(["git", "clean", "-qfd"], cwd=tree, check=True)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="A run directory with a baseline and candidates.")
    ap.add_argument("--repo", default=None, help="Repository key in the run (default: the first with candidates).")
    ap.add_argument("--sample", type=int, default=60)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--host-sample", type=int, default=20, help="Candidates replayed on the host.")
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
    cands = read_records(rd.candidates, Candidate)
    rng = random.Random(args.seed)
    sample = sorted(rng.sample(cands, min(args.sample, len(cands))), key=lambda c: c.candidate_id)
    limits = SandboxLimits(timeout_s=adaptive_timeout(store, key))
    global HOST_TIMEOUT_S
    HOST_TIMEOUT_S = limits.timeout_s
    client = ensure_engine(quiet=True)

    timings, verdicts = {}, {}
    for strategy in ("full", "selected"):
        cfg = ValidateConfig(strategy=strategy, workers=args.workers, limits=limits, build_task_images=False)
        t0 = time.perf_counter()
        vals = validate_candidates(client, env, baseline, sample, cfg)
        timings[strategy] = time.perf_counter() - t0
        verdicts[strategy] = {v.candidate_id: v for v in vals}

    full, sel = verdicts["full"], verdicts["selected"]
    agree = sum((full[c.candidate_id].verdict == "accepted") == (sel[c.candidate_id].verdict == "accepted")
                for c in sample)
    both = [c.candidate_id for c in sample if full[c.candidate_id].verdict == sel[c.candidate_id].verdict == "accepted"]
    same_lists = sum(full[i].FAIL_TO_PASS == sel[i].FAIL_TO_PASS and full[i].PASS_TO_PASS == sel[i].PASS_TO_PASS
                     for i in both)
    cpm = {s: len(sample) / timings[s] * 60 for s in timings}

    stable = {e.nodeid for e in baseline if e.outcome == "passed" and not e.flaky}
    host_sample = sample[: args.host_sample]
    with tempfile.TemporaryDirectory(prefix="bench-validate-") as d:
        tree, py = make_host_env(checkout(spec), Path(d))
        host = [host_replay(py, tree, c, stable, sel[c.candidate_id]) for c in host_sample]
    sandbox = [sel[c.candidate_id].total_s for c in host_sample]

    med = statistics.median
    t = Table(title=f"validate: {key}, {len(sample)} candidates, {args.workers} worker(s)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    t.add_row("full strategy: wall s", f"{timings['full']:.1f}")
    t.add_row("selected strategy: wall s", f"{timings['selected']:.1f}")
    t.add_row("full: candidates / min", f"{cpm['full']:.1f}")
    t.add_row("selected: candidates / min", f"{cpm['selected']:.1f}")
    t.add_row("speed-up (selected / full)", f"{cpm['selected'] / cpm['full']:.2f}x")
    t.add_row("verdict agreement (accepted or not)", f"{agree}/{len(sample)} = {100 * agree / len(sample):.1f}%")
    t.add_row("accepted by both with identical F2P and P2P", f"{same_lists}/{len(both)}")
    t.add_row(f"per-candidate s, sandbox selected (median of {len(host_sample)})", f"{med(sandbox):.2f}")
    t.add_row("per-candidate s, same runs with pytest on host", f"{med(host):.2f}")
    t.add_row("sandbox / host per candidate (median of ratios)",
              f"{med([s / h for s, h in zip(sandbox, host, strict=True)]):.2f}x")
    Console().print(t)
    reasons = {}
    for s in ("full", "selected"):
        for v in verdicts[s].values():
            reasons.setdefault(v.reason, {"full": 0, "selected": 0})[s] += 1
    print(json.dumps({"reasons": reasons}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
