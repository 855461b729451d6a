"""The mutate stage: a checkout and its baseline in, candidate records out.

``mutate_repo`` reads the files the coverage map names, mutates each (``mutators.engine``) and
turns the mutants into ``factory.schema.Candidate`` records. It writes nothing: the caller owns
the run directory. Output depends only on the file contents, the coverage map, the stable set
and the config, so two runs with the same seed give identical records in the same order.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Collection, Sequence
from pathlib import Path

from factory.schema import Candidate, CoverageEntry, content_hash
from mutators.config import MutateConfig, MutateResult
from mutators.engine import Mutant, class_index, mutate_source, stable_int
from mutators.errors import CheckoutError
from mutators.ops import make_operators
from mutators.targets import coverage_by_file, is_test_file, read_source, tracked_files
from mutators.treesitter import language_of_path, mutate_ts_source, ts_operators

__all__ = ["mutate_repo", "to_candidate"]


def to_candidate(m: Mutant, repo: str, base_commit: str, seed: int) -> Candidate:
    """A mutant as a candidate; its id is a content hash of what it is, not of when it ran."""
    provenance = {
        "explanation": m.explanation,
        "family": m.family,
        "unit_kind": m.unit_kind,
        "location": {"line": m.line, "column": m.column, "variant": m.variant},
    }
    return Candidate(
        candidate_id=content_hash("mutation", repo, base_commit, m.file, m.patch),
        repo=repo,
        base_commit=base_commit,
        origin="mutation",
        patch=m.patch,
        operator=m.operator,
        file=m.file,
        symbol=m.symbol,
        start_line=m.start_line,
        end_line=m.end_line,
        seed=seed,
        covering_tests=m.covering_tests,
        provenance=json.dumps(provenance, sort_keys=True),
    )


def mutate_repo(
    checkout: Path,
    repo: str,
    base_commit: str,
    coverage: Sequence[CoverageEntry],
    stable_passing: Collection[str],
    config: MutateConfig,
) -> MutateResult:
    """Candidates for one repository snapshot.

    Only lines that stable passing tests execute are mutated, never test files, at most
    ``config.max_per_function`` per function or class. Files that cannot be mutated are
    counted as ``skipped_<reason>`` in ``stats`` (parse_error, non_utf8, symlink, ...).
    """
    checkout = Path(checkout)
    if not checkout.is_dir():
        raise CheckoutError(f"checkout {checkout} is not a directory")
    stats: Counter[str] = Counter()
    by_file = coverage_by_file(coverage, stable_passing)
    tracked = tracked_files(checkout)
    operators = make_operators(config.operators)
    sources: dict[str, str] = {}
    for rel in sorted(by_file):
        stats["files_covered"] += 1
        if is_test_file(rel, config.test_file_patterns):
            stats["skipped_test_file"] += 1
            continue
        source, reason = read_source(checkout, rel, max_bytes=config.max_file_bytes, tracked=tracked)
        if reason is not None:
            stats[f"skipped_{reason}"] += 1
            continue
        sources[rel] = source
    # Which methods each class of the repository defines, so remove_method_override knows an
    # override of a base imported from another module. Every tracked module counts, covered or
    # not (a base's own methods need not run for an override's removal to be noticed).
    others = []
    for rel in sorted(tracked or ()):
        if rel.endswith(".py") and rel not in sources and not is_test_file(rel, config.test_file_patterns):
            text, reason = read_source(checkout, rel, max_bytes=config.max_file_bytes, tracked=tracked)
            if reason is None:
                others.append(text)
    classes = class_index([*sources.values(), *others])
    candidates: list[Candidate] = []
    for rel, source in sources.items():
        language = language_of_path(rel)
        if language is not None:  # JavaScript, TypeScript, Go: tree-sitter
            result = mutate_ts_source(source, rel, language, ts_operators(config.operators, language),
                                      seed=config.seed, max_per_function=config.max_per_function,
                                      coverage=by_file[rel])
        else:
            result = mutate_source(
                source, rel, operators, seed=config.seed, max_per_function=config.max_per_function,
                coverage=by_file[rel], classes=classes,
            )
        if result.skipped is not None:
            stats[f"skipped_{result.skipped}"] += 1
            continue
        stats["files_mutated"] += 1
        stats.update(result.counts)
        candidates.extend(to_candidate(m, repo, base_commit, config.seed) for m in result.mutants)

    if config.max_candidates is not None and len(candidates) > config.max_candidates:
        rng = random.Random(stable_int("sample", config.seed, repo, base_commit))
        keep = set(rng.sample(range(len(candidates)), config.max_candidates))
        stats["skipped_over_max_candidates"] += len(candidates) - len(keep)
        candidates = [c for i, c in enumerate(candidates) if i in keep]
    stats["candidates"] = len(candidates)
    return MutateResult(candidates=candidates, stats=dict(sorted(stats.items())))
