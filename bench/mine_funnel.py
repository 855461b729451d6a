"""The mining funnel on a real repository, against a count made without ``recognise()``.

Ground truth ("merged PRs that touch both tests and code"): every first-parent commit whose
message names a pull request — ``Merge pull request #N``, ``Merge #N`` (bors), a subject ending in
``(#N)`` (squash merges and GitHub merges titled with the PR's title), or a ``PR-URL:``/
``Pull-Request:`` trailer — whose diff against its first parent touches a test file and a code
file (``miners.diffs.file_kind``/``is_test_path``, the definitions the whole factory uses). The
regexes here are this script's own, so a PR that ``recognise()`` misses shows up as missing.

    .venv/bin/python bench/mine_funnel.py /work/repos/humanize [--mirror] [--commits] [--json OUT]

Prints the miner's funnel (``miners.local.funnel``), the ground truth, the share of it that became
candidates, and each missed PR with the reason the miner gave.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from miners.diffs import file_kind, is_test_path  # noqa: E402

_PR_RES = (re.compile(r"^Merge pull request #(\d+)"), re.compile(r"^Merge #(\d+)\s*$"),
           re.compile(r"\(#(\d+)\)\s*$"))
_TRAILER = re.compile(r"^(?:PR-URL|Pull-Request|PR):\s*\S*?(?:/pull/|#)(\d+)\s*$", re.MULTILINE | re.IGNORECASE)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True).stdout.decode("utf-8",
                                                                                                          "replace")


def ground_truth(repo: Path) -> dict[str, dict]:
    """sha -> {pr, subject, tests_and_code} for every first-parent commit that names a PR."""
    out = {}
    log = _git(repo, "log", "--first-parent", "--format=%x1e%H%x1f%P%x1f%B")
    for rec in log.split("\x1e")[1:]:
        sha, parents, msg = rec.split("\x1f", 2)
        subject = msg.strip().split("\n", 1)[0]
        pr = None
        for rx in _PR_RES:
            m = rx.search(subject)
            if m:
                pr = int(m[1])
                break
        if pr is None:
            m = _TRAILER.search(msg)
            pr = int(m[1]) if m else None
        if pr is None or not parents.split():
            continue
        names = _git(repo, "diff", "--name-only", "--no-renames", parents.split()[0], sha).split("\n")
        names = [n for n in names if n]
        tests = any(is_test_path(n) for n in names)
        code = any(not is_test_path(n) and file_kind(n) == "code" for n in names)
        out[sha] = {"pr": pr, "subject": subject, "tests_and_code": tests and code}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("repo", type=Path)
    ap.add_argument("--mirror", action="store_true")
    ap.add_argument("--commits", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    import miners
    from miners.local import funnel

    t0 = time.monotonic()
    res = miners.mine_local(a.repo, repo=a.repo.name, include_commits=True if a.commits else None)
    mine_s = time.monotonic() - t0
    truth = ground_truth(a.repo)
    want = {s: t for s, t in truth.items() if t["tests_and_code"]}
    got = {json.loads(c.provenance)["merge_commit"] for c in res.candidates}
    hit = [s for s in want if s in got]
    reasons = dict(res.skipped)
    missed = [(s[:10], want[s]["pr"], reasons.get(s, "not recognised"), want[s]["subject"][:70])
              for s in want if s not in got]
    print(f"{a.repo.name}: mined in {mine_s:.2f}s")
    print(funnel(res.stats))
    print(f"ground truth: {len(truth)} first-parent commits name a PR; {len(want)} touch tests and code; "
          f"{len(hit)} became candidates ({100 * len(hit) / max(1, len(want)):.1f}%)")
    by_reason: dict[str, int] = {}
    for m in missed:
        by_reason[m[2]] = by_reason.get(m[2], 0) + 1
    print("missed by reason:", dict(sorted(by_reason.items(), key=lambda kv: -kv[1])))
    for m in missed:
        print("  missed", *m)
    report = {"repo": str(a.repo), "stats": res.stats, "truth_prs": len(truth), "truth_tests_and_code": len(want),
              "candidates_of_truth": len(hit), "missed": missed, "mine_s": mine_s}
    if a.mirror:
        t0 = time.monotonic()
        mir = miners.mine_mirror(a.repo, repo=a.repo.name, include_commits=True if a.commits else None)
        print(f"mirror in {time.monotonic() - t0:.2f}s:", funnel(mir.stats))
        report["mirror"] = mir.stats
    if a.json:
        a.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
