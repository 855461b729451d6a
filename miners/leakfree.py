"""A start-state repository that cannot reveal the fix: the tree at the base commit, nothing after.

Agents run ``git log --all``, read the reflog, and look for dangling objects. The repository this
module writes holds only objects reachable from its one branch: either a single new commit of the
base tree (the default: not even the PR's own parent history is there), or the base commit's own
history up to it (``history=True``). No tags, no remotes, no reflog, no FETCH_HEAD/ORIG_HEAD, no
packed objects beyond what the branch reaches; reflogs stay off for later commands.

Not for: building the environment image around it (``verifiers.env`` copies this to /testbed).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from miners.errors import GitError
from miners.gitio import git

__all__ = ["make_leak_free_repo"]

IDENTITY = {"GIT_AUTHOR_NAME": "taskfactory", "GIT_AUTHOR_EMAIL": "taskfactory@localhost",
            "GIT_COMMITTER_NAME": "taskfactory", "GIT_COMMITTER_EMAIL": "taskfactory@localhost"}


def make_leak_free_repo(src: str | Path, base_commit: str, dest: str | Path, *, history: bool = False,
                        patch: str | None = None, branch: str = "main", message: str = "Start state") -> str:
    """Write a fresh repository at ``dest`` holding ``src``'s tree at ``base_commit``; return its HEAD.

    ``dest`` must not exist or be empty. With ``history=False`` HEAD is one root commit of the base
    tree (author and date fixed, the date being the base commit's, so nothing from later shows);
    with ``history=True`` HEAD is ``base_commit`` itself with its ancestors.

    ``patch`` (single-commit mode only) is applied to the tree before committing: the start state
    of a ``pr_mirror`` or mutation task is the clean commit *with the bug in it*, and neither the
    clean blobs nor a commit whose diff is the fix may be left behind (they are pruned).
    """
    if patch is not None and history:
        raise ValueError("patch needs history=False: a commit on top of the base would hold the answer")
    src, dest = Path(src), Path(dest)
    proc = git(src, "rev-parse", "--verify", "--quiet", f"{base_commit}^{{commit}}", check=False)
    if proc.returncode:
        raise GitError(f"{base_commit!r} is not a commit in {src}")
    base = proc.stdout.decode().strip()
    if dest.exists() and any(dest.iterdir()):
        raise GitError(f"{dest} exists and is not empty")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        # --template= : no sample hooks or description copied from the machine's templates
        git(dest, "init", "-q", "--template=", f"--initial-branch={branch}")
        git(dest, "config", "core.logAllRefUpdates", "false")
        if history:
            head = _fetch_history(src, dest, base, branch)
        else:
            head = _single_commit(src, dest, base, branch, message, patch)
        git(dest, "read-tree", "-u", "--reset", "HEAD")  # index and files; no reflog, no ORIG_HEAD
        for leftover in ("FETCH_HEAD", "ORIG_HEAD"):
            (dest / ".git" / leftover).unlink(missing_ok=True)
        shutil.rmtree(dest / ".git" / "logs", ignore_errors=True)
        return head
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def _single_commit(src: Path, dest: Path, base: str, branch: str, message: str, patch: str | None) -> str:
    tree = git(src, "rev-parse", f"{base}^{{tree}}").stdout.decode().strip()
    date = git(src, "show", "-s", "--format=%ct +0000", base).stdout.decode().strip()
    # exactly the objects of the base tree, as loose objects (no pack with anything else)
    objects = git(src, "rev-list", "--objects", "--no-walk", tree).stdout
    ids = b"".join(line.split(b" ", 1)[0] + b"\n" for line in objects.splitlines() if line)
    pack = git(src, "pack-objects", "--stdout", "-q", input=ids).stdout
    git(dest, "unpack-objects", "-q", input=pack)
    if patch is not None:
        index = {"GIT_INDEX_FILE": str(dest / ".git" / "patch-index")}
        git(dest, "read-tree", tree, env=index)
        proc = git(dest, "apply", "--cached", "--whitespace=nowarn", input=patch.encode("utf-8", "surrogateescape"),
                   env=index, check=False)
        if proc.returncode:
            err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise GitError(f"patch does not apply on {base}: {err[-1] if err else ''}")
        tree = git(dest, "write-tree", env=index).stdout.decode().strip()
        (dest / ".git" / "patch-index").unlink()
    env = {**IDENTITY, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    head = git(dest, "commit-tree", "--no-gpg-sign", tree, "-m", message, env=env).stdout.decode().strip()
    git(dest, "update-ref", f"refs/heads/{branch}", head)
    if patch is not None:  # the blobs the patch replaced are the answer: no trace of them may stay
        git(dest, "prune", "--expire=now")
    return head


def _fetch_history(src: Path, dest: Path, base: str, branch: str) -> str:
    # a fetch of one object id sends only what that commit reaches; no tags, no FETCH_HEAD
    git(dest, "fetch", "-q", "--update-head-ok", "--no-tags", "--no-write-fetch-head", "--no-recurse-submodules",
        str(src.resolve()), f"+{base}:refs/heads/{branch}")
    git(dest, "reflog", "expire", "--expire=all", "--all")
    return base
