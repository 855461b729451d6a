"""The operator protocol: one small libcst transformer per kind of bug, plus shared helpers.

An operator declares *what* it is (``name``, ``family``, a one-line ``explanation``, an
``example`` for the docs) and *where* it applies (``node_types`` and ``variants``). The engine
(``mutators.engine``) finds the sites, picks which ones to materialise and calls ``rewrite``,
which runs the operator as a ``CSTTransformer`` that descends only along the path to the one
node it changes, so every mutant changes exactly one site.

This module knows nothing about files, coverage or candidates.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Union

import libcst as cst

__all__ = [
    "Context",
    "Operator",
    "Replacement",
    "as_statement_removal",
    "child_nodes",
    "dotted_name",
    "is_atomic",
    "is_string_literal",
    "names_in",
    "operand",
    "parenthesize",
    "single_small",
    "space",
]

Replacement = Union[cst.CSTNode, cst.RemovalSentinel, cst.FlattenSentinel]  # noqa: UP007 (a runtime alias on 3.10)

_SPACE = cst.SimpleWhitespace(" ")


@dataclass(frozen=True)
class Context:
    """Where a node sits: its ancestors, outermost first (the module itself excluded)."""

    path: tuple[cst.CSTNode, ...]
    module: cst.Module | None = None  # for operators that look elsewhere (a base class's methods)
    # Class name -> method names of the classes defined anywhere in the repository (when known).
    classes: Mapping[str, frozenset[str]] | None = None

    @property
    def parent(self) -> cst.CSTNode | None:
        return self.path[-1] if self.path else None

    @property
    def grandparent(self) -> cst.CSTNode | None:
        return self.path[-2] if len(self.path) >= 2 else None

    @property
    def function(self) -> cst.FunctionDef | None:
        """The innermost enclosing function."""
        for node in reversed(self.path):
            if isinstance(node, cst.FunctionDef):
                return node
        return None

    @property
    def klass(self) -> cst.ClassDef | None:
        """The innermost enclosing class."""
        for node in reversed(self.path):
            if isinstance(node, cst.ClassDef):
                return node
        return None

    def inside(self, *types: type) -> bool:
        return any(isinstance(node, types) for node in self.path)

    def in_annotation_or_decorator(self) -> bool:
        """Type annotations, decorators and class bases are not where behaviour bugs live."""
        if self.inside(cst.Annotation, cst.Decorator):
            return True
        # Class bases and keywords (`class P(Base[str | None], metaclass=M)`): an Arg of a ClassDef.
        return any(
            isinstance(a, cst.ClassDef) and isinstance(b, cst.Arg)
            for a, b in zip(self.path, self.path[1:], strict=False)
        )

    def block_siblings(self) -> Sequence[cst.CSTNode]:
        """The statements of the block that directly holds this statement (or ``()``)."""
        parent = self.parent
        if isinstance(parent, (cst.IndentedBlock, cst.Module)):
            return parent.body
        return ()

    def in_function_body(self) -> bool:
        return self.function is not None


class Operator(cst.CSTTransformer):
    """One kind of bug. Subclasses set the class attributes and implement ``mutate``.

    ``variants(node, ctx)`` lists the distinct mutations of one node (most operators have one
    and return ``(None,)``; "remove the i-th base class" has one per base, "n + 1 or n - 1" has
    two). Alternatives are variants rather than random draws, so every one of them can be
    tested and the seed only decides which the engine keeps. ``mutate`` also gets a
    ``random.Random`` seeded from (seed, operator, location) for an operator whose choices are
    too many to enumerate; none of the current ones needs it.
    """

    name: ClassVar[str]
    family: ClassVar[str]  # operations, control_flow, removals, values, calls, classes
    explanation: ClassVar[str]
    node_types: ClassVar[tuple[type[cst.CSTNode], ...]]
    # "function": the mutation belongs to the innermost function or class around the site;
    # "class": to the innermost class (the site itself when it is a class).
    unit: ClassVar[str] = "function"
    example: ClassVar[str]  # a small module the operator applies to; the docs show its diff

    def applies(self, node: cst.CSTNode, ctx: Context) -> bool:
        return True

    def variants(self, node: cst.CSTNode, ctx: Context) -> Sequence[Hashable]:
        return (None,) if self.applies(node, ctx) else ()

    def span_nodes(self, node: cst.CSTNode, variant: Hashable) -> tuple[cst.CSTNode, cst.CSTNode]:
        """The first and last node whose lines the mutation touches (for start/end line)."""
        return node, node

    def coverage_nodes(
        self, node: cst.CSTNode, ctx: Context, variant: Hashable
    ) -> tuple[cst.CSTNode, cst.CSTNode]:
        """First and last node of the lines tests must execute for the bug to be noticed."""
        return self.span_nodes(node, variant)

    def mutate(
        self, node: cst.CSTNode, ctx: Context, variant: Hashable, rng: random.Random
    ) -> Replacement:
        raise NotImplementedError

    # -- the transformer machinery: change one node, touch nothing else ------------------------

    def rewrite(
        self,
        root: cst.CSTNode,
        target: cst.CSTNode,
        ctx: Context,
        variant: Hashable,
        rng: random.Random,
    ) -> cst.CSTNode | cst.RemovalSentinel | cst.FlattenSentinel:
        """``root`` with ``target`` (a node inside it, ``ctx`` its context) mutated."""
        self._target = target
        self._ancestors = {id(n) for n in ctx.path}
        self._call = (ctx, variant, rng)
        try:
            return root.visit(self)
        finally:
            del self._target, self._ancestors, self._call

    def on_visit(self, node: cst.CSTNode) -> bool:
        # Descend only towards the target: siblings are returned untouched, and cheaply.
        return id(node) in self._ancestors

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Replacement:
        if original_node is self._target:
            ctx, variant, rng = self._call
            return self.mutate(updated_node, ctx, variant, rng)
        return updated_node


# ---------------------------------------------------------------------------------------------
# Helpers the operators share
# ---------------------------------------------------------------------------------------------

_ATOMIC = (
    cst.Name, cst.Attribute, cst.Call, cst.Subscript, cst.Integer, cst.Float, cst.Imaginary,
    cst.SimpleString, cst.ConcatenatedString, cst.FormattedString, cst.List, cst.Tuple,
    cst.Dict, cst.Set, cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Ellipsis,
)


def is_atomic(expr: cst.BaseExpression) -> bool:
    """True when ``expr`` can sit anywhere in an expression without parentheses."""
    if getattr(expr, "lpar", None):
        return True
    if isinstance(expr, cst.Tuple):
        return bool(expr.lpar)
    return isinstance(expr, _ATOMIC)


def parenthesize(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``expr`` wrapped in parentheses unless it is atomic (so moving it keeps its meaning)."""
    if is_atomic(expr):
        return expr
    return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])


