"""Operations: a wrong operator, swapped operands, off-by-one bounds, a broken method chain."""

from __future__ import annotations

import libcst as cst

from mutators.base import Operator, dotted_name, is_string_literal, operand

_CONTAINER_DISPLAYS = (
    cst.List, cst.Tuple, cst.Set, cst.Dict, cst.ListComp, cst.SetComp, cst.DictComp,
)


def _same_ws(new_op: type, old: cst.CSTNode) -> cst.CSTNode:
    return new_op(whitespace_before=old.whitespace_before, whitespace_after=old.whitespace_after)


def _is_sequence_concat(left: cst.BaseExpression, right: cst.BaseExpression) -> bool:
    # "a" + s, [x] + xs, "%s" % x: string/list building, where a swapped operator is noise.
    return any(is_string_literal(e) or isinstance(e, _CONTAINER_DISPLAYS) for e in (left, right))


_BUILTIN_TYPES = {"str", "int", "float", "bytes", "bool", "None", "list", "dict", "tuple", "set", "type", "object", "complex", "frozenset"}


def _is_type_like(expr: cst.BaseExpression) -> bool:
    """A builtin type, None, a CapWords class (not an ALL_CAPS flag), a generic, or a union of them."""
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.BitOr):
        return _is_type_like(expr.left) or _is_type_like(expr.right)
    if isinstance(expr, cst.Subscript):
        return True
    name = dotted_name(expr)
    if name is None:
        return False
    last = name.rsplit(".", 1)[-1]
    return last in _BUILTIN_TYPES or (last[:1].isupper() and not last.isupper())


class SwapArithmetic(Operator):
    name = "swap_arithmetic"
    family = "operations"
    explanation = "Replace an arithmetic or bitwise operator with a plausible sibling (+ and -, * and //, / and //, << and >>, & and |)."
    node_types = (cst.BinaryOperation,)
    example = "def area(w, h, border):\n    return (w + border) * (h + border)\n"

    SWAPS = {
        cst.Add: cst.Subtract, cst.Subtract: cst.Add, cst.Multiply: cst.FloorDivide,
        cst.Divide: cst.FloorDivide, cst.FloorDivide: cst.Divide, cst.Modulo: cst.FloorDivide,
        cst.Power: cst.Multiply, cst.LeftShift: cst.RightShift, cst.RightShift: cst.LeftShift,
        cst.BitAnd: cst.BitOr, cst.BitOr: cst.BitAnd, cst.BitXor: cst.BitOr,
    }

    def applies(self, node, ctx):
        if isinstance(node.operator, (cst.BitOr, cst.BitAnd)) and (_is_type_like(node.left) or _is_type_like(node.right)):
            return False  # `int | None` in an isinstance() or a cast: a type, not arithmetic
        return (
            type(node.operator) in self.SWAPS
            and not ctx.in_annotation_or_decorator()
            and not _is_sequence_concat(node.left, node.right)
        )

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(operator=_same_ws(self.SWAPS[type(node.operator)], node.operator))


class SwapAugmentedAssignment(Operator):
    name = "swap_augmented_assignment"
    family = "operations"
    explanation = "Turn an augmented assignment into its opposite (+= into -=, |= into &=, ...)."
    node_types = (cst.AugAssign,)
    example = "def total(items):\n    n = 0\n    for x in items:\n        n += x\n    return n\n"

    SWAPS = {
        cst.AddAssign: cst.SubtractAssign, cst.SubtractAssign: cst.AddAssign,
        cst.MultiplyAssign: cst.FloorDivideAssign, cst.DivideAssign: cst.MultiplyAssign,
        cst.FloorDivideAssign: cst.MultiplyAssign, cst.BitOrAssign: cst.BitAndAssign,
        cst.BitAndAssign: cst.BitOrAssign, cst.LeftShiftAssign: cst.RightShiftAssign,
        cst.RightShiftAssign: cst.LeftShiftAssign,
    }

    def applies(self, node, ctx):
        return type(node.operator) in self.SWAPS and not _is_sequence_concat(node.value, node.value)

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(operator=_same_ws(self.SWAPS[type(node.operator)], node.operator))


