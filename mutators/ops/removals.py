"""Removals: a forgotten assignment, condition, call, wrapper, decorator, handler or guard."""

from __future__ import annotations

import libcst as cst

from mutators.base import (
    Operator,
    as_statement_removal,
    dotted_name,
    parenthesize,
    single_small,
)
from mutators.ops.control import _ends_with, _names


def _param_names(fn: cst.FunctionDef | None) -> set[str]:
    if fn is None:
        return set()
    p = fn.params
    params = [*p.posonly_params, *p.params, *p.kwonly_params]
    for star in (p.star_arg, p.star_kwarg):
        if isinstance(star, cst.Param):
            params.append(star)
    return {x.name.value for x in params}


class RemoveAssignment(Operator):
    name = "remove_assignment"
    family = "removals"
    explanation = "Delete an assignment that updates existing state (an attribute, an item, or a name that already has a value)."
    node_types = (cst.SimpleStatementLine,)
    example = "def clean(text):\n    text = text.strip()\n    return text.replace('  ', ' ')\n"

    def applies(self, node, ctx):
        small = single_small(node)
        if not ctx.in_function_body() or not isinstance(small, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
            return False
        if isinstance(small, cst.AugAssign):
            return True
        if isinstance(small, cst.AnnAssign):
            if small.value is None:
                return False
            targets = [small.target]
        else:
            if len(small.targets) != 1:
                return False
            targets = [small.targets[0].target]
        target = targets[0]
        if isinstance(target, (cst.Attribute, cst.Subscript)):
            return True
        # Removing the only binding of a local gives a NameError, not a bug: keep rebinds only.
        return isinstance(target, cst.Name) and (
            target.value in _names(small.value) or target.value in _param_names(ctx.function)
        )

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)


class RemoveConditional(Operator):
    name = "remove_conditional"
    family = "removals"
    explanation = "Delete a whole if block (no else) that adjusts state, as if the case was forgotten."
    node_types = (cst.If,)
    example = "def clamp_low(x, lo):\n    if x < lo:\n        x = lo\n    return x\n"

    def applies(self, node, ctx):
        return (
            ctx.in_function_body()
            and node.orelse is None
            and not _ends_with(node.body, (cst.Return, cst.Raise))
            and isinstance(ctx.parent, cst.IndentedBlock)
        )

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)


_QUIET_CALLS = {
    "print", "log", "debug", "info", "warning", "warn", "error", "exception", "critical",
    "trace", "emit", "breakpoint", "sleep",
}


class RemoveCallStatement(Operator):
    name = "remove_call_statement"
    family = "removals"
    explanation = "Delete a call made for its side effect (items.append(x), self._validate())."
    node_types = (cst.SimpleStatementLine,)
    example = "def add_tag(tags, tag):\n    tags.append(tag)\n    return len(tags)\n"

    def applies(self, node, ctx):
        small = single_small(node)
        if not ctx.in_function_body() or not isinstance(small, cst.Expr):
            return False
        call = small.value
        if isinstance(call, cst.Await):
            call = call.expression
        if not isinstance(call, cst.Call):
            return False
        name = dotted_name(call.func) or ""
        parts = name.split(".")
        # Logging, printing and warnings are rarely what a test checks.
        return not (parts[-1] in _QUIET_CALLS or any(p in ("logger", "logging", "log", "warnings") for p in parts))

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)


_KEEP_DECORATORS = {
    "overload", "override", "final", "abstractmethod", "runtime_checkable", "no_type_check",
    "wraps", "cache", "lru_cache", "cached_property", "total_ordering",
}


