"""How fast ``miners.mine_local`` scans history, on a synthetic repository made with fast-import.

The history has ``--commits`` first-parent commits on ``main``: a share of GitHub-style merge
commits (each with one commit on its branch) and squash merges, the rest plain commits. PRs are
a realistic mix: code with tests, code without tests, docs only, CI only, comment-only edits.

    .venv/bin/python bench/mine_speed.py --commits 2400 --repeat 3

Prints a table: commits scanned per second (first-parent), and the funnel
commits → PRs → candidates, with the skip reasons.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_MODULES = 40
NUM_FUNCTIONS = 12  # per module, 5 lines each; --functions changes it (the AST check's cost grows with it)


def _module(k: int, version: int, num_functions: int = NUM_FUNCTIONS) -> str:
    lines = [f'"""Module {k}."""', "", "import math", ""]
    for j in range(num_functions):
        bump = version if j == version % num_functions else 0
        lines += [f"def f{j}(x):", f"    # helper {j}", f"    return x * {j} + {bump}", "", ""]
    return "\n".join(lines) + "\n"


def _test(k: int, version: int, num_functions: int = NUM_FUNCTIONS) -> str:
    """A test of the function that ``version`` changed: it fails before that change and passes after."""
    j = version % num_functions
    return (f"from pkg.mod_{k} import f{j}\n\n\ndef test_f{j}_v{version}():\n"
            f"    assert f{j}(1) == {j + version}\n")


def _data(text: str) -> bytes:
    b = text.encode()
    return b"data %d\n" % len(b) + b + b"\n"


def build_history(dest: Path, num_commits: int, pr_share: float, seed: int,
                  num_functions: int = NUM_FUNCTIONS) -> dict[str, int]:
    """Write a repository with ``num_commits`` first-parent commits; returns what was made."""
    rng = random.Random(seed)
    subprocess.run(["git", "init", "-q", "-b", "main", str(dest)], check=True)
    out: list[bytes] = []
    version = {k: 0 for k in range(NUM_MODULES)}
    made = {"merge_prs": 0, "squash_prs": 0, "plain": 0, "branch_commits": 0}
    ts = 1_600_000_000
    mark = 0
    prev = None

    def commit(ref: str, msg: str, changes: list[tuple[str, str]], parent: int | None, merge: int | None) -> int:
        nonlocal mark, ts
        mark += 1
        ts += 600
        out.append(f"commit {ref}\nmark :{mark}\n".encode())
        out.append(f"committer Bench <bench@example.com> {ts} +0000\n".encode())
        out.append(_data(msg))
        if parent is not None:
            out.append(f"from :{parent}\n".encode())
        if merge is not None:
            out.append(f"merge :{merge}\n".encode())
        for path, text in changes:
            out.append(f"M 100644 inline {path}\n".encode() + _data(text))
        return mark

    init = [(f"src/pkg/mod_{k}.py", _module(k, 0, num_functions)) for k in range(NUM_MODULES)]
    init += [(f"tests/test_mod_{k}.py", _test(k, 0, num_functions)) for k in range(NUM_MODULES)]
    init += [("pyproject.toml", "[project]\nname = 'pkg'\nversion = '0.0.0'\n"), ("README.md", "# pkg\n"), ("src/pkg/__init__.py", "")]
    prev = commit("refs/heads/main", "initial\n", init, None, None)
    made["plain"] += 1
    pr = 0
    for _ in range(num_commits - 1):
        k = rng.randrange(NUM_MODULES)
        kind = rng.random()
        is_pr = rng.random() < pr_share
        if not is_pr:
            version[k] += 1
            prev = commit("refs/heads/main", f"tweak module {k}\n", [(f"src/pkg/mod_{k}.py", _module(k, version[k], num_functions))],
                          prev, None)
            made["plain"] += 1
            continue
        pr += 1
        if kind < 0.55:  # code with tests
            version[k] += 1
            changes = [(f"src/pkg/mod_{k}.py", _module(k, version[k], num_functions)), (f"tests/test_mod_{k}.py", _test(k, version[k], num_functions))]
        elif kind < 0.75:  # code only
            version[k] += 1
            changes = [(f"src/pkg/mod_{k}.py", _module(k, version[k], num_functions))]
        elif kind < 0.9:  # docs only
            changes = [(f"docs/page_{pr}.rst", f"Page {pr}\n=======\n")]
        elif kind < 0.95:  # CI only
            changes = [(".github/workflows/ci.yml", f"on: push\n# {pr}\n")]
        else:  # comments only, with a test
            changes = [(f"src/pkg/mod_{k}.py", _module(k, version[k], num_functions).replace("# helper 3", f"# helper 3 rev {pr}")),
                       (f"tests/test_mod_{k}.py", _test(k, version[k], num_functions) + f"# {pr}\n")]
        title = f"Change {pr} to module {k}"
        if rng.random() < 0.5:
            branch = commit(f"refs/heads/pr/{pr}", title + "\n", changes, prev, None)
            made["branch_commits"] += 1
            prev = commit("refs/heads/main", f"Merge pull request #{pr} from dev/pr-{pr}\n\n{title}\n",
                          changes, prev, branch)
            made["merge_prs"] += 1
        else:
            prev = commit("refs/heads/main", f"{title} (#{pr})\n\nSome description.\n", changes, prev, None)
            made["squash_prs"] += 1
    out.append(b"done\n")
    subprocess.run(["git", "-C", str(dest), "fast-import", "--quiet", "--done"], input=b"".join(out), check=True)
    # branches of merged PRs are usually deleted; leaving them would not change the walk
    subprocess.run(["git", "-C", str(dest), "checkout", "-q", "main"], check=True)
    return made


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commits", type=int, default=2400, help="first-parent commits on main")
    ap.add_argument("--pr-share", type=float, default=0.35, help="share of first-parent commits that are PRs")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--functions", type=int, default=NUM_FUNCTIONS, help="functions per module (5 lines each)")
    ap.add_argument("--keep", type=Path, help="build the repository here and keep it")
    args = ap.parse_args(argv)

    from miners import mine_local
    from miners.gitio import log_first_parent

    with tempfile.TemporaryDirectory() as tmp:
        dest = args.keep or Path(tmp) / "repo"
        t0 = time.perf_counter()
        made = build_history(dest, args.commits, args.pr_share, args.seed, args.functions)
        build_s = time.perf_counter() - t0
        times, log_times = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = mine_local(dest, repo="bench")
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            sum(1 for _ in log_first_parent(dest))
            log_times.append(time.perf_counter() - t0)
    best = min(times)
    s = res.stats
    scanned = s["commits_scanned"]
    rows = [
        ("machine", f"{_cpu_model()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
                    f"{subprocess.run(['git', '--version'], capture_output=True, text=True).stdout.strip()}"),
        ("history", f"{scanned} first-parent commits, {NUM_MODULES} modules of {5 * args.functions + 5} lines (+{made['branch_commits']} on PR branches), "
                    f"{made['merge_prs']} merge PRs, {made['squash_prs']} squash PRs; built in {build_s:.2f} s"),
        ("mine_local time", f"best {best:.3f} s of {args.repeat} ({', '.join(f'{t:.3f}' for t in times)})"),
        ("commits scanned / s", f"{scanned / best:,.0f}"),
        ("metadata stream only", f"{min(log_times):.3f} s ({scanned / min(log_times):,.0f} commits/s); the rest "
                                 f"is diffing, splitting and AST checks of the PR-like commits"),
        ("funnel", f"commits {scanned} -> PRs {s.get('prs', 0)} -> candidates {s.get('candidates', 0)}"),
    ]
    rows += [(k, str(v)) for k, v in sorted(s.items()) if k.startswith(("skipped_", "not_pr"))]
    width = max(len(k) for k, _ in rows)
    print(f"| {'what':<{width}} | value")
    print(f"|{'-' * (width + 2)}|------")
    for k, v in rows:
        print(f"| {k:<{width}} | {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