class SwapComparison(Operator):
    name = "swap_comparison"
    family = "operations"
    explanation = "Replace a comparison with its off-by-one or negated sibling (< and <=, == and !=, in and not in)."
    node_types = (cst.Comparison,)
    example = "def is_adult(age):\n    return age >= 18\n"

    def variants(self, node, ctx):
        if ctx.in_annotation_or_decorator():
            return ()
        return tuple(i for i, t in enumerate(node.comparisons) if self._swap(t.operator) is not None)

    @staticmethod
    def _swap(op: cst.BaseCompOp) -> cst.BaseCompOp | None:
        simple = {
            cst.LessThan: cst.LessThanEqual, cst.LessThanEqual: cst.LessThan,
            cst.GreaterThan: cst.GreaterThanEqual, cst.GreaterThanEqual: cst.GreaterThan,
            cst.Equal: cst.NotEqual, cst.NotEqual: cst.Equal,
        }
        if type(op) in simple:
            return _same_ws(simple[type(op)], op)
        if isinstance(op, cst.Is):
            return cst.IsNot(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)
        if isinstance(op, cst.IsNot):
            return cst.Is(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)
        if isinstance(op, cst.In):
            return cst.NotIn(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)
        if isinstance(op, cst.NotIn):
            return cst.In(whitespace_before=op.whitespace_before, whitespace_after=op.whitespace_after)
        return None

    def mutate(self, node, ctx, variant, rng):
        comps = list(node.comparisons)
        comps[variant] = comps[variant].with_changes(operator=self._swap(comps[variant].operator))
        return node.with_changes(comparisons=comps)


class SwapBooleanOperator(Operator):
    name = "swap_boolean_operator"
    family = "operations"
    explanation = "Replace `and` with `or` or the reverse."
    node_types = (cst.BooleanOperation,)
    example = "def in_range(x, lo, hi):\n    return x >= lo and x <= hi\n"

    def mutate(self, node, ctx, variant, rng):
        new = cst.Or if isinstance(node.operator, cst.And) else cst.And
        return node.with_changes(operator=_same_ws(new, node.operator))


class SwapOperands(Operator):
    name = "swap_operands"
    family = "operations"
    explanation = "Swap the operands of a non-commutative operation (a - b, a / b, a < b)."
    node_types = (cst.BinaryOperation, cst.Comparison)
    example = "def elapsed(start, end):\n    return end - start\n"

    NON_COMMUTATIVE = (
        cst.Subtract, cst.Divide, cst.FloorDivide, cst.Modulo, cst.Power, cst.LeftShift,
        cst.RightShift,
    )
    ORDERING = (cst.LessThan, cst.LessThanEqual, cst.GreaterThan, cst.GreaterThanEqual)

    def applies(self, node, ctx):
        if ctx.in_annotation_or_decorator():
            return False
        if isinstance(node, cst.BinaryOperation):
            # `n // 2` into `2 // n` is not a slip anyone makes: both sides must be names or calls.
            literal = (cst.Integer, cst.Float, cst.Imaginary)
            return (
                isinstance(node.operator, self.NON_COMMUTATIVE)
                and not _is_sequence_concat(node.left, node.right)
                and not isinstance(node.left, literal)
                and not isinstance(node.right, literal)
                and not node.left.deep_equals(node.right)
            )
        return (
            len(node.comparisons) == 1
            and isinstance(node.comparisons[0].operator, self.ORDERING)
            and not node.left.deep_equals(node.comparisons[0].comparator)
        )

    def mutate(self, node, ctx, variant, rng):
        if isinstance(node, cst.BinaryOperation):
            op = node.operator
            return node.with_changes(left=operand(node.right, op, "left"), right=operand(node.left, op, "right"))
        target = node.comparisons[0]
        return node.with_changes(
            left=operand(target.comparator, None, "left"),
            comparisons=[target.with_changes(comparator=operand(node.left, None, "right"))],
        )


