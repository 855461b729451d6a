"""Inspect a published dataset folder: a stats table in the terminal and PNG plots.

``inspect_dataset(DIR)`` reads the parquet shards with polars (the same files the Hub serves),
prints tables with rich (tasks per split, repository, source and operator; F2P counts and
difficulty features) and saves plots with matplotlib's Agg backend. Validation yield comes from
the run that wrote the folder (named in its ``.taskfactory.json``) or from ``run_dir``; when the
run's validations are missing, the yield is left out and the report says so.

``print_statements(DIR)`` (``factory inspect --statements``) prints tasks' problem statements for
an audit: a dataset folder or a run (its ``instances.parquet``), spread over sources, each with
its failing tests and how the statement was made (issue text, evidence, what the leak check
rejected or redacted).

Nothing here writes to the dataset folder unless ``plots_dir`` points into it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from factory.publish_errors import EmptyRunError
from factory.store import RunStore

__all__ = ["InspectReport", "inspect_dataset", "print_statements", "read_dataset_dir", "read_tasks", "select_statements",
           "validation_yield"]


@dataclass
class InspectReport:
    num_rows: int
    splits: dict[str, int]
    per_repo: pl.DataFrame
    per_source: pl.DataFrame
    f2p: dict[str, float]  # min, median, mean, max
    yield_: pl.DataFrame | None
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def validation_yield(run_dir: Path) -> pl.DataFrame | None:
    """Per repository: candidates, validated, accepted, rejected, error, yield; None without data."""
    store = RunStore(run_dir)
    rows = []
    for key in store.repo_keys():
        rd = store.repo(key)
        num_cand = pl.scan_parquet(rd.candidates).select(pl.len()).collect().item() if rd.candidates.exists() else None
        if rd.validations.exists():
            v = pl.read_parquet(rd.validations, columns=["verdict"])
            counts = dict(v.group_by("verdict").len().iter_rows())
        else:
            counts = None
        if num_cand is None and counts is None:
            continue
        counts = counts or {}
        validated = sum(counts.values())
        accepted = counts.get("accepted", 0)
        rows.append({
            "repo": key, "candidates": num_cand if num_cand is not None else validated, "validated": validated,
            "accepted": accepted, "rejected": counts.get("rejected", 0), "error": counts.get("error", 0),
            "yield": accepted / validated if validated else 0.0,
        })
    return pl.DataFrame(rows) if rows else None


def read_dataset_dir(dataset_dir: Path) -> pl.DataFrame:
    """Every shard under DIR/data as one frame (polars reads the Hub layout directly)."""
    shards = sorted(Path(dataset_dir).glob("data/*.parquet"))
    if not shards:
        raise EmptyRunError(f"{dataset_dir} has no data/*.parquet shards: is it a published dataset folder?")
    return pl.concat([pl.read_parquet(s) for s in shards], how="vertical")


def _plot_bars(path: Path, labels: list[str], values: list[float], title: str, xlabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, max(2.0, 0.35 * len(labels) + 1)))
    ax.barh(labels, values, color="#4C72B0")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _plot_hist(path: Path, values: list[int], title: str, xlabel: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    top = max(values) if values else 1
    ax.hist(values, bins=range(0, top + 2), color="#55A868", edgecolor="white")
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("tasks")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def inspect_dataset(dataset_dir: str | Path, plots_dir: str | Path | None = None, run_dir: str | Path | None = None,
                    console=None, plots: bool = True) -> InspectReport:
    """Print stats for a dataset folder and save plots (default: DIR/../<name>-plots/)."""
    from rich.console import Console
    from rich.table import Table

    dataset_dir = Path(dataset_dir)
    df = read_dataset_dir(dataset_dir)
    console = console or Console()
    notes: list[str] = []
    if run_dir is None:
        marker = dataset_dir / ".taskfactory.json"
        if marker.exists():
            run_dir = json.loads(marker.read_text()).get("run")
    yield_df = validation_yield(Path(run_dir)) if run_dir and Path(run_dir).exists() else None
    if yield_df is None:
        notes.append("validation yield: no validations.parquet found for the run; left out")

    has_split = "split" in df.columns
    splits = dict(df.group_by("split").len().iter_rows()) if has_split else {"all": df.height}
    per_repo = df.group_by("repo").agg(pl.len().alias("tasks"), pl.col("num_f2p").mean().alias("mean_f2p")).sort("repo")
    per_source = df.group_by("source", "operator").len().sort("source", "operator")
    f2p = df["num_f2p"]
    f2p_stats = {"min": float(f2p.min()), "median": float(f2p.median()), "mean": float(f2p.mean()), "max": float(f2p.max())}

    t = Table(title=f"{dataset_dir}: {df.height} tasks")
    for col in ("split", "tasks"):
        t.add_column(col)
    for s, n in sorted(splits.items()):
        t.add_row(s, str(n))
    console.print(t)
    t = Table(title="per repository")
    for col in ("repository", "tasks", "mean F2P"):
        t.add_column(col)
    for repo, n, mean_f2p in per_repo.iter_rows():
        t.add_row(repo, str(n), f"{mean_f2p:.1f}")
    console.print(t)
    t = Table(title="per source and operator")
    for col in ("source", "operator", "tasks"):
        t.add_column(col)
    for src, op, n in per_source.iter_rows():
        t.add_row(src, op or "-", str(n))
    console.print(t)
    t = Table(title="difficulty")
    for col in ("feature", "min", "median", "mean", "max"):
        t.add_column(col)
    for col in ("num_f2p", "num_p2p", "num_lines_changed", "num_hunks", "num_files_changed", "test_s"):
        if col in df.columns:
            s = df[col]
            t.add_row(col, f"{s.min():g}", f"{s.median():g}", f"{s.mean():.2f}", f"{s.max():g}")
    console.print(t)
    if yield_df is not None:
        t = Table(title="validation yield")
        for col in ("repository", "candidates", "validated", "accepted", "rejected", "error", "yield"):
            t.add_column(col)
        for r in yield_df.iter_rows(named=True):
            t.add_row(r["repo"], str(r["candidates"]), str(r["validated"]), str(r["accepted"]), str(r["rejected"]),
                      str(r["error"]), f"{r['yield']:.1%}")
        console.print(t)
    for n in notes:
        console.print(f"[yellow]{n}[/yellow]")

    report = InspectReport(num_rows=df.height, splits=splits, per_repo=per_repo, per_source=per_source,
                           f2p=f2p_stats, yield_=yield_df, notes=notes)
    if plots:
        out = Path(plots_dir) if plots_dir else dataset_dir.resolve().parent / f"{dataset_dir.resolve().name}-plots"
        out.mkdir(parents=True, exist_ok=True)
        report.plots.append(_plot_bars(out / "tasks_per_repo.png", per_repo["repo"].to_list(),
                                       per_repo["tasks"].to_list(), "Tasks per repository", "tasks"))
        labels = [f"{s}/{o}" if o else s for s, o in zip(per_source["source"], per_source["operator"], strict=True)]
        report.plots.append(_plot_bars(out / "tasks_per_source.png", labels, per_source["len"].to_list(),
                                       "Tasks per source / operator", "tasks"))
        report.plots.append(_plot_hist(out / "f2p_counts.png", f2p.to_list(), "FAIL_TO_PASS tests per task",
                                       "FAIL_TO_PASS count"))
        if yield_df is not None:
            report.plots.append(_plot_bars(out / "validation_yield.png", yield_df["repo"].to_list(),
                                           [100 * y for y in yield_df["yield"].to_list()],
                                           "Validation yield", "% of validated candidates accepted"))
        console.print(f"plots: {', '.join(str(p) for p in report.plots)}")
    return report


def read_tasks(path: str | Path) -> pl.DataFrame:
    """Tasks from a dataset folder (its shards), a run directory (``instances.parquet``) or a parquet file."""
    path = Path(path)
    if path.is_file():
        return pl.read_parquet(path)
    if (path / "instances.parquet").exists() and not list(path.glob("data/*.parquet")):
        return pl.read_parquet(path / "instances.parquet")
    return read_dataset_dir(path)


def select_statements(df: pl.DataFrame, limit: int = 30, source: str | None = None) -> pl.DataFrame:
    """Up to ``limit`` rows spread over sources (round robin, each source in a stable hashed order)."""
    import hashlib

    if source:
        df = df.filter(pl.col("source") == source)
    df = df.with_columns(pl.col("instance_id").map_elements(
        lambda i: hashlib.sha256(i.encode()).hexdigest(), return_dtype=pl.String).alias("_h")).sort("_h")
    df = df.with_columns(pl.col("_h").rank("ordinal").over("source").alias("_r")).sort("_r", "source")
    return df.head(limit).drop("_h", "_r")


def print_statements(path: str | Path, console=None, limit: int = 30, source: str | None = None) -> int:
    """Print problem statements for an audit; returns how many were printed."""
    from rich.console import Console

    console = console or Console()
    df = read_tasks(path)
    rows = select_statements(df, limit, source)
    for k, r in enumerate(rows.iter_rows(named=True), 1):
        try:
            prov = json.loads(r.get("provenance") or "{}")
        except json.JSONDecodeError:
            prov = {}
        made = prov.get("problem_statement") or {}
        how = made.get("source", "?") if isinstance(made, dict) else "?"
        if isinstance(made, dict) and made.get("rejected"):
            how += f"; rejected {', '.join(made['rejected'])}"
        if isinstance(made, dict) and made.get("leaks_redacted"):
            how += f"; {made['leaks_redacted']} message(s) redacted"
        f2p = list(r.get("FAIL_TO_PASS") or [])
        # Plain text, never cropped: an audit reads every word, whatever the terminal's width.
        console.print(f"── [{k}/{rows.height}] {r['instance_id']} · {r['source']} · statement from {how}",
                      highlight=False, soft_wrap=True, markup=False)
        console.print(f"   FAIL_TO_PASS ({len(f2p)}): {', '.join(f2p[:3])}{' …' if len(f2p) > 3 else ''}",
                      highlight=False, soft_wrap=True, markup=False)
        console.print("", *("   " + ln for ln in (r["problem_statement"] or "(empty)").splitlines()), "",
                      sep="\n", highlight=False, soft_wrap=True, markup=False)
    counts = dict(df.group_by("source").len().iter_rows())
    console.print(f"{rows.height} of {df.height} statements ({', '.join(f'{k} {v}' for k, v in sorted(counts.items()))})",
                  highlight=False)
    return rows.height
