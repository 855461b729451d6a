"""Candidates from code transforms: realistic Python bugs where the tests will notice them.

The stage's public surface (what ``factory mutate`` calls):

- ``mutate_repo(checkout, repo, base_commit, coverage, stable_passing, config) -> MutateResult``
- ``combine(validated, checkout, config) -> MutateResult`` (for ``--combine``)
- ``MutateConfig`` / ``CombineConfig`` (the CLI overrides fields), ``MutateResult``
- ``operator_names()`` for ``--operators`` help; ``mutate_source`` for one module's text.

Not for: running tests, deciding whether a bug is caught (``verifiers``), writing parquet.
"""

from mutators.combine import combine
from mutators.config import CombineConfig, MutateConfig, MutateResult
from mutators.engine import FileMutants, Mutant, mutate_source
from mutators.errors import CheckoutError, ConfigError, MutatorError
from mutators.ops import FAMILIES, OPERATOR_CLASSES, make_operators, operator_names
from mutators.stage import mutate_repo

__all__ = [
    "FAMILIES",
    "OPERATOR_CLASSES",
    "CheckoutError",
    "CombineConfig",
    "ConfigError",
    "FileMutants",
    "MutateConfig",
    "MutateResult",
    "Mutant",
    "MutatorError",
    "combine",
    "make_operators",
    "mutate_repo",
    "mutate_source",
    "operator_names",
]
