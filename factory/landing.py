"""Items that return records, and the one writer that lands them in the run directory.

A cluster node need not see the run directory. The driver packs what an item reads — its
repository's folder, ``repos/<key>/`` — into the item (``pack_inputs``); the node unpacks it into
a scratch run directory of its own, runs the stage's own function there (``run_packed``: the very
``run_item`` the local executor runs) and returns an ``ItemRecord``: the outcome, the files under
``repos/<key>/`` that the item wrote or changed (bytes) and those it removed, and its log lines.
The driver — the only process that writes the run directory — lands each record as it arrives
(``land``), every file atomically (``factory.store.atomic_path``).

Files a repository item writes outside its folder are derived from every repository's files
(``instances.parquet``): the driver re-derives them after landing (``Stage.after_land``) instead
of taking one node's partial copy. Resume works as before: what landed is on the driver's disk,
and every stage skips what is there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from factory.config import RunConfig
from factory.stage import StageOutcome, WorkItem
from factory.store import atomic_path
from verifiers.isolation import RUN_ENV

__all__ = ["RUN_ENV", "ItemRecord", "land", "pack_inputs", "run_id_for", "run_packed"]


@dataclass
class ItemRecord:
    """What one item produced, as data: nothing in it refers to the node's disk."""

    item: WorkItem
    outcome: StageOutcome
    writes: dict[str, bytes] = field(default_factory=dict)  # run-relative path -> content
    deletes: tuple[str, ...] = ()  # run-relative paths the item removed
    logs: list[str] = field(default_factory=list)
    node: str = ""  # the host it ran on
    pid: int = 0

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in self.writes.values())


def run_id_for(cfg: RunConfig, run_dir: Path) -> str:
    """A run's id: its config name and its directory (a resumed run keeps its id, so its sweep
    finds what an interrupted attempt left)."""
    digest = hashlib.sha1(str(Path(run_dir).resolve()).encode()).hexdigest()[:10]
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in cfg.name)[:40]
    return f"{safe}-{digest}"


def _repo_prefix(item: WorkItem) -> str:
    return f"repos/{item.repo}/"


def pack_inputs(run_dir: Path, item: WorkItem) -> dict[str, bytes]:
    """The files an item may read: its repository's folder (``repos/<key>/``), as bytes."""
    root = Path(run_dir) / "repos" / item.repo
    out: dict[str, bytes] = {}
    if root.is_dir():
        for p in sorted(root.rglob("*")):
            if p.is_file() and not p.name.startswith("."):  # not an atomic write's temporary
                out[f"{_repo_prefix(item)}{p.relative_to(root).as_posix()}"] = p.read_bytes()
    return out


def _snapshot(root: Path, prefix: str) -> dict[str, str]:
    base = root / prefix
    out = {}
    if base.is_dir():
        for p in base.rglob("*"):
            if p.is_file() and not p.name.startswith("."):
                out[p.relative_to(root).as_posix()] = hashlib.sha1(p.read_bytes()).hexdigest()
    return out


def run_packed(cfg: RunConfig, inputs: dict[str, bytes], item: WorkItem, run_id: str = "",
               placement=None) -> ItemRecord:
    """Run ``item`` over a scratch run directory holding ``inputs``; return what it changed.

    ``placement`` (``factory.placement.Placement``): what must be true on this node before the
    item runs (its images) and what to share after. Runs wherever it is called: a Ray worker, a
    test, this process."""
    from factory.executors import run_item  # noqa: PLC0415
    from factory.store import RunStore  # noqa: PLC0415

    logs: list[str] = []

    def log(msg: str) -> None:
        logs.append(str(msg))

    scratch = Path(tempfile.mkdtemp(prefix="tf-item-"))
    old = os.environ.get(RUN_ENV)
    if run_id:
        os.environ[RUN_ENV] = run_id
    t0 = time.monotonic()
    try:
        for rel, data in inputs.items():
            dest = scratch / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        prefix = _repo_prefix(item)
        before = _snapshot(scratch, prefix)
        store = RunStore(scratch)
        outcome = placement.before(cfg, store, item, log) if placement is not None else None
        if outcome is None:
            outcome = run_item(cfg, str(scratch), item, log)
            if placement is not None:
                placement.after(cfg, store, item, outcome, log)
        after = _snapshot(scratch, prefix)
        writes = {rel: (scratch / rel).read_bytes() for rel, h in sorted(after.items()) if before.get(rel) != h}
        deletes = tuple(sorted(set(before) - set(after)))
        if not outcome.seconds:
            outcome.seconds = time.monotonic() - t0
        return ItemRecord(item, outcome, writes, deletes, logs, socket.gethostname(), os.getpid())
    finally:
        if run_id:
            if old is None:
                os.environ.pop(RUN_ENV, None)
            else:
                os.environ[RUN_ENV] = old
        shutil.rmtree(scratch, ignore_errors=True)


def land(run_dir: Path, record: ItemRecord) -> int:
    """Write a record's files into the run directory (each atomically) and remove what it removed.

    Only paths inside the item's repository folder are taken: a record cannot write elsewhere.
    Returns the number of files written."""
    root = Path(run_dir).resolve()
    prefix = _repo_prefix(record.item)
    n = 0
    for rel, data in record.writes.items():
        if not rel.startswith(prefix) or ".." in Path(rel).parts:
            raise ValueError(f"{record.item.key}: its record writes {rel!r}, outside {prefix}")
        with atomic_path(root / rel) as tmp:
            tmp.write_bytes(data)
        n += 1
    for rel in record.deletes:
        if rel.startswith(prefix) and ".." not in Path(rel).parts:
            (root / rel).unlink(missing_ok=True)
    return n
