"""How fast the mutate stage makes candidates on a real source tree (and, optionally, how many
of them the tree's own tests notice).

Copies PATH into a fresh git repository in a temporary folder (so the patches can be checked
with ``git apply``), builds a coverage map, runs ``mutators.mutate_repo`` and prints a table.

The coverage map is synthetic by default: one fake test covers every line (a speed test). With
``--tests DIR`` it is real: the suite under DIR (relative to the copied tree) runs once under
coverage.py with one context per pytest node id; passing tests are the stable set. With
``--kill-sample N`` as well, N sampled candidates are applied in a scratch clone and their
covering tests run with pytest: a candidate is *noticed* when that run fails.

    python bench/mutate_speed.py .venv/lib/python3.11/site-packages/rich --check 200
    python bench/mutate_speed.py .venv/lib/python3.11/site-packages/jsonschema --tests jsonschema/tests \
        --pytest-arg=--ignore=jsonschema/tests/test_exceptions.py --kill-sample 40
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

FAKE_TEST = "tests/test_fake.py::test_everything"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def make_repo(src: Path, dest: Path, everything: bool = False) -> tuple[str, int, int]:
    """Copy src's .py files (or all files) under dest/<name>/ and commit; (commit, files, lines)."""
    n_files = n_lines = 0
    for f in sorted(src.rglob("*" if everything else "*.py")):
        if "__pycache__" in f.parts or f.is_symlink() or not f.is_file():
            continue
        target = dest / src.name / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
        if f.suffix == ".py":
            n_files += 1
            n_lines += f.read_bytes().count(b"\n")
    _git(dest, "init", "-q")
    _git(dest, "add", "-A")
    _git(dest, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "snapshot")
    return _git(dest, "rev-parse", "HEAD").strip(), n_files, n_lines


def synthetic_coverage(repo: Path):
    from factory.schema import CoverageEntry

    out = []
    for f in sorted(repo.rglob("*.py")):
        if ".git" in f.parts:
            continue
        rel = f.relative_to(repo).as_posix()
        n = f.read_bytes().count(b"\n") + 1
        out.extend(CoverageEntry(rel, line, (FAKE_TEST,)) for line in range(1, n + 1))
    return out


# A pytest plugin (the copied tree's root conftest.py): one coverage context per test node id,
# and every test's outcome, written where BENCH_COV says.
_PLUGIN = """
import json, os
import coverage
import pytest

_out = os.environ.get("BENCH_COV")
_cov = coverage.Coverage(data_file=_out, source=[os.environ.get("BENCH_PKG", ".")]) if _out else None
_outcomes = {}


def pytest_configure(config):
    if _cov:
        _cov.start()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if _cov:
        _cov.switch_context(item.nodeid)
    yield
    if _cov:
        _cov.switch_context("")


def pytest_runtest_logreport(report):
    if report.outcome != "passed" or report.when == "call":
        if _outcomes.get(report.nodeid, "passed") == "passed":
            _outcomes[report.nodeid] = report.outcome


def pytest_sessionfinish(session):
    if _cov:
        _cov.stop()
        _cov.save()
        with open(_out + ".outcomes.json", "w") as f:
            json.dump(_outcomes, f)
"""


def real_coverage(repo: Path, package: str, tests: str, pytest_args: list[str]):
    """(coverage entries, passing node ids) from one run of the suite under coverage.py."""
    import json

    import coverage

    from factory.schema import CoverageEntry

    (repo / "conftest.py").write_text(_PLUGIN)
    _git(repo, "add", "conftest.py")
    _git(repo, "-c", "user.name=bench", "-c", "user.email=bench@example.invalid", "commit", "-qm", "plugin")
    data_file = repo.parent / "bench.coverage"
    env = {**os.environ, "BENCH_COV": str(data_file), "BENCH_PKG": package}
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", tests, *pytest_args],
        cwd=repo, env=env, capture_output=True, check=False,
    )
    outcomes = json.loads(Path(str(data_file) + ".outcomes.json").read_text())
    passing = {n for n, o in outcomes.items() if o == "passed"}
    data = coverage.CoverageData(str(data_file))
    data.read()
    entries = []
    for f in sorted(data.measured_files()):
        rel = Path(f).resolve().relative_to(repo.resolve()).as_posix()
        for line, contexts in sorted((data.contexts_by_lineno(f) or {}).items()):
            ids = tuple(sorted(c for c in contexts if c))
            if ids:
                entries.append(CoverageEntry(rel, line, ids))
    return entries, passing, len(outcomes)


def kill_sample(repo: Path, candidates, sample: int, seed: int, max_tests: int) -> list[tuple[str, bool]]:
    """(operator, noticed) for a seeded sample: apply in a scratch clone, run the covering tests."""
    scratch = repo.parent / "scratch"
    subprocess.run(["git", "clone", "-q", str(repo), str(scratch)], check=True)
    rng = random.Random(seed)
    out = []
    for c in rng.sample(candidates, min(sample, len(candidates))):
        _git(scratch, "checkout", "-q", "--", ".")
        subprocess.run(["git", "-C", str(scratch), "apply", "-"], input=c.patch, text=True, check=True)
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *c.covering_tests[:max_tests]],
            cwd=scratch, capture_output=True, check=False,
        )
        out.append((c.operator, proc.returncode != 0))
    return out


