"""Control flow: inverted or swapped branches, lost branches, loops, early returns, order."""

from __future__ import annotations

import libcst as cst

from mutators.base import Operator, as_statement_removal, dotted_name, names_in, single_small, space

_LOW_PRECEDENCE = (cst.BooleanOperation, cst.IfExp, cst.Lambda, cst.NamedExpr)


def _negate(test: cst.BaseExpression) -> cst.BaseExpression:
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not) and not test.lpar:
        return test.expression
    if isinstance(test, _LOW_PRECEDENCE) and not test.lpar:
        test = test.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.UnaryOperation(operator=cst.Not(), expression=test)


class InvertIfCondition(Operator):
    name = "invert_if_condition"
    family = "control_flow"
    explanation = "Negate the condition of an if or elif."
    node_types = (cst.If,)
    example = "def sign(x):\n    if x < 0:\n        return -1\n    return 1\n"

    # A test that is one ==, !=, is, in comparison is negated by swap_comparison, and reads
    # naturally there (`x is None`); here it would read `not x is not None`.
    NEGATABLE = (cst.Equal, cst.NotEqual, cst.Is, cst.IsNot, cst.In, cst.NotIn)

    def applies(self, node, ctx):
        test = node.test
        return not (
            isinstance(test, cst.Comparison)
            and not test.lpar
            and len(test.comparisons) == 1
            and isinstance(test.comparisons[0].operator, self.NEGATABLE)
        )

    def mutate(self, node, ctx, variant, rng):
        new_test = _negate(node.test)
        ws = node.whitespace_before_test
        if isinstance(new_test, cst.UnaryOperation):
            ws = space(ws)  # `if(x):` must become `if not (x):`, not `ifnot (x):`
        return node.with_changes(test=new_test, whitespace_before_test=ws)


class SwapIfElseBodies(Operator):
    name = "swap_if_else_bodies"
    family = "control_flow"
    explanation = "Swap the bodies of an if and its else, keeping the condition."
    node_types = (cst.If,)
    example = "def label(n):\n    if n == 1:\n        word = 'item'\n    else:\n        word = 'items'\n    return f'{n} {word}'\n"

    def applies(self, node, ctx):
        return isinstance(node.orelse, cst.Else) and not node.body.deep_equals(node.orelse.body)

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(body=node.orelse.body, orelse=node.orelse.with_changes(body=node.body))


class RemoveElifElse(Operator):
    name = "remove_elif_else"
    family = "control_flow"
    explanation = "Delete an elif or else branch, so that case falls through."
    node_types = (cst.If,)
    example = "def grade(score):\n    g = 'C'\n    if score > 90:\n        g = 'A'\n    elif score > 75:\n        g = 'B'\n    return g\n"

    def applies(self, node, ctx):
        return node.orelse is not None

    def mutate(self, node, ctx, variant, rng):
        orelse = node.orelse
        return node.with_changes(orelse=orelse.orelse if isinstance(orelse, cst.If) else None)


_EFFECTS = (cst.AugAssign, cst.Assign, cst.Expr)


class RemoveLoopBodyEffect(Operator):
    name = "remove_loop_body_effect"
    family = "control_flow"
    explanation = "Delete a statement of a loop body that accumulates or records something."
    node_types = (cst.SimpleStatementLine,)
    example = "def evens(xs):\n    out = []\n    for x in xs:\n        if x % 2:\n            continue\n        out.append(x)\n    return out\n"

    def applies(self, node, ctx):
        small = single_small(node)
        if not isinstance(small, _EFFECTS) or not isinstance(ctx.grandparent, (cst.For, cst.While)):
            return False
        return not isinstance(small, cst.Expr) or isinstance(small.value, cst.Call)

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)


class SwapBreakContinue(Operator):
    name = "swap_break_continue"
    family = "control_flow"
    explanation = "Replace break with continue or the reverse."
    node_types = (cst.Break, cst.Continue)
    example = "def first_negative(xs):\n    found = None\n    for x in xs:\n        if x < 0:\n            found = x\n            break\n    return found\n"

    def mutate(self, node, ctx, variant, rng):
        new = cst.Continue if isinstance(node, cst.Break) else cst.Break
        return new(semicolon=node.semicolon)


