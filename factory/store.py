"""The run directory: where every stage's output lives, written atomically.

Layout (see DESIGN.md)::

    runs/<run>/
      manifest.json
      repos/<repo_key>/env.json, baseline.parquet, coverage.parquet,
                       candidates.parquet, validations.parquet, failure.json
      instances.parquet
      dataset/

Every write goes to a temporary name in the same folder and is renamed into place, so a reader
never sees half a file and an interrupted stage leaves the previous file intact. A stage asks
``exists`` before working, which is what makes re-runs resume instead of redo.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from factory.schema import from_table, to_table

__all__ = ["RepoDir", "RunStore", "atomic_path", "read_json", "write_json", "write_records", "read_records"]


@contextmanager
def atomic_path(dest: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it over ``dest`` only if the block succeeds."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o644)  # mkstemp makes 0600; outputs are for others to read too
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(dest: Path, data: Any) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def write_table(dest: Path, table: pa.Table) -> None:
    with atomic_path(dest) as tmp:
        pq.write_table(table, tmp)


def write_records(dest: Path, records: list[Any], cls: type) -> None:
    write_table(dest, to_table(records, cls))


def read_records(path: Path, cls: type) -> list[Any]:
    return from_table(pq.read_table(path), cls)


class RepoDir:
    """One repository's folder in a run."""

    def __init__(self, root: Path) -> None:
        self.root = root

    env_json = property(lambda self: self.root / "env.json")
    baseline = property(lambda self: self.root / "baseline.parquet")
    coverage = property(lambda self: self.root / "coverage.parquet")
    candidates = property(lambda self: self.root / "candidates.parquet")
    validations = property(lambda self: self.root / "validations.parquet")
    failure = property(lambda self: self.root / "failure.json")
    spec_json = property(lambda self: self.root / "spec.json")
    logs = property(lambda self: self.root / "logs")

    def write_spec(self, spec: Any) -> None:
        """Remember which RepoSpec this folder belongs to, so run-level commands can find it."""
        if not self.spec_json.exists():
            write_json(self.spec_json, dataclasses.asdict(spec))

    def read_spec(self) -> dict[str, Any] | None:
        if self.spec_json.exists():
            return read_json(self.spec_json)
        if self.env_json.exists():  # folders written before spec.json existed
            return read_json(self.env_json).get("repo_spec")
        return None

    def record_failure(self, stage: str, reason: str, **detail: Any) -> None:
        """Write why a stage failed for this repository, beside (never over) its good outputs."""
        failures = read_json(self.failure) if self.failure.exists() else {}
        failures[stage] = {"reason": reason, "at": _now(), **detail}
        write_json(self.failure, failures)

    def clear_failure(self, stage: str) -> None:
        if self.failure.exists():
            failures = read_json(self.failure)
            if failures.pop(stage, None) is not None:
                if failures:
                    write_json(self.failure, failures)
                else:
                    self.failure.unlink()


class RunStore:
    """A run directory. Creating one is cheap; nothing is written until a stage writes."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    manifest = property(lambda self: self.root / "manifest.json")
    instances = property(lambda self: self.root / "instances.parquet")
    dataset = property(lambda self: self.root / "dataset")

    def repo(self, key: str) -> RepoDir:
        return RepoDir(self.root / "repos" / key)

    def repo_keys(self) -> list[str]:
        base = self.root / "repos"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.exists() else []

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        """Merge fields into manifest.json (created on first use with a timestamp)."""
        data = read_json(self.manifest) if self.manifest.exists() else {"created_at": _now()}
        for k, v in fields.items():
            if isinstance(v, dict) and isinstance(data.get(k), dict):
                data[k] = {**data[k], **v}
            else:
                data[k] = v
        data["updated_at"] = _now()
        write_json(self.manifest, data)
        return data


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
