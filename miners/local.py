"""Candidates from a local clone's history: merged pull requests become ``pr`` candidates.

The walk is the first-parent history of ``ref`` (HEAD: the checkout's branch, normally the default
one; one ``git log`` stream). A pull request shows up as

- a merge commit, base = first parent, in any of GitHub's title forms: ``Merge pull request #N
  from ...`` (the PR's title in the body), the PR's own title with ``(#N)`` (the "pull request
  title" merge message setting), or bors' ``Merge #N``;
- a squash merge: one commit ``title (#N)``, base = its parent;
- a rebase merge: consecutive first-parent commits that carry the same PR number (``(#N)`` in the
  subject, or a ``PR-URL:`` / ``Pull-Request:`` trailer), taken together, base = the oldest's parent.

Direct commits (``include_commits=True``) count too: a maintainer's ``Fix #387: ...`` that
changes code and tests is a fix like any PR. ``include_commits=None`` (the default) takes them
only when the history holds no pull request at all, so a repository whose maintainers commit
directly is not mined empty. Only recognised changes are diffed, in batches (one
``git diff-tree --stdin`` per batch), then split into code and tests by ``diffs.split_change``.
Every change that does not become a candidate is counted under ``skipped_<reason>`` and named in
``MineResult.skipped`` (commit -> reason); ``funnel(stats)`` renders the counts for a user.

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
    file_kind,
    is_test_path,
    parse_diff,
    python_change_is_cosmetic,
    split_change,
)
from miners.envgroup import EnvGrouper
from miners.errors import GitError
from miners.gitio import CommitMeta, diff_batch, git, log_first_parent
from miners.issues import linked_issue_numbers

__all__ = ["CandidateBuilder", "Change", "MineResult", "changes_from_history", "funnel", "github_slug",
           "history_has_prs", "make_candidate", "mine_local", "recognise"]

_MERGE_RE = re.compile(r"^Merge pull request #(?P<n>\d+) from (?P<branch>\S+)")
_BORS_RE = re.compile(r"^Merge (?P<all>#\d+(?:\s+#\d+)*)\s*$")  # bors / homu: "Merge #12" or a batch
_REVERT_RE = re.compile(r'^Revert "')
_SQUASH_RE = re.compile(r"\(#(?P<n>\d+)\)\s*$")
# Trailers that tools add to rebased commits: "PR-URL: https://github.com/o/n/pull/12", "Pull-Request: #12"
_TRAILER_RE = re.compile(r"^(?:PR-URL|Pull-Request|Pull-Request-URL|PR):\s*(?:\S*/pull/|\S*#)(?P<n>\d+)/?\s*$",
                         re.MULTILINE | re.IGNORECASE)
# The forms a pull request was recognised in, for the funnel (stats key ``prs_<form>``).
FORMS = ("merge_pr", "merge_title", "merge_bors", "squash", "rebase")


@dataclass
class MineResult:
    """What a miner returns: its candidates and its counts (``skipped_<reason>`` per skipped change).

    Candidates come in the order the miner met them: local history newest first, GitHub oldest first.
    """

    candidates: list[Candidate] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # commit sha -> why it is no candidate

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n

    def skip(self, reason: str, sha: str | None = None) -> None:
        self.count(f"skipped_{reason}")
        if sha:
            self.skipped[sha] = reason


@dataclass(frozen=True)
class Change:
    """A change recognised in history, before it is diffed."""

    commit: CommitMeta
    base: str  # the PR's base: first parent of the merge, or the squash commit's parent
    style: Literal["merge", "squash", "rebase", "commit"]
    pr_number: int | None
    title: str
    body: str
    form: str = ""  # how it was recognised: one of FORMS, or "commit"
    commits: int = 1  # first-parent commits it spans (a rebase merge: several)


def recognise(meta: CommitMeta, *, include_commits: bool = False) -> Change | str:
    """The change a first-parent commit stands for, or why it is not one (``"not_pr"``, ...).

    Merge commits: GitHub's ``Merge pull request #N from ...`` (title in the body), GitHub's
    ``PR title (#N)`` and bors' ``Merge #N``. One-parent commits: ``title (#N)`` (a squash merge,
    or one commit of a rebase merge: ``changes_from_history`` joins consecutive commits of one PR)
    and commits with a ``PR-URL:``/``Pull-Request:`` trailer (style ``rebase``). Reverts, batched
    merges, other merges and octopus merges are reasons, not changes. With ``include_commits``
    any other one-parent commit is a direct ``commit``.
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
        if m or b:
            title, _, rest = meta.body.partition("\n")
            if _REVERT_RE.match(title):
                return "revert"
            number = int(m["n"] if m else b["all"].lstrip("#"))
            if b:  # bors bodies start "12: the PR title r=reviewer a=author"
                title = re.sub(r"(\s+[ra]=\S+)+\s*$", "", re.sub(r"^\d+:\s*", "", title))
            return Change(meta, meta.parents[0], "merge", number, title.strip() or meta.subject, rest.strip(),
                          form="merge_pr" if m else "merge_bors")
        t = _SQUASH_RE.search(meta.subject)
        if t and not meta.subject.startswith("Merge branch "):
            if _REVERT_RE.match(meta.subject):
                return "revert"
            return Change(meta, meta.parents[0], "merge", int(t["n"]), meta.subject[: t.start()].rstrip(),
                          meta.body, form="merge_title")
        return "non_pr_merge"
    m = _SQUASH_RE.search(meta.subject)
    if m:
        if _REVERT_RE.match(meta.subject):
            return "revert"  # undoing a PR: its "fix" re-introduces the old behaviour
        title = meta.subject[: m.start()].rstrip()
        return Change(meta, meta.parents[0], "squash", int(m["n"]), title, meta.body, form="squash")
    t = _TRAILER_RE.search(meta.body)
    if t:
        if _REVERT_RE.match(meta.subject):
            return "revert"
        return Change(meta, meta.parents[0], "rebase", int(t["n"]), meta.subject, meta.body, form="rebase")
    if include_commits:
        if _REVERT_RE.match(meta.subject):
            return "revert"
        return Change(meta, meta.parents[0], "commit", None, meta.subject, meta.body, form="commit")
    return "not_pr"


