"""The operator registry: every operator, in a fixed order (the order candidates come out in)."""

from __future__ import annotations

from mutators.base import Operator
from mutators.errors import ConfigError
from mutators.ops.calls import DropArgument, SwapArguments, SwapStringMethod
from mutators.ops.classes import RemoveBaseClass, RemoveMethodOverride, RemovePropertySetter
from mutators.ops.control import (
    DropEarlyReturn,
    InvertIfCondition,
    RemoveElifElse,
    RemoveLoopBodyEffect,
    ShuffleStatements,
    SwapBreakContinue,
    SwapIfElseBodies,
)
from mutators.ops.operations import (
    BreakMethodChain,
    OffByOneConstant,
    OffByOneIndex,
    OffByOneRange,
    OffByOneSlice,
    SwapArithmetic,
    SwapAugmentedAssignment,
    SwapBooleanOperator,
    SwapComparison,
    SwapOperands,
)
from mutators.ops.removals import (
    RemoveAssignment,
    RemoveCallStatement,
    RemoveConditional,
    RemoveDecorator,
    RemoveExceptionHandler,
    RemoveGuardClause,
    UnwrapCall,
)
from mutators.ops.values import (
    ChangeDefaultArgument,
    ChangeLiteral,
    FlipBoolean,
    ReturnInput,
    ReturnNone,
)

__all__ = ["OPERATOR_CLASSES", "FAMILIES", "all_operator_names", "make_operators", "operator_names"]

FAMILIES = ("operations", "control_flow", "removals", "values", "calls", "classes")

OPERATOR_CLASSES: tuple[type[Operator], ...] = (
    SwapArithmetic, SwapAugmentedAssignment, SwapComparison, SwapBooleanOperator, SwapOperands,
    OffByOneConstant, OffByOneRange, OffByOneSlice, OffByOneIndex, BreakMethodChain,
    InvertIfCondition, SwapIfElseBodies, RemoveElifElse, RemoveLoopBodyEffect, SwapBreakContinue,
    DropEarlyReturn, ShuffleStatements,
    RemoveAssignment, RemoveConditional, RemoveCallStatement, RemoveDecorator, UnwrapCall,
    RemoveExceptionHandler, RemoveGuardClause,
    ChangeLiteral, ChangeDefaultArgument, FlipBoolean, ReturnNone, ReturnInput,
    SwapArguments, DropArgument, SwapStringMethod,
    RemoveMethodOverride, RemoveBaseClass, RemovePropertySetter,
)


def operator_names() -> tuple[str, ...]:
    return tuple(c.name for c in OPERATOR_CLASSES)


def all_operator_names() -> tuple[str, ...]:
    """Every operator ``--operators`` may name: Python's (libcst), then those of JavaScript,
    TypeScript and Go (``mutators.treesitter``) that Python has no operator of that name for."""
    from mutators.treesitter.ops import ts_operator_names  # noqa: PLC0415

    python = operator_names()
    return python + tuple(n for n in ts_operator_names() if n not in python)


def make_operators(names: tuple[str, ...] | None = None) -> list[Operator]:
    """Fresh Python operator instances (they hold per-run state), in registry order; names of
    other languages' operators select nothing here."""
    if names is None:
        return [c() for c in OPERATOR_CLASSES]
    known = all_operator_names()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown operator(s) {unknown} in --operators; known: {', '.join(known)}")
    wanted = set(names)
    return [c() for c in OPERATOR_CLASSES if c.name in wanted]
