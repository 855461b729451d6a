"""The PR mirror: merged fixes re-introduced on HEAD, so every task shares HEAD's environment.

A fix merged long ago may still be "undoable" on today's code: its code change applies in reverse
on HEAD (``git apply --reverse --check``). Undoing it brings the bug back on HEAD; HEAD's own
tests (which usually include the PR's tests, merged with it) then judge the task, and one
environment image serves all of them. As for mutations, a ``pr_mirror`` candidate's ``patch``
*introduces* the bug on ``base_commit`` (= HEAD); its reverse is the gold fix. The patch is
re-diffed from the resulting tree, so its line numbers are HEAD's, not the old PR's.

Only the code files of the fix are reversed: docs and changelogs drift and would not apply.

Not for: finding the fixes (``local`` or ``github``) or validating the result (``verifiers``).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Literal

from factory.schema import Candidate, content_hash
from miners.diffs import Limits, NonUtf8Diff, file_kind, parse_diff
from miners.envgroup import EnvGrouper
from miners.gitio import diff_trees, git
from miners.local import MineResult, mine_local

__all__ = ["mine_mirror", "mirror_candidate"]


def mine_mirror(
    repo_path: str | Path,
    *,
    repo: str,
    head: str = "HEAD",
    candidates: Iterable[Candidate] | None = None,
    since: str | None = None,
    max_candidates: int | None = None,
    include_commits: bool | None = None,
    test_globs: Sequence[str] = (),
    limits: Limits = Limits(),
    env_mode: Literal["deps", "tag"] = "deps",
    progress: Callable[[dict[str, int]], None] | None = None,
) -> MineResult:
    """``pr_mirror`` candidates on ``head`` from merged fixes.

    The fixes are ``candidates`` when given (e.g. from ``mine_github``, whose issue texts become
    the problem statements), else ``mine_local`` of the same history (``include_commits`` as
    there: direct fix commits too, or by default only when the history has no PRs). Stats: ``sources``,
    ``candidates``, ``skipped_not_reversible``, ``skipped_no_code``, ``skipped_duplicate_patch``.
    ``progress`` gets the stats every 50 sources.
    """
    repo_path = Path(repo_path)
    result = MineResult()
    if candidates is None:
        src = mine_local(repo_path, repo=repo, ref=head, since=since, include_commits=include_commits,
                         test_globs=test_globs, limits=limits, env_mode=env_mode)
        for k, v in src.stats.items():
            result.stats[f"source_{k}"] = v
        candidates = src.candidates
    head_sha = git(repo_path, "rev-parse", "--verify", f"{head}^{{commit}}").stdout.decode().strip()
    grouper = EnvGrouper(repo_path, env_mode)
    try:
        env = grouper.describe(head_sha)
    finally:
        grouper.close()
    seen: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="mirror-") as tmp:
        index = Path(tmp) / "index"
        for cand in candidates:
            if max_candidates is not None and len(result.candidates) >= max_candidates:
                break
            if cand.origin != "pr":
                continue
            result.count("sources")
            got = mirror_candidate(repo_path, cand, head_sha, repo=repo, index_file=index, env=env)
            if isinstance(got, str):
                result.skip(got)
            elif got.patch in seen:
                result.skip("duplicate_patch")
            else:
                seen.add(got.patch)
                result.candidates.append(got)
            if progress and result.stats["sources"] % 50 == 0:
                progress({**result.stats, "candidates": len(result.candidates)})
    result.stats["candidates"] = len(result.candidates)
    return result


def mirror_candidate(repo_path: Path, cand: Candidate, head_sha: str, *, repo: str, index_file: Path,
                     env: tuple[str, tuple[str, ...]]) -> Candidate | str:
    """The mirror of one fix on ``head_sha``, or the reason there is none."""
    try:
        files = parse_diff(cand.patch.encode("utf-8", "surrogateescape"))
    except NonUtf8Diff:
        return "non_utf8"
    code = "".join(f.text for f in files if file_kind(f.path) == "code")
    if not code:
        return "no_code"
    genv = {"GIT_INDEX_FILE": str(index_file)}
    git(repo_path, "read-tree", head_sha, env=genv)
    data = code.encode("utf-8", "surrogateescape")
    if git(repo_path, "apply", "--cached", "--reverse", "--check", input=data, env=genv, check=False).returncode:
        return "not_reversible"
    git(repo_path, "apply", "--cached", "--reverse", input=data, env=genv)
    tree = git(repo_path, "write-tree", env=genv).stdout.decode().strip()
    patch = diff_trees(repo_path, f"{head_sha}^{{tree}}", tree).decode("utf-8", "surrogateescape")
    if not patch.strip():
        return "already_reverted"
    original = json.loads(cand.provenance or "{}")
    provenance = {
        "mirror_of": cand.candidate_id,
        "original_base_commit": cand.base_commit,
        "original_pr": cand.pr_number,
        "merge_commit": original.get("merge_commit"),
        "links": original.get("links", {}),
        "linked_issues": original.get("linked_issues", []),
        "env_group": env[0],
        "env_files": list(env[1]),
        "code_files": [f.path for f in files if file_kind(f.path) == "code"],
        "original_test_files": original.get("test_files", []),
        "problem_statement_source": "issue" if _from_issue(cand) else "evidence",
        "commit_message": original.get("commit_message", ""),
        "direction": "patch re-introduces the bug on base_commit; its reverse is the fix",
    }
    return Candidate(
        candidate_id=content_hash("pr_mirror", repo, head_sha, patch),
        repo=repo,
        base_commit=head_sha,
        origin="pr_mirror",
        patch=patch,
        test_patch="",
        pr_number=cand.pr_number,
        problem_statement=cand.problem_statement if _from_issue(cand) else "",
        hints_text=cand.hints_text,
        created_at=cand.created_at,
        provenance=json.dumps(provenance, sort_keys=True),
    )


def _from_issue(cand: Candidate) -> bool:
    """The source's statement is a linked issue's text (not a commit message of an older run)."""
    return json.loads(cand.provenance or "{}").get("problem_statement_source") == "issue"