def _join(newest: Change, older: Change) -> Change:
    """Two consecutive first-parent commits of one rebase-merged PR as one change."""
    title = older.title if older.commits == 1 else newest.title
    return Change(newest.commit, older.base, "rebase", newest.pr_number, title,
                  "\n\n".join(p for p in (newest.body, older.body) if p), form="rebase",
                  commits=newest.commits + older.commits)


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


def _code_key(split: SplitChange) -> str:
    """The code change's lines without positions: the same fix merged twice has the same key."""
    lines = [ln for f in split.code_files for ln in f.text.splitlines()
             if ln.startswith(("+", "-")) and not ln.startswith(("+++", "---"))]
    return content_hash(*[f.path for f in split.code_files], *lines)


def _tests_and_code(files: Sequence[FileDiff], test_globs: Sequence[str]) -> bool:
    """The change touches a test file and a code file (the funnel's "with tests and code")."""
    tests = [f for f in files if any(is_test_path(p, test_globs) for p in f.paths)]
    return bool(tests) and any(f not in tests and file_kind(f.path) == "code" for f in files)


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
    """The changes on ``ref``'s first-parent history, newest first; counts what it passes over.

    Consecutive one-parent commits with the same PR number are one rebase-merged PR: they come
    out as one change, from the oldest's parent to the newest. Stats: ``commits_scanned``,
    ``prs``, ``prs_<form>`` (``FORMS``), ``commits_considered`` (direct commits), ``not_pr``.
    """
    shallow = _shallow_commits(Path(repo_path))
    held: Change | None = None  # a one-parent PR commit whose older siblings may follow

    def _emit(change: Change) -> Change:
        if change.pr_number is None:
            result.count("commits_considered")
        else:
            result.count("prs")
            result.count(f"prs_{change.form}")
        return change

    with contextlib.closing(log_first_parent(repo_path, ref, since=since, max_count=max_commits)) as metas:
        for meta in metas:
            result.count("commits_scanned")
            got = recognise(meta, include_commits=include_commits)
            if isinstance(got, Change) and got.style in ("squash", "rebase"):
                if held is not None and held.pr_number == got.pr_number and held.base == meta.sha:
                    held = _join(held, got)
                    continue
                if held is not None:
                    yield _emit(held)
                held = got
                continue
            if held is not None:
                yield _emit(held)
                held = None
            if isinstance(got, str):
                if got == "root_commit" and meta.sha in shallow:
                    got = "shallow_boundary"
                if got == "not_pr":
                    result.count("not_pr")
                else:
                    result.skip(got, meta.sha)
                continue
            yield _emit(got)
    if held is not None:
        yield _emit(held)


def history_has_prs(repo_path: str | Path, *, ref: str = "HEAD", since: str | None = None,
                    max_commits: int | None = None) -> bool:
    """Whether any first-parent commit of ``ref`` is a recognised pull request (metadata only)."""
    with contextlib.closing(log_first_parent(repo_path, ref, since=since, max_count=max_commits)) as metas:
        for meta in metas:
            got = recognise(meta)
            if isinstance(got, Change) and got.pr_number is not None:
                return True
    return False