def _ends_with(block: cst.BaseSuite, types: tuple[type, ...]) -> bool:
    body = block.body
    if not body:
        return False
    last = body[-1]
    if isinstance(block, cst.SimpleStatementSuite):
        return isinstance(last, types)
    small = single_small(last)
    return isinstance(small, types)


class DropEarlyReturn(Operator):
    name = "drop_early_return"
    family = "control_flow"
    explanation = "Delete an `if ...: return` that short-cuts the rest of the function."
    node_types = (cst.If,)
    example = "def safe_div(a, b):\n    if b == 0:\n        return 0.0\n    return a / b\n"

    def applies(self, node, ctx):
        siblings = ctx.block_siblings()
        if not (
            ctx.in_function_body()
            and node.orelse is None
            and _ends_with(node.body, (cst.Return,))
            and bool(siblings)
            and siblings[-1] is not node
        ):
            return False
        # `if not items: return result` ... `return result`: the early exit returns what the
        # end returns anyway, so it is most often a mere shortcut (an equivalent mutant).
        early = _last_small(node.body)
        final = single_small(ctx.function.body.body[-1]) if ctx.function.body.body else None
        return not (
            isinstance(final, cst.Return)
            and early.value is not None
            and final.value is not None
            and early.value.deep_equals(final.value)
        )

    def mutate(self, node, ctx, variant, rng):
        return as_statement_removal(ctx)


def _last_small(block: cst.BaseSuite) -> cst.BaseSmallStatement:
    last = block.body[-1]
    return last if isinstance(block, cst.SimpleStatementSuite) else last.body[-1]


_FLOW = (cst.Return, cst.Raise, cst.Break, cst.Continue, cst.Pass, cst.Global, cst.Nonlocal,
         cst.Import, cst.ImportFrom, cst.Assert)


_names = names_in


def _written(small: cst.BaseSmallStatement) -> set[str]:
    if isinstance(small, cst.Assign):
        targets = [t.target for t in small.targets]
    elif isinstance(small, (cst.AugAssign, cst.AnnAssign)):
        targets = [small.target]
    elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and isinstance(small.value.func, cst.Attribute):
        targets = [small.value.func.value]  # items.append(x) changes items
    else:
        return set()
    out: set[str] = set()
    for t in targets:
        parts = [e.value for e in t.elements] if isinstance(t, (cst.Tuple, cst.List)) else [t]
        for el in parts:
            d = dotted_name(el)
            if d:
                out.add(d)
    return out


class ShuffleStatements(Operator):
    name = "shuffle_statements"
    family = "control_flow"
    explanation = "Swap two adjacent simple statements where one uses what the other writes (swapping truly independent ones would change nothing)."
    node_types = (cst.IndentedBlock,)
    example = "def push(stack, item):\n    stack.items.append(item)\n    stack.size = len(stack.items)\n    return stack\n"

    def variants(self, node, ctx):
        if not isinstance(ctx.parent, (cst.FunctionDef, cst.For, cst.While, cst.If, cst.Else, cst.With, cst.Try)):
            return ()
        body = node.body
        out = []
        for i in range(len(body) - 1):
            a, b = single_small(body[i]), single_small(body[i + 1])
            if a is None or b is None or isinstance(a, _FLOW) or isinstance(b, _FLOW):
                continue
            if isinstance(a, cst.Expr) and isinstance(a.value, (cst.SimpleString, cst.ConcatenatedString)):
                continue  # a docstring
            wa, wb = _written(a), _written(b)
            if (wa & _names(b)) or (wb & _names(a)):
                out.append(i)
        return tuple(out)

    def span_nodes(self, node, variant):
        return node.body[variant], node.body[variant + 1]

    def mutate(self, node, ctx, variant, rng):
        body = list(node.body)
        i = variant
        a, b = body[i], body[i + 1]
        # Comments above a statement travel with it.
        body[i], body[i + 1] = b, a
        return node.with_changes(body=body)
