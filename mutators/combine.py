"""Harder tasks from easier ones: 2-3 validated bugs of one file, applied together.

A combination is made only of bugs whose hunks (context lines included) do not overlap, so each
parent's diff still says exactly what it changed; the combined diff is recomputed from the
original file, must compile, and goes through validation again like any other candidate.
"""

from __future__ import annotations

import ast
import itertools
import json
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from factory.schema import Candidate, content_hash
from mutators.config import MutateConfig, MutateResult
from mutators.diff import Hunk, PatchError, apply_patch, file_diff, parse_patch, split_lines
from mutators.engine import stable_int
from mutators.errors import CheckoutError
from mutators.targets import read_source

__all__ = ["combine"]


def _ranges(hunks: list[Hunk]) -> list[tuple[int, int]]:
    return [h.old_range for h in hunks]


def _disjoint(groups: Sequence[list[tuple[int, int]]]) -> bool:
    spans = sorted(r for g in groups for r in g)
    # Touching hunks are merged by diff tools; require at least one line between them.
    return all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))


def combine(validated: Sequence[Candidate], checkout: Path, config: MutateConfig) -> MutateResult:
    """Combined candidates (origin ``combined``, ``parents`` = the ids) from validated bugs.

    ``validated`` are mutation candidates the verifiers accepted, on the snapshot checked out
    at ``checkout``. Bugs are grouped by (repo, base_commit, file); within a group the choice of
    combinations is seeded by ``config.seed`` and the file, so it is reproducible.
    """
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise CheckoutError(f"checkout {checkout} is not a directory")
    cfg = config.combine
    stats: Counter[str] = Counter()
    groups: dict[tuple[str, str, str], list[Candidate]] = defaultdict(list)
    seen_ids: set[str] = set()
    for c in validated:
        if c.origin != "mutation":
            stats["skipped_not_mutation"] += 1
            continue
        if c.candidate_id in seen_ids:
            stats["skipped_duplicate"] += 1
            continue
        seen_ids.add(c.candidate_id)
        groups[(c.repo, c.base_commit, c.file)].append(c)

    out: list[Candidate] = []
    made_ids: set[str] = set()
    for (repo, base_commit, rel), bugs in sorted(groups.items()):
        if len(bugs) < min(cfg.sizes):
            stats["skipped_file_too_few_bugs"] += 1
            continue
        source, reason = read_source(checkout, rel, max_bytes=config.max_file_bytes, tracked=None)
        if reason is not None:
            stats[f"skipped_{reason}"] += 1
            continue
        rng = random.Random(stable_int("combine", config.seed, repo, base_commit, rel))
        bugs = sorted(bugs, key=lambda c: (c.start_line, c.candidate_id))
        if len(bugs) > cfg.max_bugs_per_file:
            bugs = sorted(rng.sample(bugs, cfg.max_bugs_per_file), key=lambda c: (c.start_line, c.candidate_id))
        hunks: dict[str, list[Hunk]] = {}
        for c in bugs:
            parsed = parse_patch(c.patch)
            if list(parsed) != [rel]:
                stats["skipped_patch_not_single_file"] += 1
                continue
            hunks[c.candidate_id] = parsed[rel]
        bugs = [c for c in bugs if c.candidate_id in hunks]
        combos = [
            combo
            for size in cfg.sizes
            for combo in itertools.combinations(bugs, size)
            if _disjoint([_ranges(hunks[c.candidate_id]) for c in combo])
        ]
        rng.shuffle(combos)
        uses: Counter[str] = Counter()
        made = 0
        for combo in combos:
            if made >= cfg.max_per_file:
                break
            if any(uses[c.candidate_id] >= cfg.max_uses_per_bug for c in combo):
                continue
            cand = _combined(combo, hunks, source, rel, repo, base_commit, config.seed)
            if isinstance(cand, str):
                stats[f"skipped_{cand}"] += 1
                continue
            if cand.candidate_id in made_ids:
                stats["skipped_duplicate"] += 1
                continue
            made_ids.add(cand.candidate_id)
            uses.update(c.candidate_id for c in combo)
            out.append(cand)
            made += 1
    stats["candidates"] = len(out)
    return MutateResult(candidates=out, stats=dict(sorted(stats.items())))


def _combined(
    combo: Sequence[Candidate],
    hunks: dict[str, list[Hunk]],
    source: str,
    rel: str,
    repo: str,
    base_commit: str,
    seed: int,
) -> Candidate | str:
    all_hunks = [h for c in combo for h in hunks[c.candidate_id]]
    try:
        new_source = apply_patch(source, all_hunks)
    except PatchError:
        return "patch_mismatch"  # the checkout is not the snapshot these bugs were made on
    try:
        compile(ast.parse(new_source), rel, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return "no_compile"
    patch = file_diff(rel, split_lines(source), split_lines(new_source))
    parents = tuple(sorted(c.candidate_id for c in combo))
    operators = [c.operator for c in sorted(combo, key=lambda c: c.candidate_id)]
    provenance = {
        "explanation": "several bugs at once: " + "; ".join(
            json.loads(c.provenance).get("explanation", c.operator) for c in combo
        ),
        "operators": operators,
        "parents": list(parents),
    }
    symbols = sorted({c.symbol for c in combo})
    return Candidate(
        candidate_id=content_hash("combined", repo, base_commit, rel, patch),
        repo=repo,
        base_commit=base_commit,
        origin="combined",
        patch=patch,
        operator="+".join(operators),
        file=rel,
        symbol=",".join(symbols),
        start_line=min(c.start_line for c in combo),
        end_line=max(c.end_line for c in combo),
        seed=seed,
        covering_tests=tuple(sorted({t for c in combo for t in c.covering_tests})),
        parents=parents,
        provenance=json.dumps(provenance, sort_keys=True),
    )
