"""Pushing a dataset folder to the Hugging Face Hub through ``huggingface_hub``.

``HubPusher`` follows the datatrove pattern: create the repository, upload each shard as soon as
it is written (``preupload_lfs_files``: content goes to storage, nothing is visible yet), and make
one commit at the end that adds every file and deletes stale shards a previous push left under
``data/``. Only known-transient errors (connection failures, 408/429/5xx) are retried, with
exponential backoff and jitter; anything else raises ``HubPushError`` at once.

Resuming is re-running: the Hub skips content it already holds (LFS objects by sha256, committed
files whose oid matches), so a push interrupted after most shards were uploaded transfers only
the rest. The client picks its transfer (Xet when ``hf_xet`` is installed, LFS otherwise);
``HF_HUB_DISABLE_XET=1`` forces the plain LFS path.

The token comes from ``token``, else ``HF_TOKEN``, else the client's saved login; the endpoint
from ``endpoint``, else ``HF_ENDPOINT``.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from factory.publish_errors import HubAuthError, HubPushError, HubRepoConflictError

__all__ = ["RETRY_BASE_S", "TRANSIENT_STATUS", "HubPusher", "HubReport", "is_transient", "push_dataset_dir"]

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
RETRY_BASE_S = 1.0  # first backoff; doubles per attempt, with jitter
MAX_ATTEMPTS = 5


@dataclass
class HubReport:
    repo_id: str
    url: str
    commit_oid: str
    commit_url: str
    files: list[str] = field(default_factory=list)  # committed paths
    deleted: list[str] = field(default_factory=list)  # stale paths removed
    retries: int = 0


def is_transient(exc: BaseException) -> bool:
    """Whether a failed Hub call is worth retrying: network trouble, timeouts, 408/429/5xx."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        return status in TRANSIENT_STATUS
    return isinstance(exc, (httpx2.TransportError, ConnectionError, TimeoutError))


def _status(exc: BaseException) -> int | None:
    resp = getattr(exc, "response", None)
    return getattr(resp, "status_code", None)


class HubPusher:
    """One push of one dataset folder to ``repo_id`` (a dataset repository)."""

    def __init__(self, repo_id: str, *, private: bool = False, token: str | None = None,
                 endpoint: str | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
        try:
            from huggingface_hub import HfApi, get_token
        except ImportError as exc:  # a core dependency, but say what to install if it is missing
            raise HubPushError("huggingface_hub is not installed: pip install huggingface_hub") from exc
        self.repo_id = repo_id
        self.private = private
        self.token = token or os.environ.get("HF_TOKEN") or get_token()
        if not self.token:
            raise HubAuthError("no Hugging Face token: set HF_TOKEN (a token with write access) to push")
        self.api = HfApi(endpoint=endpoint, token=self.token)
        self.max_attempts = max_attempts
        self.retries = 0
        self._ops: list[Any] = []
        self.url = ""

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from huggingface_hub.errors import HfHubHTTPError

        for attempt in range(1, self.max_attempts + 1):
            try:
                return fn()
            except Exception as exc:
                status = _status(exc)
                if status in (401, 403):
                    raise HubAuthError(f"{what}: the Hub refused the token ({status}); check HF_TOKEN's "
                                       f"write access to {self.repo_id}") from exc
                if not is_transient(exc) or attempt == self.max_attempts:
                    kind = f"HTTP {status}" if isinstance(exc, HfHubHTTPError) else type(exc).__name__
                    raise HubPushError(f"{what} failed after {attempt} attempt(s) ({kind}): {exc}") from exc
                delay = RETRY_BASE_S * 2 ** (attempt - 1) * (0.5 + random.random())
                log.warning("%s: transient %s, retrying in %.1fs (%d/%d)", what, status or type(exc).__name__,
                            delay, attempt, self.max_attempts)
                self.retries += 1
                time.sleep(delay)
        raise AssertionError("unreachable")

    def start(self, overwrite: bool = False) -> str:
        """Create the dataset repository (or find it); return its URL.

        A repository that already holds data files is replaced only if its card carries the
        ``taskfactory`` tag (an earlier ``factory publish``) or ``overwrite`` is set.
        """
        from factory.card import CARD_TAG

        url = self._call("create repository", lambda: self.api.create_repo(
            self.repo_id, repo_type="dataset", private=self.private, exist_ok=True))
        self.url = str(url)
        info = self._call("read repository", lambda: self.api.dataset_info(self.repo_id))
        names = [s.rfilename for s in (info.siblings or [])]
        tags = list(info.card_data.get("tags") or []) if info.card_data is not None else []
        if any(n.startswith("data/") for n in names) and CARD_TAG not in tags and not overwrite:
            raise HubRepoConflictError(f"{self.repo_id} already holds data files not written by factory publish; "
                                       "pass --overwrite to replace them")
        if self.private and info.private is False:
            log.warning("%s exists and is public; --private does not change an existing repository", self.repo_id)
        return self.url

    def add(self, path: Path, path_in_repo: str) -> None:
        """Upload one file's content now; it becomes visible only with ``commit``."""
        from huggingface_hub import CommitOperationAdd

        op = CommitOperationAdd(path_in_repo=path_in_repo, path_or_fileobj=str(path))
        self._call(f"upload {path_in_repo}", lambda: self.api.preupload_lfs_files(
            self.repo_id, additions=[op], repo_type="dataset"))
        self._ops.append(op)

    def commit(self, local_dir: Path, paths: list[str], message: str | None = None) -> HubReport:
        """One commit: every added file, and deletion of remote data files this push does not have."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        for op in self._ops:  # files were added from a temporary folder that is now renamed to local_dir
            if isinstance(op.path_or_fileobj, str):
                op.path_or_fileobj = str(local_dir / op.path_in_repo)
        added = {op.path_in_repo for op in self._ops}
        for rel in paths:  # files not streamed through add() (e.g. push_dataset_dir)
            if rel not in added:
                self._ops.append(CommitOperationAdd(path_in_repo=rel, path_or_fileobj=str(local_dir / rel)))
        remote = self._call("list repository", lambda: self.api.list_repo_files(self.repo_id, repo_type="dataset"))
        keep = set(paths)
        stale = sorted(p for p in remote if p.startswith("data/") and p not in keep)
        ops = [*self._ops, *(CommitOperationDelete(path_in_repo=p) for p in stale)]
        message = message or f"Publish {len(paths) - 1} shard(s) with factory publish"
        info = self._call("commit", lambda: self.api.create_commit(
            self.repo_id, operations=ops, commit_message=message, repo_type="dataset"))
        return HubReport(repo_id=self.repo_id, url=self.url, commit_oid=info.oid, commit_url=info.commit_url,
                         files=sorted(keep), deleted=stale, retries=self.retries)


def push_dataset_dir(dataset_dir: str | os.PathLike[str], repo_id: str, *, private: bool = False,
                     token: str | None = None, endpoint: str | None = None, overwrite: bool = False) -> HubReport:
    """Push an already-written dataset folder (README.md and data/*.parquet) in one commit."""
    root = Path(dataset_dir)
    shards = sorted(p.relative_to(root).as_posix() for p in root.glob("data/*.parquet"))
    if not shards or not (root / "README.md").exists():
        raise HubPushError(f"{root} is not a published dataset folder (needs README.md and data/*.parquet)")
    pusher = HubPusher(repo_id, private=private, token=token, endpoint=endpoint)
    pusher.start(overwrite=overwrite)
    for rel in shards:
        pusher.add(root / rel, rel)
    return pusher.commit(root, [*shards, "README.md"])
