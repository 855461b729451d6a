"""The exceptions the mutators raise; catch at the level you can act on.

    FactoryError (factory.errors)
    └── MutatorError             anything the mutators raise on purpose
        ├── ConfigError          a MutateConfig that cannot work (also factory.errors.ConfigError, ValueError)
        └── CheckoutError        the checkout is not a directory we can read

Expected, per-file problems (a file libcst cannot parse, a non-UTF-8 file, a symlink out of the
repository, a mutant that does not compile) are never raised: they are counted as
``skipped_<reason>`` in ``MutateResult.stats``.
"""

from __future__ import annotations

from factory.errors import ConfigError as BaseConfigError
from factory.errors import FactoryError

__all__ = ["CheckoutError", "ConfigError", "MutatorError"]


class MutatorError(FactoryError):
    """Base class of every error the mutators raise on purpose (a ``FactoryError``)."""

    reason = "mutate_failed"


class ConfigError(MutatorError, BaseConfigError, ValueError):
    """A configuration that cannot work; the message names the flag to change."""

    reason = "bad_config"


class CheckoutError(MutatorError):
    """The checkout path is missing or is not a directory."""
