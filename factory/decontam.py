"""Decontamination: keep instances that overlap a named benchmark out of a published dataset.

Two kinds of overlap, each with its own reason:

- ``benchmark_commit``: same repository (by name, owner optional) and the same commit as a
  benchmark instance (our ``base_commit`` or ``upstream_commit`` equals its ``base_commit``);
- ``benchmark_patch``: the gold patch's changed lines overlap a benchmark patch's by Jaccard
  similarity >= ``threshold`` (an inverted index over changed lines keeps this near-linear).

A benchmark is a local file (.jsonl, .json or .parquet with SWE-bench columns: at least
``instance_id``, ``repo``, ``base_commit``, ``patch``) or a Hub dataset id (every split is read).
This module does not decide what is published; it returns ids and reasons.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from factory.publish_errors import BenchmarkLoadError

__all__ = ["BENCHMARK_COLUMNS", "Benchmark", "DecontamReport", "changed_lines", "find_overlaps", "load_benchmark"]

BENCHMARK_COLUMNS: tuple[str, ...] = ("instance_id", "repo", "base_commit", "patch")

# Lines this short ("+", "-    )", "+}") say nothing about which fix a patch is.
_MIN_LINE_CHARS = 6


@dataclass(frozen=True)
class Benchmark:
    name: str
    rows: pl.DataFrame  # BENCHMARK_COLUMNS


@dataclass
class DecontamReport:
    num_checked: int = 0
    removed: dict[str, int] = field(default_factory=dict)  # reason -> count
    # (our instance_id, reason, benchmark name, benchmark instance_id)
    matches: list[tuple[str, str, str, str]] = field(default_factory=list)
    benchmarks: dict[str, int] = field(default_factory=dict)  # name -> rows read

    @property
    def removed_ids(self) -> set[str]:
        return {m[0] for m in self.matches}


def load_benchmark(source: str) -> Benchmark:
    """Read a benchmark's SWE-bench columns from a local file or a Hub dataset id."""
    path = Path(source)
    try:
        if path.suffix in (".jsonl", ".json", ".parquet") or path.exists():
            if not path.exists():
                raise BenchmarkLoadError(f"benchmark file {source} does not exist")
            if path.suffix == ".parquet":
                df = pl.read_parquet(path)
            elif path.suffix == ".jsonl":
                df = pl.DataFrame([json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()])
            elif path.suffix == ".json":
                df = pl.DataFrame(json.loads(path.read_text()))
            else:
                raise BenchmarkLoadError(f"benchmark file {source}: expected .jsonl, .json or .parquet")
        else:
            import datasets

            ds = datasets.load_dataset(source)
            frames = [pl.from_arrow(ds[s].data.table.select(list(BENCHMARK_COLUMNS))) for s in ds]
            df = pl.concat(frames, how="vertical_relaxed")
    except BenchmarkLoadError:
        raise
    except Exception as exc:  # any reader's failure becomes one documented error, with its cause
        raise BenchmarkLoadError(f"could not load benchmark {source!r}: {exc}") from exc
    missing = [c for c in BENCHMARK_COLUMNS if c not in df.columns]
    if missing:
        raise BenchmarkLoadError(f"benchmark {source!r} lacks SWE-bench columns {missing}")
    rows = df.select([pl.col(c).cast(pl.String).fill_null("") for c in BENCHMARK_COLUMNS])
    return Benchmark(name=source, rows=rows)


def changed_lines(patch: str) -> set[str]:
    """The set of meaningful changed lines (sign kept, whitespace collapsed)."""
    out = set()
    for line in patch.splitlines():
        if line.startswith(("+++", "---")) or not line.startswith(("+", "-")):
            continue
        norm = line[0] + " ".join(line[1:].split())
        if len(norm) >= _MIN_LINE_CHARS:
            out.add(norm)
    return out


def _repo_name(repo: str) -> str:
    return repo.strip().lower().removesuffix(".git").rstrip("/").rsplit("/", 1)[-1]


def _repo_matches(ours: str, theirs: str) -> bool:
    """``astropy/astropy`` matches ours ``astropy``, ``astropy/astropy``, ``astropy-1a2b3c4d``."""
    o, t = ours.strip().lower().removesuffix(".git"), _repo_name(theirs)
    if not t:
        return False
    if o == theirs.lower() or _repo_name(o) == t:
        return True
    base = _repo_name(o)
    return base.startswith(t + "-") and len(base) - len(t) == 9  # RepoSpec.key: name-<8 hex>


def find_overlaps(df: pl.DataFrame, benchmarks: list[Benchmark], threshold: float = 0.8) -> DecontamReport:
    """Instances of ``df`` (TaskInstance columns) that overlap any benchmark, with reasons."""
    report = DecontamReport(num_checked=df.height)
    ours = df.select("instance_id", "repo", "base_commit", "upstream_commit", "patch").to_dicts()
    seen: set[str] = set()
    for bench in benchmarks:
        report.benchmarks[bench.name] = bench.rows.height
        by_commit: dict[str, list[dict]] = defaultdict(list)
        index: dict[str, list[int]] = defaultdict(list)  # line digest -> benchmark rows
        bench_rows = bench.rows.to_dicts()
        bench_sizes = []
        for j, b in enumerate(bench_rows):
            if b["base_commit"]:
                by_commit[b["base_commit"].lower()].append(b)
            lines = {hashlib.blake2b(x.encode(), digest_size=8).digest() for x in changed_lines(b["patch"])}
            bench_sizes.append(len(lines))
            for h in lines:
                index[h].append(j)
        for row in ours:
            hit = None
            for commit in {row["base_commit"], row["upstream_commit"]} - {""}:
                for b in by_commit.get(commit.lower(), ()):
                    if _repo_matches(row["repo"], b["repo"]):
                        hit = ("benchmark_commit", b["instance_id"])
                        break
                if hit:
                    break
            if hit is None:
                lines = {hashlib.blake2b(x.encode(), digest_size=8).digest() for x in changed_lines(row["patch"])}
                shared: dict[int, int] = defaultdict(int)
                for h in lines:
                    for j in index.get(h, ()):
                        shared[j] += 1
                best, best_j = 0.0, -1
                for j, n in shared.items():
                    sim = n / (len(lines) + bench_sizes[j] - n)
                    if sim > best:
                        best, best_j = sim, j
                if best_j >= 0 and best >= threshold:
                    hit = ("benchmark_patch", bench_rows[best_j]["instance_id"])
            if hit and row["instance_id"] not in seen:
                seen.add(row["instance_id"])
                report.removed[hit[0]] = report.removed.get(hit[0], 0) + 1
                report.matches.append((row["instance_id"], hit[0], bench.name, hit[1]))
    return report
