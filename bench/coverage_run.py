"""The baseline's coverage run against a plain run, and the map it makes against the old one.

In one worker container of a run's environment image, alternating, ``--reps`` times each:

- ``plain``: the suite with the report plugin, no coverage (what a baseline rerun costs);
- ``image``: the coverage run of the plugin baked into the image (the one before this change,
  when the image was built before it);
- ``tree``: the coverage run of this working tree's ``verifiers/plugin/tf_report.py``, copied in;
- ``treecov``: the same plugin held to coverage.py's tracer (``TF_COVERAGE_CORE=coverage``): on
  Python 3.12+ ``tree`` maps with ``sys.monitoring``, and this is what it replaced.

Prints the median wall time of each, the ratios to ``plain``, and whether the two maps agree:
the same files, lines and node ids per line of the package (test files, which the working
tree's plugin no longer measures, are left out of the comparison), once the working tree's
``<outside tests>`` ids (lines run at import or collection, which the old plugin dropped) are
set aside.

    python bench/coverage_run.py --run /work/i21/docutils --reps 3

``--variants plain,tree`` leaves the image's coverage run out and compares the tree's map with
the run's ``coverage.parquet`` (its baseline's; the baseline's ``coverage_wall_s`` is then the
old plugin's time). ``--install`` then makes the working tree's map the run's ``coverage.parquet`` (the old one kept as
``coverage.before.parquet``), when both maps agree: a run whose baseline predates the
``<outside tests>`` rows gets them without a new baseline.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from factory.pipeline import load_env
from factory.store import RunStore
from verifiers.runner import Selection, runner_for
from verifiers.sandbox import SandboxLimits
from verifiers.worker import Worker

_PLUGIN = Path(__file__).resolve().parents[1] / "verifiers" / "plugin" / "tf_report.py"
OUTSIDE = "<outside tests>"


def _map(rep) -> dict[str, dict[int, frozenset[str]]]:
    out: dict[str, dict[int, frozenset[str]]] = {}
    for f, lines in (rep.coverage or {}).items():
        for n, ids in lines.items():
            ids = frozenset(i for i in ids if i != OUTSIDE)
            if ids:
                out.setdefault(f, {})[n] = ids
    return out


def _cpu_seconds(log_tail: str) -> float:
    """Children's user + system seconds from bash's ``times`` (its last line: ``1m2.3s 0m4.5s``)."""
    lines = [ln for ln in log_tail.strip().splitlines() if ln.count("m") == 2 and ln.strip().endswith("s")]
    if not lines:
        return float("nan")
    total = 0.0
    for part in lines[-1].split():
        m, sec = part.rstrip("s").split("m")
        total += int(m) * 60 + float(sec)
    return total


def _agree(a: dict, b: dict) -> dict:
    """The two maps, package files only (the tree's plugin does not measure test files)."""
    from factory.repo import is_test_file  # noqa: PLC0415

    lines_a = {(f, n): ids for f, ls in a.items() if not is_test_file(f) for n, ids in ls.items()}
    lines_b = {(f, n): ids for f, ls in b.items() if not is_test_file(f) for n, ids in ls.items()}
    return {"maps_identical": lines_a == lines_b, "lines_image": len(lines_a), "lines_tree": len(lines_b),
            "pairs_image": sum(len(v) for v in lines_a.values()), "pairs_tree": sum(len(v) for v in lines_b.values()),
            "lines_only_in_one": [list(x) for x in sorted(set(lines_a) ^ set(lines_b))[:5]],
            "lines_with_other_ids": [list(k) for k in set(lines_a) & set(lines_b) if lines_a[k] != lines_b[k]][:5],
            "image_test_file_lines_not_compared": sum(len(ls) for f, ls in a.items() if is_test_file(f)),
            "tree_test_file_lines": sum(len(ls) for f, ls in b.items() if is_test_file(f))}


def _install(store, key: str, raw_tree: dict) -> None:
    from factory.schema import CoverageEntry  # noqa: PLC0415
    from factory.store import write_records  # noqa: PLC0415

    rd = store.repo(key)
    if rd.coverage.exists() and not (rd.root / "coverage.before.parquet").exists():
        rd.coverage.replace(rd.root / "coverage.before.parquet")
    rows = [CoverageEntry(f, n, tuple(sorted(set(ids)))) for f in sorted(raw_tree) for n, ids in sorted(raw_tree[f].items())]
    write_records(rd.coverage, rows, CoverageEntry)
    print(f"installed the tree's map: {len(rows)} rows -> {rd.coverage}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--repo", default=None)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--variants", default="plain,image,tree")
    ap.add_argument("--timeout", type=float, default=900.0)
    ap.add_argument("--json", default=None, help="Write the raw timings here.")
    ap.add_argument("--install", action="store_true", help="Make the tree's map the run's coverage.parquet.")
    ap.add_argument("--hashseed", default=None,
                    help="PYTHONHASHSEED for every run: set order fixed, so two maps differ only by the tracer "
                         "(networkx's tests take other code paths from run to run without it).")
    ap.add_argument("--maps", default=None, help="Write each variant's map here as JSON (VARIANT.json).")
    ap.add_argument("--plugin", action="append", default=[], metavar="NAME=PATH",
                    help="Another variant: the plugin file PATH, run as variant NAME (repeatable; name it in --variants).")
    args = ap.parse_args(argv)

    from verifiers.engine import ensure_engine  # noqa: PLC0415

    store = RunStore(args.run)
    key = args.repo or store.repo_keys()[0]
    env = load_env(store, key)
    runner = runner_for(env.spec.test_cmd)
    client = ensure_engine(quiet=True)
    worker = Worker(client, env.tag, SandboxLimits(timeout_s=args.timeout, mem="4g"), session="bench-coverage")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    walls: dict[str, list[float]] = {v: [] for v in variants}
    cpus: dict[str, list[float]] = {v: [] for v in variants}
    maps: dict[str, dict] = {}
    sizes: dict[str, int] = {}
    if "image" not in variants:  # the run's own map (its baseline's coverage run) stands for it
        from factory.schema import CoverageEntry  # noqa: PLC0415
        from factory.store import read_records  # noqa: PLC0415

        base_map: dict[str, dict[int, frozenset[str]]] = {}
        for e in read_records(store.repo(key).coverage, CoverageEntry):
            ids = frozenset(i for i in e.nodeids if i != OUTSIDE)  # set aside as in the tree's (_map)
            if ids:
                base_map.setdefault(e.file, {})[e.line] = ids
        maps["image"] = base_map
    try:
        worker.start()
        files = {"tree": _PLUGIN, **{n: Path(p) for n, p in (x.split("=", 1) for x in args.plugin)}}
        for name, path in files.items():
            worker.put(f"/tf-out/tf_report_{name}.py", path.read_bytes())
        for rep in range(args.reps):
            for v in variants:
                # treecov: the tree's plugin on coverage.py's tracer (TF_COVERAGE_CORE=coverage), where the
                # Python (3.12+) would give it sys.monitoring: the two tracers on one image and one map.
                pv = "tree" if v == "treecov" else v
                own = pv in files
                plugins = (f"tf_report_{pv}",) if own else ("tf_report",)
                # `times`: the session's CPU seconds (user + system), which a loaded machine inflates
                # far less than wall time.
                cmd = runner.command(Selection(), plugins=plugins) + "; times"
                env_vars = {"PYTHONPATH": "/tf-out"} if own else {}
                if args.hashseed is not None:
                    env_vars["PYTHONHASHSEED"] = str(args.hashseed)
                if v != "plain":
                    env_vars["TF_COVERAGE"] = "1"
                if v == "treecov":
                    env_vars["TF_COVERAGE_CORE"] = "coverage"
                t0 = time.perf_counter()
                run, report = worker.run_tests(cmd, env=env_vars, report="/tf-out/report.jsonl")
                wall = time.perf_counter() - t0
                if run.status != "ok":
                    print(f"{v} run {rep + 1}: {run.status} {run.reason}", file=sys.stderr)
                walls[v].append(wall)
                cpus[v].append(_cpu_seconds(run.log_tail))
                if v != "plain" and v not in maps:
                    maps[v] = _map(report)
                    if v == "tree" and args.install and "image" in maps:
                        if _agree(maps["image"], maps["tree"])["maps_identical"]:
                            _install(store, key, report.coverage or {})
                        else:
                            print("maps differ: not installed", file=sys.stderr, flush=True)
                    sizes[v] = sum(len(ls) for ls in (report.coverage or {}).values())
                print(f"{v} run {rep + 1}: {wall:.1f}s wall, {cpus[v][-1]:.1f}s CPU, {len(run.results)} results",
                      file=sys.stderr, flush=True)
    finally:
        worker.close()

    med = {v: statistics.median(w) for v, w in walls.items()}
    cmed = {v: statistics.median(c) for v, c in cpus.items()}
    t = Table(title=f"coverage run: {key} ({env.tag}), median of {args.reps}")
    t.add_column("run")
    t.add_column("median wall s", justify="right")
    t.add_column("all runs s", justify="right")
    t.add_column("÷ plain", justify="right")
    t.add_column("median CPU s", justify="right")
    t.add_column("CPU ÷ plain", justify="right")
    for v in variants:
        t.add_row(v, f"{med[v]:.1f}", ", ".join(f"{x:.1f}" for x in walls[v]),
                  f"{med[v] / med['plain']:.2f}x" if "plain" in med else "", f"{cmed[v]:.1f}",
                  f"{cmed[v] / cmed['plain']:.2f}x" if "plain" in cmed and cmed["plain"] else "")
    Console().print(t)
    if "image" in maps and "tree" in maps:
        print(json.dumps({**_agree(maps["image"], maps["tree"]),
                          "tree_lines_only_outside_tests": sizes.get("tree", 0) - sum(len(v) for v in maps["tree"].values())}))
    for v in maps:
        if v not in ("image", "tree") and "tree" in maps:
            flat = {(f, n): ids for f, ls in maps[v].items() for n, ids in ls.items()}
            tree = {(f, n): ids for f, ls in maps["tree"].items() for n, ids in ls.items()}
            differ = sorted(k for k in set(flat) | set(tree) if flat.get(k) != tree.get(k))
            print(json.dumps({"variant": v, "same_map_as_tree": not differ, "files": len(maps[v]),
                              "pairs": sum(len(ids) for ids in flat.values()),
                              "differences": [[f, n, sorted(flat.get((f, n), set()) ^ tree.get((f, n), set()))[:3]]
                                              for f, n in differ[:5]]}))
    if args.json:
        Path(args.json).write_text(json.dumps({"walls": walls, "median": med, "cpu": cpus, "median_cpu": cmed}))
    if args.maps:
        Path(args.maps).mkdir(parents=True, exist_ok=True)
        for v, m in maps.items():
            flat = {f: {str(n): sorted(ids) for n, ids in ls.items()} for f, ls in m.items()}
            (Path(args.maps) / f"{v}.json").write_text(json.dumps(flat, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
