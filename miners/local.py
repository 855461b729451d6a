"""Candidates from a local clone's history: merged pull requests become ``pr`` candidates.

The walk is the first-parent history of ``ref`` (HEAD: the checkout's branch, normally the default
one; one ``git log`` stream). A pull request
shows up as a merge commit (``Merge pull request #N from ...``, base = first parent) or a squash
merge (``... (#N)``, base = its parent); with ``include_commits=True`` plain commits count too.
Only changes that look like PRs are diffed, in batches (one ``git diff-tree --stdin`` per batch),
then split into code and tests by ``diffs.split_change``. Every change that does not become a
candidate is counted under ``skipped_<reason>``.

Not for: the GitHub API (``github``), re-introducing fixes on HEAD (``mirror``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from factory.schema import Candidate, content_hash
from miners.diffs import (
    FileDiff,
    Limits,
    NonUtf8Diff,
    SplitChange,
    parse_diff,
    python_change_is_cosmetic,
    split_change,
)
from miners.envgroup import EnvGrouper
from miners.errors import GitError
from miners.gitio import CommitMeta, diff_batch, git, log_first_parent
from miners.issues import linked_issue_numbers

__all__ = ["CandidateBuilder", "Change", "MineResult", "changes_from_history", "github_slug", "make_candidate",
           "mine_local", "recognise"]

_MERGE_RE = re.compile(r"^Merge pull request #(?P<n>\d+) from (?P<branch>\S+)")
_BORS_RE = re.compile(r"^Merge (?P<all>#\d+(?:\s+#\d+)*)\s*$")  # bors / homu: "Merge #12" or a batch
_REVERT_RE = re.compile(r'^Revert "')
_SQUASH_RE = re.compile(r"\(#(?P<n>\d+)\)\s*$")


@dataclass
class MineResult:
    """What a miner returns: its candidates and its counts (``skipped_<reason>`` per skipped change).

    Candidates come in the order the miner met them: local history newest first, GitHub oldest first.
    """

    candidates: list[Candidate] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def skip(self, reason: str) -> None:
        self.count(f"skipped_{reason}")


@dataclass(frozen=True)
class Change:
    """A change recognised in history, before it is diffed."""

    commit: CommitMeta
    base: str  # the PR's base: first parent of the merge, or the squash commit's parent
    style: Literal["merge", "squash", "rebase", "commit"]
    pr_number: int | None
    title: str
    body: str


def recognise(meta: CommitMeta, *, include_commits: bool = False) -> Change | str:
    """The change a first-parent commit stands for, or why it is not one (``"not_pr"``, ...).

    Merge commits: GitHub's ``Merge pull request #N from ...`` (title in the body) and bors'
    ``Merge #N``; squash merges: ``title (#N)``. Reverts, batched merges, other merges and
    octopus merges are reasons, not changes.
    """
    n = len(meta.parents)
    if n == 0:
        return "root_commit"
    if n > 2:
        return "octopus_merge"
    if n == 2:
        m = _MERGE_RE.match(meta.subject)
        b = _BORS_RE.match(meta.subject) if not m else None
        if b and len(b["all"].split()) > 1:
            return "batched_merge"  # several PRs in one merge: no single PR's change to split
        if not m and not b:
            return "non_pr_merge"
        title, _, rest = meta.body.partition("\n")
        if _REVERT_RE.match(title):
            return "revert"
        number = int(m["n"] if m else b["all"].lstrip("#"))
        if b:  # bors bodies start "12: the PR title r=reviewer a=author"
            title = re.sub(r"(\s+[ra]=\S+)+\s*$", "", re.sub(r"^\d+:\s*", "", title))
        return Change(meta, meta.parents[0], "merge", number, title.strip() or meta.subject, rest.strip())
    m = _SQUASH_RE.search(meta.subject)
    if m:
        if _REVERT_RE.match(meta.subject):
            return "revert"  # undoing a PR: its "fix" re-introduces the old behaviour
        title = meta.subject[: m.start()].rstrip()
        return Change(meta, meta.parents[0], "squash", int(m["n"]), title, meta.body)
    if include_commits:
        return Change(meta, meta.parents[0], "commit", None, meta.subject, meta.body)
    return "not_pr"


def github_slug(repo_path: str | Path) -> str | None:
    """``owner/name`` of the ``origin`` remote when it is on github.com, for links."""
    proc = git(repo_path, "config", "--get", "remote.origin.url", check=False)
    url = proc.stdout.decode("utf-8", "replace").strip()
    m = re.search(r"github\.com[:/](?P<slug>[^/\s]+/[^/\s]+?)(?:\.git)?/?$", url)
    return m["slug"] if m else None


def _iso(ts: int) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Blobs:
    """Blob contents through GitPython's persistent ``cat-file --batch`` (no process per blob)."""

    def __init__(self, repo: Any) -> None:
        self.repo = repo

    def text(self, sha: str) -> str | None:
        """The blob as text, or None when it is absent (partial clone), not UTF-8, or no blob."""
        from gitdb.exc import ODBError

        if not sha or set(sha) == {"0"}:
            return None
        try:
            data = self.repo.odb.stream(bytes.fromhex(sha)).read()
            return data.decode("utf-8")
        except (UnicodeDecodeError, ValueError, ODBError):
            return None


