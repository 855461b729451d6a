"""Values: a wrong literal or default, a flipped boolean, a wrong return value."""

from __future__ import annotations

import libcst as cst

from mutators.base import Operator, is_atomic, space
from mutators.ops.control import _names
from mutators.ops.removals import _param_names

_SEPARATORS = {
    ",": ";", ";": ",", ".": ",", ":": ";", "-": "_", "_": "-", " ": "", "": " ", "/": ".",
    "|": ",", "=": ":", "\\n": " ", "\\t": " ",
}


def _is_docstring(ctx) -> bool:
    return isinstance(ctx.parent, cst.Expr)


class ChangeLiteral(Operator):
    name = "change_literal"
    family = "values"
    explanation = "Change a constant: a separator string (',' to ';'), or an integer's order of magnitude (1000 to 100)."
    node_types = (cst.SimpleString, cst.Integer)
    example = "def csv_line(fields):\n    return ','.join(fields)\n"

    def variants(self, node, ctx):
        if ctx.in_annotation_or_decorator() or _is_docstring(ctx) or isinstance(ctx.parent, cst.Param):
            return ()
        if isinstance(node, cst.Integer):
            return ("/10", "*10") if int(node.value.replace("_", ""), 0) >= 10 else ()
        prefix = node.prefix.lower()
        return ("separator",) if "b" not in prefix and "r" not in prefix and node.raw_value in _SEPARATORS else ()

    def mutate(self, node, ctx, variant, rng):
        if isinstance(node, cst.Integer):
            value = int(node.value.replace("_", ""), 0)
            return node.with_changes(value=str(value // 10 if variant == "/10" else value * 10))
        q = node.quote
        return node.with_changes(value=f"{node.prefix}{q}{_SEPARATORS[node.raw_value]}{q}")


class ChangeDefaultArgument(Operator):
    name = "change_default_argument"
    family = "values"
    explanation = "Change a parameter's default value (True to False, 0 to 1, 'x' to '')."
    node_types = (cst.Param,)
    example = "def join_words(words, sep=' '):\n    return sep.join(words)\n"

    def variants(self, node, ctx):
        default = node.default
        if isinstance(default, cst.Integer):
            return (1,) if int(default.value.replace("_", ""), 0) == 0 else (1, -1)
        return (None,) if self._new_default(default, None) is not None else ()

    def _new_default(self, default, delta):
        if isinstance(default, cst.Name) and default.value in ("True", "False"):
            return cst.Name("False" if default.value == "True" else "True")
        if isinstance(default, cst.Integer):
            return cst.Integer(str(int(default.value.replace("_", ""), 0) + delta))
        if isinstance(default, cst.SimpleString) and "b" not in default.prefix.lower():
            q = default.quote
            new = "" if default.raw_value else " "
            return default.with_changes(value=f"{default.prefix}{q}{new}{q}")
        return None

    def coverage_nodes(self, node, ctx, variant):
        return ctx.function.body, ctx.function.body

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(default=self._new_default(node.default, variant))


class FlipBoolean(Operator):
    name = "flip_boolean"
    family = "values"
    explanation = "Flip a True/False literal in code (a return value, a flag passed to a call)."
    node_types = (cst.Name,)
    example = "def options():\n    return dict(strict=True, verbose=False)\n"

    def applies(self, node, ctx):
        return (
            node.value in ("True", "False")
            and not isinstance(ctx.parent, cst.Param)
            and not ctx.in_annotation_or_decorator()
        )

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(value="False" if node.value == "True" else "True")


class _YieldFinder(cst.CSTVisitor):
    def __init__(self) -> None:
        self.found = False

    def visit_Yield(self, node: cst.Yield) -> bool:
        self.found = True
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        return False  # a nested function's yields are its own

    def visit_Lambda(self, node: cst.Lambda) -> bool:
        return False

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        return False


def _is_generator(fn: cst.FunctionDef, cache: dict[int, tuple[cst.FunctionDef, bool]]) -> bool:
    hit = cache.get(id(fn))
    if hit is not None and hit[0] is fn:
        return hit[1]
    finder = _YieldFinder()
    for stmt in fn.body.body:
        stmt.visit(finder)
    cache[id(fn)] = (fn, finder.found)
    return finder.found


class ReturnNone(Operator):
    name = "return_none"
    family = "values"
    explanation = "Return None instead of the computed value."
    node_types = (cst.Return,)
    example = "def double(x):\n    return x * 2\n"

    def __init__(self) -> None:
        super().__init__()
        self._gen_cache: dict[int, tuple[cst.FunctionDef, bool]] = {}

    def applies(self, node, ctx):
        fn = ctx.function
        value = node.value
        if fn is None or value is None or fn.name.value == "__init__":
            return False
        if isinstance(value, cst.Name) and value.value == "None":
            return False
        return not _is_generator(fn, self._gen_cache)

    def mutate(self, node, ctx, variant, rng):
        return node.with_changes(
            value=cst.Name("None"), whitespace_after_return=space(node.whitespace_after_return)
        )


class ReturnInput(Operator):
    name = "return_input"
    family = "values"
    explanation = "Return the unmodified input instead of the value computed from it (return s.strip() to return s)."
    node_types = (cst.Return,)
    example = "def slugify(title):\n    return title.lower().replace(' ', '-')\n"

    def variants(self, node, ctx):
        fn = ctx.function
        if fn is None or node.value is None or isinstance(node.value, cst.Name):
            return ()
        params = [p for p in _param_names(fn) if p not in ("self", "cls")]
        used = _names(node.value)
        # Parameter order, not set order: the choice must not depend on hashing.
        ordered = [p.name.value for p in (*fn.params.posonly_params, *fn.params.params, *fn.params.kwonly_params)]
        return tuple(p for p in ordered if p in params and p in used)[:1]

    def mutate(self, node, ctx, variant, rng):
        value = cst.Name(variant)
        if not is_atomic(value):
            value = value.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return node.with_changes(value=value, whitespace_after_return=space(node.whitespace_after_return))
