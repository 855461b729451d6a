"""Check a run's mutation candidates: every one applies on a fresh checkout and compiles.

For each repository of the run with candidates: a fresh clone at ``base_commit``, then for every
candidate ``git apply --check`` and, after applying, ``compile()`` of each patched file; prints a
table per operator family (candidates, applies, compiles) and fails if any does not.

    python bench/mutate_check.py --run runs/demo
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from factory.repo import checkout
from factory.schema import Candidate, RepoSpec
from factory.store import RunStore, read_records
from mutators import OPERATOR_CLASSES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True)
    args = ap.parse_args(argv)
    family = {op.name: op.family for op in OPERATOR_CLASSES}
    store = RunStore(args.run)
    counts: dict[str, Counter] = {}
    bad: list[str] = []
    for key in store.repo_keys():
        rd = store.repo(key)
        spec = rd.read_spec()
        if not rd.candidates.exists() or spec is None:
            continue
        cands = [c for c in read_records(rd.candidates, Candidate) if c.origin == "mutation"]
        co = checkout(RepoSpec.parse(spec))
        with tempfile.TemporaryDirectory(prefix="mutate-check-") as d:
            tree = Path(d) / "tree"
            subprocess.run(["git", "clone", "-q", str(co.path), str(tree)], check=True)
            subprocess.run(["git", "-C", str(tree), "checkout", "-q", co.commit], check=True)
            for c in cands:
                fam = family.get(c.operator, "?")
                n = counts.setdefault(fam, Counter())
                n["candidates"] += 1
                pf = Path(d) / "c.diff"
                pf.write_text(c.patch)
                if subprocess.run(["git", "-C", str(tree), "apply", "--check", str(pf)], capture_output=True).returncode:
                    bad.append(f"{c.candidate_id} does not apply")
                    continue
                n["applies"] += 1
                subprocess.run(["git", "-C", str(tree), "apply", str(pf)], check=True)
                try:
                    compile((tree / c.file).read_text(), c.file, "exec")
                    n["compiles"] += 1
                except SyntaxError as e:
                    bad.append(f"{c.candidate_id} does not compile: {e}")
                subprocess.run(["git", "-C", str(tree), "checkout", "-q", "--", "."], check=True)
    t = Table(title=f"mutation candidates in {args.run}")
    for col in ("family", "candidates", "git apply --check", "compiles"):
        t.add_column(col, justify="left" if col == "family" else "right")
    for fam in sorted(counts):
        n = counts[fam]
        t.add_row(fam, str(n["candidates"]), str(n["applies"]), str(n["compiles"]))
    Console().print(t)
    for b in bad[:20]:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
