"""Install groups: candidates whose base commits install the same way share one environment.

A PR merged three years ago needs the dependencies of its time. The verifiers build one image per
*group*, where a group is the set of base commits whose dependency files (pyproject.toml,
setup.py, setup.cfg, requirements*.txt, requirements/*.txt, tox.ini, ...) are byte-identical: the
key is a hash of those files' blob ids, and a blob id is git's hash of the file's contents. The
coarser alternative buckets by the nearest version tag (``v1.4.2`` → ``tag-v1.4``).

Not for: building images or choosing install commands (that is ``verifiers.env``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from factory.schema import Candidate, content_hash
from miners.gitio import git

__all__ = ["DEP_FILE_PATTERNS", "EnvGroup", "EnvGrouper", "env_group_key", "group_candidates"]

DEP_FILE_PATTERNS: tuple[str, ...] = (
    "pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "Pipfile", "Pipfile.lock", "poetry.lock",
    "environment.yml", "requirements*.txt", "requirements/*.txt", "requirements/*.in",
)
_REQ_FILE_RE = re.compile(r"^requirements[^/]*\.(txt|in)$")
_TOP = {"pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "Pipfile", "Pipfile.lock", "poetry.lock",
        "environment.yml"}
_TAG_RE = re.compile(r"^(?P<prefix>[^\d]*)(?P<major>\d+)(?:\.(?P<minor>\d+))?")


class EnvGrouper:
    """Computes install-group keys for commits of one repository, memoised per commit.

    Reads trees through GitPython (its persistent ``cat-file`` process), so a key costs no new
    process; ``mode="tag"`` runs one ``git describe`` per commit.
    """

    def __init__(self, repo_path: str | Path, mode: Literal["deps", "tag"] = "deps", *, repo: Any = None) -> None:
        import git as gitpython

        self.repo_path = Path(repo_path)
        self._own = repo is None
        self.repo = gitpython.Repo(self.repo_path) if repo is None else repo
        self.mode = mode
        self._memo: dict[str, tuple[str, tuple[str, ...]]] = {}

    def close(self) -> None:
        """Stop GitPython's persistent ``cat-file`` processes (when this grouper opened the repo)."""
        if self._own:
            self.repo.close()

    def key(self, commit: str) -> str:
        return self.describe(commit)[0]

    def describe(self, commit: str) -> tuple[str, tuple[str, ...]]:
        """``(key, files)``: the group key and the dependency files it was computed from."""
        if commit not in self._memo:
            self._memo[commit] = self._tag(commit) if self.mode == "tag" else self._deps(commit)
        return self._memo[commit]

    def _deps(self, commit: str) -> tuple[str, tuple[str, ...]]:
        tree = self.repo.commit(commit).tree
        found: list[tuple[str, str]] = []
        for item in tree:
            if item.type == "blob" and (item.name in _TOP or _REQ_FILE_RE.match(item.name)):
                found.append((item.path, item.hexsha))
            elif item.type == "tree" and item.name == "requirements":
                found += [(b.path, b.hexsha) for b in item.blobs if b.name.endswith((".txt", ".in"))]
        found.sort()
        return f"deps-{content_hash(found)}", tuple(p for p, _ in found)

    def _tag(self, commit: str) -> tuple[str, tuple[str, ...]]:
        proc = git(self.repo_path, "describe", "--tags", "--abbrev=0", commit, check=False)
        tag = proc.stdout.decode("utf-8", "replace").strip()
        m = _TAG_RE.match(tag) if proc.returncode == 0 else None
        if not m:
            return "tag-none", ()
        minor = f".{m['minor']}" if m["minor"] is not None else ""
        return f"tag-{m['prefix']}{m['major']}{minor}", (tag,)


def env_group_key(repo_path: str | Path, commit: str, mode: Literal["deps", "tag"] = "deps") -> str:
    """The install-group key of one commit (build an ``EnvGrouper`` to key many)."""
    grouper = EnvGrouper(repo_path, mode)
    try:
        return grouper.key(commit)
    finally:
        grouper.close()


@dataclass(frozen=True)
class EnvGroup:
    """Candidates that share one environment image, and the commit to build it from."""

    key: str
    setup_commit: str  # the base commit of the newest candidate (SWE-bench's environment_setup_commit)
    candidates: tuple[Candidate, ...]


def group_candidates(candidates: Iterable[Candidate]) -> dict[str, EnvGroup]:
    """Candidates by the ``env_group`` in their provenance (``ungrouped`` where it is missing).

    Groups come in key order; within one, candidates keep their order. The setup commit is the
    base of the candidate created last, so the image has the newest pins of the group.
    """
    by_key: dict[str, list[Candidate]] = {}
    for c in candidates:
        try:
            key = json.loads(c.provenance or "{}").get("env_group") or "ungrouped"
        except json.JSONDecodeError:
            key = "ungrouped"
        by_key.setdefault(key, []).append(c)
    out = {}
    for key in sorted(by_key):
        members = by_key[key]
        newest = max(members, key=lambda c: c.created_at)
        out[key] = EnvGroup(key=key, setup_commit=newest.base_commit, candidates=tuple(members))
    return out