def _int_value(node: cst.CSTNode) -> int | None:
    """The value of an integer literal, ``-1`` included; None for anything else."""
    if isinstance(node, cst.Integer):
        return int(node.value.replace("_", ""), 0)
    if (
        isinstance(node, cst.UnaryOperation)
        and isinstance(node.operator, cst.Minus)
        and isinstance(node.expression, cst.Integer)
    ):
        return -int(node.expression.value.replace("_", ""), 0)
    return None


def _int_literal(value: int, like: cst.CSTNode) -> cst.BaseExpression:
    lit: cst.BaseExpression = cst.Integer(str(abs(value)))
    if value < 0:
        lit = cst.UnaryOperation(operator=cst.Minus(), expression=lit)
    return lit.with_changes(lpar=like.lpar, rpar=like.rpar)


def _shift(expr: cst.BaseExpression, delta: int) -> cst.BaseExpression:
    """``expr`` plus or minus one: a literal gets a new value, anything else gets ``+ 1``."""
    value = _int_value(expr)
    if value is not None:
        return _int_literal(value + delta, expr)
    if (
        isinstance(expr, cst.BinaryOperation)
        and isinstance(expr.operator, (cst.Add, cst.Subtract))
        and isinstance(expr.right, cst.Integer)
        and not expr.lpar
    ):
        # Fold into the existing offset: `n - 1` moves to `n - 2` or `n`, never `n - 1 + 1`.
        sign = 1 if isinstance(expr.operator, cst.Add) else -1
        offset = sign * int(expr.right.value.replace("_", ""), 0) + delta
        if offset == 0:
            return expr.left
        op = cst.Add() if offset > 0 else cst.Subtract()
        return expr.with_changes(operator=op, right=cst.Integer(str(abs(offset))))
    op = cst.Add() if delta > 0 else cst.Subtract()
    return cst.BinaryOperation(left=operand(expr, op, "left"), operator=op, right=cst.Integer(str(abs(delta))))


class OffByOneConstant(Operator):
    name = "off_by_one_constant"
    family = "operations"
    explanation = "Move an integer constant in a comparison or arithmetic by one (an `x - 1` may also lose its `- 1`)."
    node_types = (cst.Integer, cst.BinaryOperation)
    example = "def is_full(queue, limit):\n    return len(queue) > limit - 1\n"

    @staticmethod
    def _is_unit_offset(node: cst.CSTNode) -> bool:
        """``x + 1`` / ``x - 1``: the constant of an off-by-one correction."""
        return (
            isinstance(node, cst.BinaryOperation)
            and isinstance(node.operator, (cst.Add, cst.Subtract))
            and _int_value(node.right) == 1
            and isinstance(node.right, cst.Integer)
        )

    def variants(self, node, ctx):
        if ctx.in_annotation_or_decorator() or ctx.inside(cst.Subscript):
            return ()
        if isinstance(node, cst.BinaryOperation):
            # Forgetting the correction altogether: `limit - 1` into `limit`.
            return ("drop",) if self._is_unit_offset(node) else ()
        if not isinstance(ctx.parent, (cst.ComparisonTarget, cst.Comparison, cst.BinaryOperation)):
            return ()
        value = _int_value(node)
        if value == 0:
            return (1,)
        if value == 1 and self._is_unit_offset(ctx.parent) and ctx.parent.right is node:
            return (1,)  # `limit - 0` is nobody's slip; the "drop" variant covers it
        return (1, -1)

    def mutate(self, node, ctx, variant, rng):
        if variant == "drop":
            left = node.left
            if node.lpar and not left.lpar:
                left = left.with_changes(lpar=node.lpar, rpar=node.rpar)
            return left
        return _int_literal(_int_value(node) + variant, node)


