"""Mutation yield: the share of each operator's candidates that validate, from a run directory.

The table that decides which operators earn their place. Reads candidates.parquet and
validations.parquet of every repository in the run (``factory mutate`` then ``factory validate``).

    python bench/mutation_yield.py --run runs/demo
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import polars as pl
from rich.console import Console
from rich.table import Table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    ap.add_argument("--markdown", action="store_true", help="Print a Markdown table (for RESULTS.md).")
    args = ap.parse_args(argv)
    frames = []
    for rd in sorted((Path(args.run) / "repos").iterdir()):
        c, v = rd / "candidates.parquet", rd / "validations.parquet"
        if c.exists() and v.exists():
            cands = pl.read_parquet(c).select("candidate_id", "operator", "origin")
            vals = pl.read_parquet(v).select("candidate_id", "verdict", "reason")
            frames.append(cands.join(vals, on="candidate_id", how="inner"))
    if not frames:
        print(f"{args.run}: no repository with both candidates and validations", file=sys.stderr)
        return 1
    df = pl.concat(frames).filter(pl.col("origin") == "mutation")
    reasons = sorted(df["reason"].unique().to_list())
    table = (df.group_by("operator").agg(
        pl.len().alias("candidates"),
        (pl.col("verdict") == "accepted").sum().alias("accepted"),
        *[(pl.col("reason") == r).sum().alias(r) for r in reasons if r != "accepted"],
    ).with_columns((pl.col("accepted") / pl.col("candidates") * 100).round(1).alias("yield %"))
        .sort(["yield %", "candidates"], descending=True))
    total = df.height
    acc = int((df["verdict"] == "accepted").sum())
    if args.markdown:
        cols = table.columns
        print("| " + " | ".join(cols) + " |")
        print("|" + "---|" * len(cols))
        for row in table.iter_rows():
            print("| " + " | ".join(str(x) for x in row) + " |")
        print(f"| **all** | {total} | {acc} | " + " | ".join("" for _ in cols[3:-1]) + f" | {100 * acc / total:.1f} |")
        return 0
    t = Table(title=f"mutation yield in {args.run}: {acc}/{total} accepted ({100 * acc / total:.1f}%)")
    for col in table.columns:
        t.add_column(col, justify="left" if col == "operator" else "right")
    for row in table.iter_rows():
        t.add_row(*[str(x) for x in row])
    Console().print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