def funnel(stats: dict[str, Any]) -> str:
    """One line a user reads: commits scanned → PRs by form → with tests and code → candidates.

    Takes a miner's stats (``mine_local``, ``mine_github``) or the mirror's (``source_`` keys for
    the history it mirrored, then ``sources`` and ``candidates``). Skips come last, largest first.
    """
    def _one(st: dict[str, Any], prefix: str = "") -> list[str]:
        g = lambda k: st.get(prefix + k, 0)  # noqa: E731
        forms = ", ".join(f"{f} {g('prs_' + f)}" for f in FORMS if g("prs_" + f))
        parts = [f"scanned {g('commits_scanned')} commits" if prefix + "commits_scanned" in st else "",
                 f"PRs {g('prs')}" + (f" ({forms})" if forms else "")]
        if g("commits_considered"):
            parts[-1] += f" + direct commits {g('commits_considered')}"
        parts.append(f"with tests and code {g('with_tests_and_code')}")
        return [p for p in parts if p]

    if "sources" in stats:  # the mirror
        has_source = any(k.startswith("source_") for k in stats)
        parts = (_one(stats, "source_") + [f"source candidates {stats.get('source_candidates', 0)}"]) \
            if has_source else []
        parts += [f"mirrored {stats.get('sources', 0)}", f"candidates {stats.get('candidates', 0)}"]
    else:
        parts = _one(stats) + [f"candidates {stats.get('candidates', 0)}"]
    line = " → ".join(parts)
    if stats.get("commits_mode") == "auto":
        line += " [no PRs in this history: direct commits mined]"
    skips = sorted(((k.removeprefix("source_").removeprefix("skipped_"), v) for k, v in stats.items()
                    if "skipped_" in k and v), key=lambda kv: (-kv[1], kv[0]))
    if skips:
        line += "; skipped " + ", ".join(f"{k} {v}" for k, v in skips)
    return line


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
    include_commits: bool | None = None,
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
    ``include_commits``: True mines direct commits too, False only pull requests, None (default)
    direct commits only when the scanned history holds no pull request (``commits_mode: auto``).
    Stats: ``commits_scanned``, ``prs``, ``prs_<form>``, ``commits_considered``,
    ``with_tests_and_code``, ``candidates``, ``skipped_<reason>`` per skipped change (and
    ``result.skipped``: which commit, for which reason). ``progress`` is called with the stats so
    far after each batch of ``batch`` changes.
    """
    repo_path = Path(repo_path)
    result = MineResult()
    if git(repo_path, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False).returncode:
        raise GitError(f"{ref!r} is not a commit in {repo_path}")
    if include_commits is None:
        include_commits = not history_has_prs(repo_path, ref=ref, since=since, max_commits=max_commits)
        if include_commits:
            result.stats["commits_mode"] = "auto"  # type: ignore[assignment]
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
        self.seen_prs: dict[int, set[str]] = {}  # PR number -> code changes kept under it

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
                self.result.skip(got, change.commit.sha)
            else:
                self.result.candidates.append(got)

    def split(self, change: Change, raw: bytes) -> SplitChange | str:
        """A change's diff cut into code and tests, or the reason it is no candidate (no requests)."""
        try:
            files = parse_diff(raw)
        except NonUtf8Diff:
            return "non_utf8"
        if _tests_and_code(files, self.test_globs):
            self.result.count("with_tests_and_code")
        split = split_change(files, subject=change.title, test_globs=self.test_globs, limits=self.limits)
        if split.skip:
            return split.skip
        if _no_semantic_change(split.code_files, self.blobs):
            return "comments_only"
        if change.pr_number is not None and _code_key(split) in self.seen_prs.get(change.pr_number, ()):
            return "duplicate_pr"  # a PR merged twice (history rewritten, re-merged): keep the newest
        if change.pr_number in self.seen_prs:
            # The same number for another change: a repository moved and numbered again, or a
            # merge titled with an issue's number. Two fixes, two candidates.
            self.result.count("pr_number_reused")
        return split

    def finish(self, change: Change, split: SplitChange, *, problem_statement: str | None = None,
               hints_text: str = "", created_at: str | None = None, extra: dict | None = None) -> Candidate:
        """The candidate of a change that ``split`` kept."""
        if change.pr_number is not None:
            self.seen_prs.setdefault(change.pr_number, set()).add(_code_key(split))
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
        "form": change.form or change.style,
        "first_parent_commits": change.commits,
        # The commit message names the fix ("Raise ValueError when ..."): provenance only, never
        # the task's text. Without an issue, validation writes the statement from the failing tests.
        "commit_message": "\n\n".join(p for p in (change.title, change.body) if p),
        "problem_statement_source": "evidence" if not problem_statement else "issue",
        "linked_issues": linked_issue_numbers(f"{change.title}\n{change.body}", slug),
        **(extra or {}),
    }
    return Candidate(
        candidate_id=content_hash("pr", repo, change.base, patch, test_patch),
        repo=repo,
        base_commit=change.base,
        origin="pr",
        patch=patch,
        test_patch=test_patch,
        pr_number=change.pr_number,
        problem_statement=problem_statement or "",
        hints_text=hints_text,
        created_at=created_at or _iso(change.commit.committed_at),
        provenance=json.dumps(provenance, sort_keys=True),
    )