_BINARY_PRECEDENCE = {
    cst.BitOr: 1, cst.BitXor: 2, cst.BitAnd: 3, cst.LeftShift: 4, cst.RightShift: 4,
    cst.Add: 5, cst.Subtract: 5, cst.Multiply: 6, cst.Divide: 6, cst.FloorDivide: 6,
    cst.Modulo: 6, cst.MatrixMultiply: 6, cst.Power: 8,
}
_UNARY_PRECEDENCE = 7  # -x, +x, ~x


def _precedence(expr: cst.BaseExpression) -> int:
    """Binding strength of an unparenthesised expression (atoms bind tightest)."""
    if is_atomic(expr) or isinstance(expr, cst.Await):
        return 10
    if isinstance(expr, cst.BinaryOperation):
        return _BINARY_PRECEDENCE[type(expr.operator)]
    if isinstance(expr, cst.UnaryOperation) and not isinstance(expr.operator, cst.Not):
        return _UNARY_PRECEDENCE
    return 0  # comparisons, not, and/or, if-else, lambda, walrus: below any arithmetic


def operand(expr: cst.BaseExpression, parent: cst.BaseBinaryOp | None, side: str) -> cst.BaseExpression:
    """``expr`` ready to be the ``side`` ("left"/"right") operand of ``parent``.

    Parentheses only where Python's grammar needs them: `b * 2 - a`, but `(b - c) - a`.
    ``parent`` None means a comparison operand.
    """
    mine = _precedence(expr)
    if parent is None:
        need = mine == 0
    else:
        theirs = _BINARY_PRECEDENCE[type(parent)]
        right_assoc = isinstance(parent, cst.Power)
        if side == "left":
            need = mine < theirs or (right_assoc and mine <= theirs)
        else:
            need = mine < theirs or (not right_assoc and mine == theirs)
    if need:
        return expr.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return expr


