"""The exception tree for curating and publishing datasets.

Catch ``PublishError`` to handle every failure of ``factory publish`` at once, or one subclass
to handle one cause. ``PublishError`` is a ``factory.errors.FactoryError``, so the CLI's one
handler prints its message as the one-line reason::

    FactoryError
    └── PublishError
        ├── EmptyRunError            the run has no instances (or curation left none)
        ├── InvalidInstancesError    instances.parquet lacks columns, or rows lack required values
        ├── DatasetDirConflictError  the target folder holds something we must not overwrite
        ├── BenchmarkLoadError       a decontamination benchmark could not be read
        └── HubPushError             the Hub push failed; ``.local_dataset`` says what is on disk
            ├── HubAuthError         no token (set HF_TOKEN) or the Hub refused it
            └── HubRepoConflictError the Hub repository holds a dataset factory publish did not write

Expected outcomes that are not failures (an instance dropped by a filter, a duplicate, a
benchmark overlap) are never raised: they are counted, with a reason, in the reports.
"""

from __future__ import annotations

from pathlib import Path

from factory.errors import FactoryError

__all__ = [
    "BenchmarkLoadError",
    "DatasetDirConflictError",
    "EmptyRunError",
    "HubAuthError",
    "HubPushError",
    "HubRepoConflictError",
    "InvalidInstancesError",
    "PublishError",
]


class PublishError(FactoryError):
    """Base class: publishing could not be done as asked; nothing half-done was left unsaid."""

    reason = "publish_failed"


class EmptyRunError(PublishError):
    """No instances to publish: instances.parquet is missing or empty, or every row was dropped."""

    reason = "empty_run"


class InvalidInstancesError(PublishError):
    """instances.parquet does not hold valid TaskInstance rows (missing columns or values)."""

    reason = "invalid_instances"


class DatasetDirConflictError(PublishError):
    """The dataset folder already holds another dataset (or other files); pass overwrite to replace it."""

    reason = "dataset_dir_conflict"


class BenchmarkLoadError(PublishError):
    """A benchmark named for decontamination could not be loaded or lacks the SWE-bench columns."""

    reason = "bad_benchmark"


class HubPushError(PublishError):
    """The push to the Hub failed. Nothing was committed unless ``committed`` is true.

    Uploaded shards that were not committed are invisible on the Hub; re-running the same push
    resumes (the Hub skips content it already holds).
    """

    reason = "hub_push_failed"

    def __init__(self, message: str, *, local_dataset: Path | None = None, committed: bool = False) -> None:
        super().__init__(message)
        self.local_dataset = local_dataset
        self.committed = committed


class HubAuthError(HubPushError):
    """No Hub token was found (set HF_TOKEN), or the Hub rejected it."""

    reason = "hub_auth"


class HubRepoConflictError(HubPushError):
    """The Hub repository already holds data files that factory publish did not write; pass overwrite."""

    reason = "hub_repo_conflict"
