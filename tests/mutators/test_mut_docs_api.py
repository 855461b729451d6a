"""docs/operators.md is generated from the code, and the public surface does not drift."""

from __future__ import annotations

import inspect

import mutators
from mutators import docs


def test_operator_docs_are_up_to_date():
    assert docs.DOC_PATH.read_text() == docs.render(), "run: python -m mutators.docs"


def test_operator_docs_show_every_operator_with_an_example_diff():
    text = docs.DOC_PATH.read_text()
    for cls in mutators.OPERATOR_CLASSES:
        assert f"### {cls.name}\n" in text
        assert docs.example_diff(cls) in text


def test_public_surface():
    assert sorted(mutators.__all__) == sorted([
        "FAMILIES", "OPERATOR_CLASSES", "CheckoutError", "CombineConfig", "ConfigError",
        "FileMutants", "MutateConfig", "MutateResult", "Mutant", "MutatorError", "combine",
        "make_operators", "mutate_repo", "mutate_source", "operator_names",
    ])
    assert list(inspect.signature(mutators.mutate_repo).parameters) == [
        "checkout", "repo", "base_commit", "coverage", "stable_passing", "config",
    ]
    assert list(inspect.signature(mutators.combine).parameters) == ["validated", "checkout", "config"]