class RemoveDecorator(Operator):
    name = "remove_decorator"
    family = "removals"
    explanation = "Delete a decorator (@property, @staticmethod, @classmethod, @contextmanager, ...)."
    node_types = (cst.Decorator,)
    example = "class Box:\n    def __init__(self, w):\n        self._w = w\n\n    @property\n    def width(self):\n        return self._w\n"

    def applies(self, node, ctx):
        expr = node.decorator
        if isinstance(expr, cst.Call):
            expr = expr.func
        name = dotted_name(expr)
        if name is None:
            return False
        last = name.rsplit(".", 1)[-1]
        # Setters are remove_property_setter's; typing/caching markers change nothing testable.
        return last not in _KEEP_DECORATORS and last not in ("setter", "deleter", "getter") and not name.startswith("pytest.")

    def coverage_nodes(self, node, ctx, variant):
        return ctx.parent, ctx.parent

    def mutate(self, node, ctx, variant, rng):
        return cst.RemovalSentinel.REMOVE


_WRAPPERS = {
    "sorted", "list", "tuple", "set", "frozenset", "str", "int", "float", "bool", "abs",
    "reversed", "dict", "deepcopy", "round", "repr", "iter",
}


class UnwrapCall(Operator):
    name = "unwrap_call"
    family = "removals"
    explanation = "Remove a wrapper call around a value (sorted(xs) to xs, int(s) to s, list(it) to it)."
    node_types = (cst.Call,)
    example = "def ranking(scores):\n    return sorted(scores)\n"

    def applies(self, node, ctx):
        name = dotted_name(node.func) or ""
        return (
            name.rsplit(".", 1)[-1] in _WRAPPERS
            and len(node.args) == 1
            and node.args[0].keyword is None
            and not node.args[0].star
            and not isinstance(node.args[0].value, cst.GeneratorExp)
            and not ctx.in_annotation_or_decorator()
        )

    def mutate(self, node, ctx, variant, rng):
        inner = parenthesize(node.args[0].value)
        if node.lpar:
            inner = inner.with_changes(lpar=node.lpar, rpar=node.rpar)
        return inner


class RemoveExceptionHandler(Operator):
    name = "remove_exception_handler"
    family = "removals"
    explanation = "Delete an except clause; when it is the only one, the try body runs unprotected."
    node_types = (cst.Try,)
    example = "def parse_int(s, default=0):\n    try:\n        return int(s)\n    except ValueError:\n        return default\n"

    def variants(self, node, ctx):
        if len(node.handlers) > 1:
            return tuple(range(len(node.handlers)))
        if not node.handlers:
            return ()
        if node.finalbody is not None:
            return () if node.orelse is not None else (0,)
        # Unwrapping needs a statement block to splice the body into.
        return (0,) if isinstance(ctx.parent, (cst.IndentedBlock, cst.Module)) else ()

    def span_nodes(self, node, variant):
        return node.handlers[variant], node.handlers[variant]

    def coverage_nodes(self, node, ctx, variant):
        return node.body, node.body

    def mutate(self, node, ctx, variant, rng):
        if len(node.handlers) > 1:
            handlers = [h for i, h in enumerate(node.handlers) if i != variant]
            return node.with_changes(handlers=handlers)
        if node.finalbody is not None:
            return node.with_changes(handlers=[])
        body = list(node.body.body)
        if node.orelse is not None:
            body += list(node.orelse.body.body)
        if body:
            body[0] = body[0].with_changes(leading_lines=[*node.leading_lines, *body[0].leading_lines])
        return cst.FlattenSentinel(body)


class RemoveGuardClause(Operator):
    name = "remove_guard_clause"
    family = "removals"
    explanation = "Delete an `if ...: raise` guard, so invalid input is no longer rejected."
    node_types = (cst.If,)
    example = "def withdraw(balance, amount):\n    if amount > balance:\n        raise ValueError('insufficient funds')\n    return balance - amount\n"

    def applies(self, node, ctx):
        body = node.body.body
        return (
            ctx.in_function_body()
            and node.orelse is None
            and len(body) == 1
            and _ends_with(node.body, (cst.Raise,))
            and isinstance(ctx.parent, cst.IndentedBlock)
        )

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)
