"""The image an agent starts a task from: the broken tree as the only commit, nothing leaked.

A thin layer on the environment image: apply the bug, then replace ``/testbed/.git`` with a fresh
repository whose single commit is the broken state. No parent commit (whose diff would be the
answer), no branches of other tasks, no remotes, no reflog, no objects of the clean tree. The
install's left-overs stay ignored through the copied ``.git/info/exclude``.

Nor does the metadata tell: the environment image gave every file one mtime and git's modes
(``verifiers.images.normalise_tree``); whatever this layer changes (the broken file, its folder,
the new ``.git``) is stamped back to the same mtime and modes last, so ``find -newer``,
``ls -l --time-style=full-iso`` and ``git status`` single out nothing. No bytecode, no backup or
patch files (``*.orig``, ``*.rej``, ``*.diff``) are left.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from factory.errors import ImageError
from verifiers.images import START_EPOCH, normalise_tree
from verifiers.sandbox import read_file, tar_file

__all__ = ["TaskImage", "build_task_image", "patch_paths", "start_state_script", "task_tag"]

_FIXED_DATES = "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z"


@dataclass(frozen=True)
class TaskImage:
    image_name: str
    base_commit: str
    start_files: dict[str, str]  # path -> content at the start state (files the gold patch touches)


def patch_paths(diff: str) -> list[str]:
    """Paths a unified git diff touches (the pre-image side for deletions)."""
    paths: list[str] = []
    for m in re.finditer(r"^diff --git a/(.+?) b/(.+)$", diff, re.M):
        for p in (m.group(1), m.group(2)):
            if p not in paths:
                paths.append(p)
    return paths


def task_tag(instance_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", instance_id)[:120].lower()
    return f"taskfactory/task:{safe}"


def start_state_script() -> str:
    """Shell that turns ``/testbed`` plus the change at ``/tmp/tf-bug.diff`` into a task's start
    state (one fresh commit, no caches or backups, normalised metadata); prints the commit id.

    ``factory.rebuild`` writes the same script into the Dockerfiles users rebuild tasks with.
    """
    return (
        "set -e; cd /testbed; if [ -s /tmp/tf-bug.diff ]; then git apply --whitespace=nowarn /tmp/tf-bug.diff; fi; "
        "rm -f /tmp/tf-bug.diff; "
        # Bytecode caches hold the code as it was before the bug (or after the fix): never ship them.
        "find /testbed -name __pycache__ -type d -prune -exec rm -rf {} +; find /testbed -name '*.py[co]' -delete; "
        "cp .git/info/exclude /tmp/tf-exclude; rm -rf .git; git init -q; "
        "cp /tmp/tf-exclude .git/info/exclude; rm -f /tmp/tf-exclude; git add -A; "
        f"{_FIXED_DATES} git commit -q --no-verify -m 'task start state'; "
        "rm -rf .git/logs; find /testbed -path /testbed/.git -prune -o \\( -name '*.orig' -o -name '*.rej' \\) "
        f"-type f -newermt @{START_EPOCH} -exec rm -f {{}} +; git rev-parse HEAD; "
        f"{normalise_tree(only_changed=True)}"
    )


def build_task_image(client, env_image: str, instance_id: str, bug_patch: str, gold_paths: list[str]) -> TaskImage:
    """Commit the broken state as a fresh single-commit repository into ``task_tag(instance_id)``."""
    script = start_state_script()
    container = client.containers.create(env_image, command=["bash", "-c", script], network_disabled=True,
                                         working_dir="/testbed")
    try:
        container.put_archive("/tmp", tar_file("tf-bug.diff", bug_patch.encode()))
        container.start()
        status = container.wait(timeout=300).get("StatusCode")
        if status != 0:
            raise ImageError(f"task image for {instance_id}: {container.logs().decode(errors='replace')[-300:]}")
        base_commit = container.logs(stderr=False).decode().strip().splitlines()[-1]
        start_files = {}
        for p in gold_paths:
            data = read_file(container, f"/testbed/{p}")
            if data is not None:  # None: the gold patch creates this file; it has no start state
                start_files[p] = data.decode("utf-8", errors="replace")
        repo, tag = task_tag(instance_id).split(":")
        container.commit(repository=repo, tag=tag, changes=["WORKDIR /testbed", 'CMD ["bash"]'])
        return TaskImage(image_name=f"{repo}:{tag}", base_commit=base_commit, start_files=start_files)
    finally:
        container.remove(force=True)
