"""Configuration and result records of the mutate stage (the CLI only overrides fields)."""

from __future__ import annotations

from dataclasses import dataclass, field

from factory.schema import Candidate
from mutators.errors import ConfigError
from mutators.ops import all_operator_names

__all__ = ["CombineConfig", "MutateConfig", "MutateResult"]


@dataclass(frozen=True)
class CombineConfig:
    """How ``combine`` builds harder tasks from validated bugs of one file."""

    sizes: tuple[int, ...] = (2, 3)  # how many bugs a combined task holds
    max_per_file: int = 5
    max_uses_per_bug: int = 2  # how many combined tasks one validated bug may appear in
    max_bugs_per_file: int = 24  # bound on the pool per file (the combinations grow as n^3)

    def __post_init__(self) -> None:
        if not self.sizes or any(s < 2 for s in self.sizes):
            raise ConfigError(f"combine sizes must be 2 or more, got {self.sizes}")
        if self.max_per_file < 1 or self.max_uses_per_bug < 1 or self.max_bugs_per_file < 2:
            raise ConfigError("combine limits must be positive (max_per_file, max_uses_per_bug >= 1)")


@dataclass(frozen=True)
class MutateConfig:
    """What ``factory mutate`` does: ``--operators``, ``--max-per-function``, ``--seed``."""

    seed: int = 0
    max_per_function: int = 3
    operators: tuple[str, ...] | None = None  # None: every operator
    max_candidates: int | None = None  # per repository; a seeded sample when there are more
    max_file_bytes: int = 1_000_000  # larger files (generated tables, vendored bundles) are skipped
    test_file_patterns: tuple[str, ...] = ()  # globs that mark more files as tests
    combine: CombineConfig = field(default_factory=CombineConfig)

    def __post_init__(self) -> None:
        if self.max_per_function < 1:
            raise ConfigError(f"--max-per-function must be at least 1, got {self.max_per_function}")
        if self.max_candidates is not None and self.max_candidates < 1:
            raise ConfigError(f"max_candidates must be at least 1 or None, got {self.max_candidates}")
        if self.operators is not None:
            if isinstance(self.operators, str):
                raise ConfigError("operators is a tuple of names; split --operators a,b on commas")
            known = all_operator_names()
            unknown = [n for n in self.operators if n not in known]
            if unknown:
                raise ConfigError(f"unknown operator(s) {unknown} in --operators; known: {', '.join(known)}")
            if not self.operators:
                raise ConfigError("--operators is empty; leave it out to use every operator")


    @classmethod
    def from_flags(
        cls,
        *,
        seed: int = 0,
        max_per_function: int = 3,
        operators: str | None = None,
        test_file_patterns: tuple[str, ...] = (),
        **overrides,
    ) -> MutateConfig:
        """The config for ``factory mutate --seed N --max-per-function N --operators a,b``."""
        names = None
        if operators is not None:
            names = tuple(n.strip() for n in operators.split(",") if n.strip())
        return cls(
            seed=seed, max_per_function=max_per_function, operators=names,
            test_file_patterns=tuple(test_file_patterns), **overrides,
        )


@dataclass(frozen=True)
class MutateResult:
    """The candidates of one repository and counted statistics (``skipped_<reason>``, ...)."""

    candidates: list[Candidate]
    stats: dict[str, int]