def _no_semantic_change(code: Sequence[FileDiff], blobs: _Blobs) -> bool:
    """Every code file changes only comments, docstrings or layout (Python: by AST)."""
    for f in code:
        if not f.path.endswith(".py") or f.old_path is None or f.old_path != f.new_path \
                or not (f.num_added or f.num_removed):
            return False
        if not python_change_is_cosmetic(f, blobs.text(f.old_blob), blobs.text(f.new_blob)):
            return False
    return True


def changes_from_history(repo_path: str | Path, result: MineResult, *, ref: str = "HEAD",
                         since: str | None = None, max_commits: int | None = None,
                         include_commits: bool = False) -> Iterator[Change]:
    """The changes on ``ref``'s first-parent history, newest first; counts what it passes over."""
    shallow = _shallow_commits(Path(repo_path))
    with contextlib.closing(log_first_parent(repo_path, ref, since=since, max_count=max_commits)) as metas:
        for meta in metas:
            result.count("commits_scanned")
            got = recognise(meta, include_commits=include_commits)
            if isinstance(got, str):
                if got == "root_commit" and meta.sha in shallow:
                    got = "shallow_boundary"
                if got == "not_pr":
                    result.count("not_pr")
                else:
                    result.skip(got)
                continue
            result.count("prs" if got.pr_number is not None else "commits_considered")
            yield got


def _shallow_commits(repo_path: Path) -> set[str]:
    proc = git(repo_path, "rev-parse", "--git-path", "shallow", check=False)
    p = Path(proc.stdout.decode().strip())
    if not p.is_absolute():
        p = repo_path / p
    return set(p.read_text().split()) if p.exists() else set()


