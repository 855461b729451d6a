"""The trainer's public surface stays explicit, and importing it does not import torch."""

from __future__ import annotations

import subprocess
import sys

import trainer


def test_public_names_are_exactly_these():
    assert sorted(trainer.__all__) == sorted([
        "RECIPES", "CheckpointError", "CheckpointMismatchError", "ConfigError", "DatasetError",
        "EmptySplitError", "MissingColumnsError", "TokenizerError", "TrainResult", "TrainerError",
        "export", "get_recipe",
    ])
    for name in trainer.__all__:
        assert getattr(trainer, name) is not None


def test_every_trainer_error_derives_from_trainer_error():
    for name in trainer.__all__:
        obj = getattr(trainer, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, trainer.TrainerError)


def test_import_trainer_is_light():
    code = "import sys, trainer, trainer.config, trainer.errors; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_recipes_derive_from_one_dial_and_small_is_about_half_a_billion():
    total, active = trainer.get_recipe("small").model.num_params()
    assert 0.4e9 < total < 0.6e9 and active < total / 3
    tiny_total, _ = trainer.get_recipe("tiny").model.num_params()
    assert tiny_total < 1e6


def test_parameter_count_formula_matches_the_model():
    import torch

    from trainer.model import MoEDecoder

    cfg = trainer.get_recipe("small").model
    with torch.device("meta"):
        model = MoEDecoder(cfg)
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params()[0]