class OffByOneRange(Operator):
    name = "off_by_one_range"
    family = "operations"
    explanation = "Shift one bound of a range() by one (range(n) to range(n - 1) or range(1, n))."
    node_types = (cst.Call,)
    example = "def indices(n):\n    return list(range(n))\n"

    def applies(self, node, ctx):
        return (
            isinstance(node.func, cst.Name)
            and node.func.value == "range"
            and 1 <= len(node.args) <= 2
            and all(a.keyword is None and not a.star for a in node.args)
        )

    def variants(self, node, ctx):
        if not self.applies(node, ctx):
            return ()
        if len(node.args) == 1:
            return ("stop-1", "start+1")
        return ("start+1", "stop+1", "stop-1")

    def mutate(self, node, ctx, variant, rng):
        args = list(node.args)
        if variant == "start+1" and len(args) == 1:
            start = cst.Arg(cst.Integer("1"), comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
            return node.with_changes(args=[start, args[0]])
        i = 0 if variant.startswith("start") else len(args) - 1
        delta = 1 if variant.endswith("+1") else -1
        args[i] = args[i].with_changes(value=_shift(args[i].value, delta))
        return node.with_changes(args=args)


class OffByOneSlice(Operator):
    name = "off_by_one_slice"
    family = "operations"
    explanation = "Move a slice bound by one (xs[:n] to xs[:n - 1], s[1:] to s[2:])."
    node_types = (cst.Slice,)
    example = "def tail(items):\n    return items[1:]\n"

    def variants(self, node, ctx):
        out = []
        for bound in ("lower", "upper"):
            expr = getattr(node, bound)
            if expr is None:
                continue
            value = _int_value(expr)
            if value is not None and value < 0:
                out.append((bound, -1))  # xs[:-1] -> xs[:-2]; xs[:-0] is an empty slice, not a bug
            elif value == 0:
                out.append((bound, 1))
            else:
                out.extend(((bound, 1), (bound, -1)))
        return tuple(out)

    def mutate(self, node, ctx, variant, rng):
        bound, delta = variant
        return node.with_changes(**{bound: _shift(getattr(node, bound), delta)})


class OffByOneIndex(Operator):
    name = "off_by_one_index"
    family = "operations"
    explanation = "Move a constant index by one (xs[0] to xs[1], xs[-1] to xs[-2])."
    node_types = (cst.Index,)
    example = "def last(items):\n    return items[-1]\n"

    def applies(self, node, ctx):
        return _int_value(node.value) is not None and not ctx.in_annotation_or_decorator()

    def mutate(self, node, ctx, variant, rng):
        value = _int_value(node.value)
        delta = -1 if value < 0 else 1
        return node.with_changes(value=_int_literal(value + delta, node.value))


class BreakMethodChain(Operator):
    name = "break_method_chain"
    family = "operations"
    explanation = "Drop one call from a method chain (s.strip().lower() to s.lower())."
    node_types = (cst.Call,)
    example = "def normalise(name):\n    return name.strip().lower()\n"

    # Methods that return a changed copy of the same kind of value: dropping one from a chain
    # is the slip (`s.strip().lower()` without the strip); dropping `.setdefault(k, [])` from
    # `d.setdefault(k, []).append(x)` is only an AttributeError.
    SAME_KIND = {
        "strip", "lstrip", "rstrip", "lower", "upper", "casefold", "title", "capitalize",
        "replace", "expandtabs", "removeprefix", "removesuffix", "copy", "resolve", "absolute",
        "expanduser", "normalize", "normpath", "with_suffix", "with_name", "astimezone",
    }

    def applies(self, node, ctx):
        func = node.func
        return (
            isinstance(func, cst.Attribute)
            and isinstance(func.value, cst.Call)
            and isinstance(func.value.func, cst.Attribute)
            and func.value.func.attr.value in self.SAME_KIND
        )

    def mutate(self, node, ctx, variant, rng):
        inner = node.func.value
        return node.with_changes(func=node.func.with_changes(value=inner.func.value))
