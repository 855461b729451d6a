"""The exceptions the mutators raise; catch at the level you can act on.

    MutatorError                 anything the mutators raise on purpose
    ├── ConfigError (ValueError) a MutateConfig that cannot work (unknown operator, bad limit)
    └── CheckoutError            the checkout is not a directory we can read

Expected, per-file problems (a file libcst cannot parse, a non-UTF-8 file, a symlink out of the
repository, a mutant that does not compile) are never raised: they are counted as
``skipped_<reason>`` in ``MutateResult.stats``.
"""

from __future__ import annotations

__all__ = ["CheckoutError", "ConfigError", "MutatorError"]


class MutatorError(Exception):
    """Base class of every error the mutators raise on purpose."""


class ConfigError(MutatorError, ValueError):
    """A configuration that cannot work; the message names the flag to change."""


class CheckoutError(MutatorError):
    """The checkout path is missing or is not a directory."""
