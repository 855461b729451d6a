"""Git plumbing for the miners: a few long-lived streams instead of a process per commit.

``log_first_parent`` reads the metadata of a whole history in one ``git log`` stream;
``diff_batch`` produces the diffs of many (commit, parent) pairs in one ``git diff-tree --stdin``;
blob contents come through GitPython's persistent ``cat-file --batch``. Everything is bytes until
the last moment, because paths and messages need not be UTF-8.

Not for: deciding what a change is (``diffs``) or building candidates (``local``).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from miners.errors import GitError

__all__ = ["CommitMeta", "commits_meta", "require_repo", "diff_batch", "diff_trees", "git", "log_first_parent"]

_RS, _US = b"\x1e", b"\x1f"
# Plumbing only, with the user's diff configuration kept out (no external diff, no textconv,
# no colour, fixed a/ b/ prefixes), and C-quoting off so UTF-8 paths come through as they are.
_DIFF_ARGS = ("-r", "-p", "-M", "--full-index", "--no-color", "--no-ext-diff", "--no-textconv",
              "--src-prefix=a/", "--dst-prefix=b/", "--always")
_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}


def _git_exe() -> str:
    try:
        import git as gitpython

        return gitpython.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    except ImportError:  # pragma: no cover - gitpython is a core dependency
        return "git"


def git(repo: str | Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run one git command in ``repo``; a non-zero exit raises GitError with git's own words."""
    cmd = [_git_exe(), "-c", "core.quotepath=false", "-C", str(repo), *args]
    proc = subprocess.run(cmd, input=input, capture_output=True, env={**os.environ, **_ENV, **(env or {})})
    if check and proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {' '.join(args[:3])} failed ({proc.returncode}): {err[-1] if err else ''}")
    return proc


@dataclass(frozen=True)
class CommitMeta:
    sha: str
    parents: tuple[str, ...]
    committed_at: int  # unix seconds, committer date (the merge time for a merge commit)
    author: str
    message: str  # decoded with replacement: a message need not be UTF-8

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def body(self) -> str:
        parts = self.message.split("\n", 1)
        return parts[1].strip() if len(parts) > 1 else ""


def log_first_parent(repo: str | Path, ref: str = "HEAD", *, since: str | None = None,
                     max_count: int | None = None) -> Iterator[CommitMeta]:
    """The first-parent history of ``ref``, newest first, from one streamed ``git log``."""
    args = ["log", "--first-parent", "--no-color", "--format=%x1e%H%x1f%P%x1f%ct%x1f%an%x1f%B"]
    if since:
        args.append(f"--since={since}")
    if max_count:
        args.append(f"--max-count={max_count}")
    args += [ref, "--"]
    cmd = [_git_exe(), "-c", "core.quotepath=false", "-c", "i18n.logOutputEncoding=UTF-8",
           "-c", "log.showSignature=false", "-C", str(repo), *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **_ENV})
    assert proc.stdout is not None
    buf = b""
    try:
        while chunk := proc.stdout.read(1 << 16):
            buf += chunk
            *records, buf = buf.split(_RS)
            for rec in records:
                if rec.strip():
                    yield _meta(rec)
        if buf.strip():
            yield _meta(buf)
    finally:
        proc.stdout.close()
        rc = proc.wait()
        stderr = proc.stderr.read() if proc.stderr else b""
        if proc.stderr:
            proc.stderr.close()
    if rc != 0:
        msg = stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git log {ref} failed ({rc}): {msg[-1] if msg else ''}")


def _meta(rec: bytes) -> CommitMeta:
    sha, parents, ct, author, message = rec.split(_US, 4)
    return CommitMeta(
        sha=sha.decode().strip(),
        parents=tuple(parents.decode().split()),
        committed_at=int(ct),
        author=author.decode("utf-8", "replace"),
        message=message.decode("utf-8", "replace").strip("\n"),
    )


def diff_batch(repo: str | Path, pairs: Sequence[tuple[str, str]], *, chunk: int = 256
               ) -> Iterator[tuple[str, bytes]]:
    """``(commit, diff against parent)`` for each (commit, parent) pair, in order.

    One ``git diff-tree --stdin`` process per ``chunk`` pairs, so memory stays bounded on big
    histories while the per-process cost is paid a handful of times, not once per commit.
    """
    for i in range(0, len(pairs), chunk):
        part = pairs[i : i + chunk]
        stdin = b"".join(f"{c} {p}\n".encode() for c, p in part)
        out = git(repo, "diff-tree", "--stdin", *_DIFF_ARGS, input=stdin).stdout
        yield from _split_batch(out, [c for c, _ in part])


def _split_batch(out: bytes, expected: list[str]) -> Iterator[tuple[str, bytes]]:
    # Each pair's output starts with a line holding only its commit id; the ids come in input
    # order, so we look for exactly the next expected one (a patch line never is a bare id:
    # every patch line starts with a marker or a header word).
    pos = 0
    for k, sha in enumerate(expected):
        head = sha.encode() + b"\n"
        if not out.startswith(head, pos):
            raise GitError(f"git diff-tree output out of step at {sha}")
        start = pos + len(head)
        if k + 1 < len(expected):
            nxt = b"\n" + expected[k + 1].encode() + b"\n"
            end = out.find(nxt, start - 1)
            if end < 0:
                raise GitError(f"git diff-tree output out of step after {sha}")
            end += 1
        else:
            end = len(out)
        yield sha, out[start:end]
        pos = end


def diff_trees(repo: str | Path, old: str, new: str, *, env: dict[str, str] | None = None) -> bytes:
    """The patch that turns tree-ish ``old`` into ``new`` (same format as ``diff_batch``)."""
    args = [a for a in _DIFF_ARGS if a != "--always"]
    return git(repo, "diff-tree", *args, old, new, env=env).stdout


def commits_meta(repo: str | Path, shas: Sequence[str]) -> dict[str, CommitMeta]:
    """Metadata of the given commits that exist locally (missing ones are left out), two processes."""
    if not shas:
        return {}
    check = git(repo, "cat-file", "--batch-check", input="".join(f"{s}\n" for s in shas).encode()).stdout
    present = [line.split()[0].decode() for line in check.splitlines() if line.endswith(b" commit") or
               b" commit " in line]
    if not present:
        return {}
    out = git(repo, "-c", "i18n.logOutputEncoding=UTF-8", "-c", "log.showSignature=false", "log",
              "--no-walk=unsorted", "--no-color",
              "--format=%x1e%H%x1f%P%x1f%ct%x1f%an%x1f%B", *present, "--").stdout
    metas = [_meta(rec) for rec in out.split(_RS) if rec.strip()]
    return {m.sha: m for m in metas}


def require_repo(repo: str | Path) -> None:
    """Raise GitError unless ``repo`` is a git repository with at least one commit."""
    if not Path(repo).is_dir() or git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
                                      check=False).returncode:
        raise GitError(f"{repo} is not a git repository with commits")