def space(ws: cst.BaseParenthesizableWhitespace | cst.MaybeSentinel) -> cst.SimpleWhitespace:
    """At least one space: `return(x)` mutated to `return None` must not become `returnNone`."""
    if isinstance(ws, cst.SimpleWhitespace) and ws.value:
        return ws
    return _SPACE


def is_string_literal(expr: cst.CSTNode) -> bool:
    return isinstance(expr, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString))


def dotted_name(expr: cst.CSTNode) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    if isinstance(expr, cst.Name):
        return expr.value
    if isinstance(expr, cst.Attribute):
        base = dotted_name(expr.value)
        return None if base is None else f"{base}.{expr.attr.value}"
    return None


def as_statement_removal(ctx: Context) -> cst.RemovalSentinel | cst.SimpleStatementLine:
    """Remove a statement; in a block of one, leave ``pass`` so the block stays valid."""
    if len(ctx.block_siblings()) <= 1:
        return cst.SimpleStatementLine([cst.Pass()])
    return cst.RemovalSentinel.REMOVE


_SKIP_CHILDREN = (
    cst.SimpleWhitespace, cst.ParenthesizedWhitespace, cst.TrailingWhitespace, cst.EmptyLine,
    cst.Newline, cst.Comment, cst.Colon, cst.Comma, cst.Dot, cst.LeftParen, cst.RightParen,
    cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace, cst.RightCurlyBrace,
    cst.Semicolon, cst.AssignEqual,
)
_FIELDS: dict[type, tuple[str, ...]] = {}


def child_nodes(node: cst.CSTNode) -> list[cst.CSTNode]:
    """A node's children that can hold code (whitespace and punctuation left out).

    Reads the dataclass fields directly: several times faster than libcst's visitor, which
    rebuilds every node it passes.
    """
    names = _FIELDS.get(type(node))
    if names is None:
        names = _FIELDS[type(node)] = tuple(f.name for f in dataclasses.fields(node))
    out: list[cst.CSTNode] = []
    for name in names:
        value = getattr(node, name)
        if isinstance(value, cst.CSTNode):
            if not isinstance(value, _SKIP_CHILDREN):
                out.append(value)
        elif isinstance(value, (tuple, list)):
            out.extend(c for c in value if isinstance(c, cst.CSTNode) and not isinstance(c, _SKIP_CHILDREN))
    return out


def names_in(node: cst.CSTNode) -> set[str]:
    """Names and dotted attributes an expression or statement reads or writes.

    ``parts.append`` counts as ``parts`` and ``parts.append``, never as ``append``; keyword
    argument names are not names.
    """
    found: set[str] = set()

    def walk(n: cst.CSTNode) -> None:
        if isinstance(n, cst.Name):
            found.add(n.value)
            return
        if isinstance(n, cst.Attribute):
            d = dotted_name(n)
            if d:
                found.add(d)
            walk(n.value)
            return
        if isinstance(n, cst.Arg):
            walk(n.value)
            return
        for child in child_nodes(n):
            walk(child)

    walk(node)
    return found


def single_small(node: cst.CSTNode) -> cst.BaseSmallStatement | None:
    """The one small statement of a ``SimpleStatementLine`` (None for ``a = 1; b = 2``)."""
    if isinstance(node, cst.SimpleStatementLine) and len(node.body) == 1:
        return node.body[0]
    return None
