"""How fast the mutate stage makes candidates on a real source tree.

Copies the Python files of PATH into a fresh git repository in a temporary folder (so the
patches can be checked with ``git apply``), builds a synthetic coverage map in which one fake
test covers every line, runs ``mutators.mutate_repo`` and prints a table.

    python bench/mutate_speed.py .venv/lib/python3.11/site-packages/rich --check 200
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


def make_repo(src: Path, dest: Path) -> tuple[str, int, int]:
    """Copy src's .py files under dest/<name>/ and commit them; (commit, files, lines)."""
    n_files = n_lines = 0
    for f in sorted(src.rglob("*.py")):
        if "__pycache__" in f.parts or f.is_symlink():
            continue
        target = dest / src.name / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f, target)
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
    args = parser.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mutators import MutateConfig, mutate_repo

    config = MutateConfig(
        seed=args.seed,
        max_per_function=args.max_per_function,
        operators=tuple(args.operators.split(",")) if args.operators else None,
    )
    with tempfile.TemporaryDirectory(prefix="mutate-bench-") as tmp:
        repo = Path(tmp)
        commit, n_files, n_lines = make_repo(args.path.resolve(), repo)
        coverage = synthetic_coverage(repo)
        times, cpu_times, result = [], [], None
        for _ in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            result = mutate_repo(repo, "bench", commit, coverage, {FAKE_TEST}, config)
            times.append(time.perf_counter() - t0)
            cpu_times.append(time.process_time() - c0)
        best, best_cpu = min(times), min(cpu_times)
        n = len(result.candidates)
        checked, failed = check_patches(repo, result.candidates, args.check, args.seed) if args.check else (0, 0)

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
    print("| operator | candidates |")
    print("|----------|------------|")
    for k, v in sorted(ops.items()):
        print(f"| {k} | {v} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