def check_patches(repo: Path, candidates, sample: int, seed: int) -> tuple[int, int]:
    """``git apply --check`` on a seeded sample; (checked, failed)."""
    rng = random.Random(seed)
    picked = rng.sample(candidates, min(sample, len(candidates)))
    failed = 0
    for c in picked:
        proc = subprocess.run(
            ["git", "-C", str(repo), "apply", "--check", "-"], input=c.patch, text=True, capture_output=True
        )
        failed += proc.returncode != 0
    return len(picked), failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a folder of Python source (e.g. site-packages/rich)")
    parser.add_argument("--max-per-function", type=int, default=3)
    parser.add_argument("--operators", default=None, help="comma-separated operator names (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=1, help="run the stage this many times; report the best")
    parser.add_argument("--check", type=int, default=0, help="git apply --check this many sampled patches")
    parser.add_argument("--tests", default=None, help="run this test folder (in the copied tree) for real coverage")
    parser.add_argument("--pytest-arg", action="append", default=[], help="extra pytest argument (repeatable)")
    parser.add_argument("--kill-sample", type=int, default=0, help="with --tests: run the covering tests of N candidates")
    parser.add_argument("--max-tests", type=int, default=40, help="covering tests run per candidate (first N)")
    args = parser.parse_args(argv)
    if args.kill_sample and not args.tests:
        parser.error("--kill-sample needs --tests")

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mutators import MutateConfig, mutate_repo

    config = MutateConfig(
        seed=args.seed,
        max_per_function=args.max_per_function,
        operators=tuple(args.operators.split(",")) if args.operators else None,
    )
    with tempfile.TemporaryDirectory(prefix="mutate-bench-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        commit, n_files, n_lines = make_repo(args.path.resolve(), repo, everything=bool(args.tests))
        suite = ""
        if args.tests:
            coverage, stable, n_tests = real_coverage(repo, args.path.name, args.tests, args.pytest_arg)
            commit = _git(repo, "rev-parse", "HEAD").strip()
            suite = f"{n_tests} tests, {len(stable)} passing, {len(coverage)} covered lines"
        else:
            coverage, stable = synthetic_coverage(repo), {FAKE_TEST}
        times, cpu_times, result = [], [], None
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            result = mutate_repo(repo, "bench", commit, coverage, stable, config)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        best, best_cpu = min(times), min(cpu_times)
        n = len(result.candidates)
        checked, failed = check_patches(repo, result.candidates, args.check, args.seed) if args.check else (0, 0)
        kills = kill_sample(repo, result.candidates, args.kill_sample, args.seed, args.max_tests) if args.kill_sample else []

    rows = [
        ("source", str(args.path)),
        ("files / lines", f"{n_files} / {n_lines}"),
        ("machine", f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()}"),
        ("max per function", str(args.max_per_function)),
        ("candidates", str(n)),
        (f"seconds (best of {args.repeat})", f"{best:.2f}"),
        ("candidates / second", f"{n / best:.1f}"),
        ("CPU seconds (best)", f"{best_cpu:.2f}"),
        ("candidates / CPU second", f"{n / best_cpu:.1f}"),
        ("load average (1 min) after", f"{os.getloadavg()[0]:.2f}"),
        ("lines / second", f"{n_lines / best:.0f}"),
    ]
    if args.check:
        rows.append(("git apply --check", f"{checked - failed}/{checked} apply"))
    if suite:
        rows.insert(2, ("test suite (real coverage)", suite))
    if kills:
        noticed = sum(k for _, k in kills)
        rows.append(("noticed by covering tests", f"{noticed}/{len(kills)} ({noticed / len(kills):.0%})"))
    width = max(len(k) for k, _ in rows)
    print(f"| {'measure'.ljust(width)} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for k, v in rows:
        print(f"| {k.ljust(width)} | {v} |")
    print()
    print("| stat | count |")
    print("|------|-------|")
    for k, v in result.stats.items():
        print(f"| {k} | {v} |")
    ops = Counter(c.operator for c in result.candidates)
    print()
    by_op: dict[str, list[int]] = {}
    for op, k in kills:
        by_op.setdefault(op, [0, 0])
        by_op[op][0] += k
        by_op[op][1] += 1
    print("| operator | candidates |" + (" noticed / sampled |" if kills else ""))
    print("|----------|------------|" + ("-------------------|" if kills else ""))
    for k, v in sorted(ops.items()):
        extra = f" {by_op[k][0]}/{by_op[k][1]} |" if k in by_op else (" |" if kills else "")
        print(f"| {k} | {v} |{extra}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
