"""The trainer's exception tree: catch at the level you can handle.

    TrainerError                  anything the trainer refuses to do, with a message naming the cause
    ├── DatasetError              the dataset cannot be used as given
    │   ├── MissingColumnsError   required TaskInstance columns are absent (names them)
    │   └── EmptySplitError       a split has no rows, or renders into no samples
    ├── TokenizerError            a tokenizer lacks required special tokens (names them)
    ├── CheckpointError           a checkpoint cannot be resumed
    │   └── CheckpointMismatchError  written by another recipe / model shape (names the fields)
    └── ConfigError               a configuration field is out of range (names the flag)

Expected per-sample failures (a patch that does not apply, say) are not errors: they are
dropped with a reason and counted in `trainer.data.RenderStats`.
"""

from __future__ import annotations

__all__ = [
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DatasetError",
    "EmptySplitError",
    "MissingColumnsError",
    "TokenizerError",
    "TrainerError",
]


class TrainerError(Exception):
    """Base class of every error the trainer raises on purpose."""


class DatasetError(TrainerError):
    pass


class MissingColumnsError(DatasetError):
    def __init__(self, split: str, missing: list[str], present: list[str]):
        self.split, self.missing, self.present = split, missing, present
        super().__init__(
            f"dataset split {split!r} lacks required column(s) {', '.join(missing)}; "
            f"it has: {', '.join(present) or '(none)'}"
        )


class EmptySplitError(DatasetError):
    pass


class TokenizerError(TrainerError):
    pass


class CheckpointError(TrainerError):
    pass


class CheckpointMismatchError(CheckpointError):
    pass


class ConfigError(TrainerError):
    pass
