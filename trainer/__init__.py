"""trainer: train a Qwen3-MoE code model on the factory's published tasks; export it to transformers.

Entry point: `from trainer.train import train` (the module `trainer.train` is also what
`torchrun -m trainer.train` runs, so the package does not re-export the function under that name).
    train(dataset, recipe="tiny", out=..., steps=None, resume=False, ...) -> TrainResult
Also here, imported lazily so that `import trainer` does not import torch: TrainResult, get_recipe,
RECIPES, export, and the exception tree of `trainer.errors`.
Modules: config (recipes), data (rendering), packing, tokenizer, model, expert_parallel, export,
checkpoint, train.
"""

from __future__ import annotations

import importlib

from trainer.errors import (
    CheckpointError,
    CheckpointMismatchError,
    ConfigError,
    DatasetError,
    EmptySplitError,
    MissingColumnsError,
    TokenizerError,
    TrainerError,
)

__all__ = [
    "RECIPES",
    "CheckpointError",
    "CheckpointMismatchError",
    "ConfigError",
    "DatasetError",
    "EmptySplitError",
    "MissingColumnsError",
    "TokenizerError",
    "TrainResult",
    "TrainerError",
    "export",
    "get_recipe",
]

_LAZY = {"TrainResult": "trainer.train", "export": "trainer.export",
         "get_recipe": "trainer.config", "RECIPES": "trainer.config"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