def mine_local(
    repo_path: str | Path,
    *,
    repo: str,
    ref: str = "HEAD",
    since: str | None = None,
    max_candidates: int | None = None,
    max_commits: int | None = None,
    include_commits: bool = False,
    test_globs: Sequence[str] = (),
    limits: Limits = Limits(),
    env_mode: Literal["deps", "tag"] = "deps",
    batch: int = 256,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> MineResult:
    """Mine ``pr`` candidates from the first-parent history of ``ref`` in a local clone.

    ``repo`` is the RepoSpec key stored on each candidate; ``since`` is anything ``git log
    --since`` takes (``2024-01-01``); ``max_candidates`` stops the walk once that many are made;
    ``test_globs`` are the repository's extra test-file patterns (RepoSpec.test_file_patterns).
    Stats: ``commits_scanned``, ``prs``, ``candidates``, ``skipped_<reason>`` per skipped change.
    ``progress`` is called with the stats so far after each batch of ``batch`` changes.
    """
    repo_path = Path(repo_path)
    result = MineResult()
    if git(repo_path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode:
        raise GitError(f"{ref!r} is not a commit in {repo_path}")
    builder = CandidateBuilder(repo_path, repo, result, test_globs, limits, env_mode)
    try:
        _walk_and_build(builder, result, repo_path, ref=ref, since=since, max_commits=max_commits,
                        include_commits=include_commits, max_candidates=max_candidates, batch=batch,
                        progress=progress)
    finally:
        builder.close()
    result.stats["candidates"] = len(result.candidates)
    return result


def _walk_and_build(builder: CandidateBuilder, result: MineResult, repo_path: Path, *, ref: str,
                    since: str | None, max_commits: int | None, include_commits: bool,
                    max_candidates: int | None, batch: int,
                    progress: Callable[[dict[str, int]], None] | None) -> None:
    pending: list[Change] = []
    walk = changes_from_history(repo_path, result, ref=ref, since=since, max_commits=max_commits,
                                include_commits=include_commits)
    with contextlib.closing(walk):  # stopping early ends the `git log` stream now, not at GC
        for change in walk:
            pending.append(change)
            if len(pending) >= batch:
                builder.build(pending, max_candidates)
                pending = []
                if progress:
                    progress({**result.stats, "candidates": len(result.candidates)})
                if max_candidates is not None and len(result.candidates) >= max_candidates:
                    break
    if pending and (max_candidates is None or len(result.candidates) < max_candidates):
        builder.build(pending, max_candidates)


class CandidateBuilder:
    """Diffs a batch of changes and turns the keepers into candidates (shared with ``github``)."""

    def __init__(self, repo_path: Path, repo: str, result: MineResult, test_globs: Sequence[str],
                 limits: Limits, env_mode: Literal["deps", "tag"]) -> None:
        self.repo_path = repo_path
        self.repo = repo
        self.result = result
        self.test_globs = tuple(test_globs)
        self.limits = limits
        import git as gitpython

        self._repo = gitpython.Repo(repo_path)
        self.groups = EnvGrouper(repo_path, env_mode, repo=self._repo)
        self.blobs = _Blobs(self._repo)
        self.slug = github_slug(repo_path)
        self.seen_prs: set[int] = set()

    def close(self) -> None:
        """Stop GitPython's persistent processes; the builder is done."""
        self._repo.close()

    def build(self, changes: Iterable[Change], max_candidates: int | None) -> None:
        changes = list(changes)
        diffs = diff_batch(self.repo_path, [(c.commit.sha, c.base) for c in changes])
        for change, (_sha, raw) in zip(changes, diffs, strict=True):
            if max_candidates is not None and len(self.result.candidates) >= max_candidates:
                return
            got = self.candidate(change, raw)
            if isinstance(got, str):
                self.result.skip(got)
            else:
                self.result.candidates.append(got)

    def split(self, change: Change, raw: bytes) -> SplitChange | str:
        """A change's diff cut into code and tests, or the reason it is no candidate (no requests)."""
        if change.pr_number is not None and change.pr_number in self.seen_prs:
            return "duplicate_pr"  # history rewritten or a PR re-merged: keep the newest
        try:
            files = parse_diff(raw)
        except NonUtf8Diff:
            return "non_utf8"
        split = split_change(files, subject=change.title, test_globs=self.test_globs, limits=self.limits)
        if split.skip:
            return split.skip
        if _no_semantic_change(split.code_files, self.blobs):
            return "comments_only"
        return split

    def finish(self, change: Change, split: SplitChange, *, problem_statement: str | None = None,
               hints_text: str = "", created_at: str | None = None, extra: dict | None = None) -> Candidate:
        """The candidate of a change that ``split`` kept."""
        if change.pr_number is not None:
            self.seen_prs.add(change.pr_number)
        return make_candidate(self.repo, change, split.patch, split.test_patch,
                              code_files=[f.path for f in split.code_files],
                              test_files=[f.path for f in split.test_files],
                              dep_files=[f.path for f in split.dep_files],
                              env=self.groups.describe(change.base), slug=self.slug,
                              problem_statement=problem_statement, hints_text=hints_text,
                              created_at=created_at, extra=extra)

    def candidate(self, change: Change, raw: bytes, **kw: Any) -> Candidate | str:
        """The candidate for one change and its diff against the base, or the skip reason."""
        got = self.split(change, raw)
        return got if isinstance(got, str) else self.finish(change, got, **kw)


def make_candidate(repo: str, change: Change, patch: str, test_patch: str, *, code_files: list[str],
                   test_files: list[str], env: tuple[str, tuple[str, ...]], slug: str | None,
                   dep_files: list[str] | None = None,
                   problem_statement: str | None = None, hints_text: str = "",
                   created_at: str | None = None, extra: dict | None = None) -> Candidate:
    """A ``pr`` candidate from a recognised change and its split diff."""
    links = {}
    if slug and change.pr_number is not None:
        links["pull"] = f"https://github.com/{slug}/pull/{change.pr_number}"
    if slug:
        links["commit"] = f"https://github.com/{slug}/commit/{change.commit.sha}"
    provenance = {
        "merge_commit": change.commit.sha,
        "style": change.style,
        "title": change.title,
        "links": links,
        "env_group": env[0],
        "env_files": list(env[1]),
        "code_files": code_files,
        "test_files": test_files,
        "dependency_files": dep_files or [],  # changed by the fix: its environment may differ from base's
        "problem_statement_source": "pr_message" if problem_statement is None else "issue",
        "linked_issues": linked_issue_numbers(f"{change.title}\n{change.body}", slug),
        **(extra or {}),
    }
    if problem_statement is None:
        problem_statement = "\n\n".join(p for p in (change.title, change.body) if p)
    return Candidate(
        candidate_id=content_hash("pr", repo, change.base, patch, test_patch),
        repo=repo,
        base_commit=change.base,
        origin="pr",
        patch=patch,
        test_patch=test_patch,
        pr_number=change.pr_number,
        problem_statement=problem_statement,
        hints_text=hints_text,
        created_at=created_at or _iso(change.commit.committed_at),
        provenance=json.dumps(provenance, sort_keys=True),
    )
