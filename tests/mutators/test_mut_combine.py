"""combine: 2-3 validated bugs of one file whose diffs do not overlap, as one new candidate."""

from __future__ import annotations

import subprocess

from mut_helpers import CALC, STABLE, TESTS, coverage_of, git

from factory.schema import content_hash
from mutators import CombineConfig, MutateConfig, combine, mutate_repo
from mutators.diff import apply_patch, parse_patch

OTHER = "def g(a, b):\n    if a > b:\n        return a - b\n    return b - a\n\n\ndef h(s):\n    return s.strip().lower()\n"


def _validated(repo_factory):
    repo, commit = repo_factory({"pkg/calc.py": CALC, "pkg/other.py": OTHER})
    coverage = coverage_of(CALC, "pkg/calc.py", TESTS) + coverage_of(
        OTHER, "pkg/other.py", {"g": "t::g", "h": "t::h"}
    )
    result = mutate_repo(repo, "calc", commit, coverage, STABLE | {"t::g", "t::h"}, MutateConfig(max_per_function=2))
    return repo, commit, result.candidates


def test_combined_bugs_apply_compile_and_keep_their_parents(repo_factory, tmp_path):
    repo, commit, validated = _validated(repo_factory)
    by_id = {c.candidate_id: c for c in validated}
    config = MutateConfig(combine=CombineConfig(max_per_file=6))
    result = combine(validated, repo, config)
    assert result.candidates and result.stats["candidates"] == len(result.candidates)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    sources = {"pkg/calc.py": CALC, "pkg/other.py": OTHER}
    for c in result.candidates:
        assert c.origin == "combined" and 2 <= len(c.parents) <= 3
        parents = [by_id[p] for p in c.parents]
        assert {p.file for p in parents} == {c.file}
        assert c.candidate_id == content_hash("combined", "calc", commit, c.file, c.patch)
        assert set(c.covering_tests) == {t for p in parents for t in p.covering_tests}
        assert git(clone, "apply", "--check", "-", input=c.patch).returncode == 0
        # The combination is exactly the parents' changes, applied together.
        src = sources[c.file]
        together = apply_patch(src, [h for p in parents for h in parse_patch(p.patch)[c.file]])
        assert apply_patch(src, parse_patch(c.patch)[c.file]) == together
        compile(together, c.file, "exec")
        # Their diffs do not overlap (context lines included).
        spans = sorted(h.old_range for p in parents for h in parse_patch(p.patch)[c.file])
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
    per_file: dict[str, int] = {}
    for c in result.candidates:
        per_file[c.file] = per_file.get(c.file, 0) + 1
    assert max(per_file.values()) <= 6


def test_combine_is_deterministic_and_respects_limits(repo_factory):
    repo, _, validated = _validated(repo_factory)
    config = MutateConfig(seed=1, combine=CombineConfig(sizes=(2,), max_per_file=3, max_uses_per_bug=1))
    a = combine(validated, repo, config)
    b = combine(list(reversed(validated)), repo, config)
    assert a == b
    assert all(len(c.parents) == 2 for c in a.candidates)
    used = [p for c in a.candidates for p in c.parents]
    assert len(used) == len(set(used))  # max_uses_per_bug=1


def test_combine_skips_what_it_cannot_combine(repo_factory):
    repo, commit, validated = _validated(repo_factory)
    one_per_file = {}
    for c in validated:
        one_per_file.setdefault(c.file, c)
    result = combine(list(one_per_file.values()), repo, MutateConfig())
    assert result.candidates == [] and result.stats["skipped_file_too_few_bugs"] == 2
    # A checkout whose file no longer matches the patches: counted, not crashed.
    (repo / "pkg/calc.py").write_text(CALC.replace("return a + b", "return b + a"))
    calc = [c for c in validated if c.file == "pkg/calc.py"]
    result = combine(calc, repo, MutateConfig(combine=CombineConfig(max_per_file=50)))
    assert result.stats.get("skipped_patch_mismatch", 0) > 0
    pr = calc[0].__class__(**{**calc[0].__dict__, "origin": "pr", "candidate_id": "x"})
    assert combine([pr], repo, MutateConfig()).stats["skipped_not_mutation"] == 1
