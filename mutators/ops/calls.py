"""Calls: swapped or dropped arguments, a string method replaced by its sibling."""

from __future__ import annotations

import libcst as cst

from mutators.base import Operator, dotted_name

_QUIET = ("print", "log", "debug", "info", "warning", "warn", "error", "exception", "critical")


def _is_quiet(call: cst.Call) -> bool:
    name = dotted_name(call.func) or ""
    return name.rsplit(".", 1)[-1] in _QUIET or "logger" in name or "logging" in name


# Calls whose arguments are not "values in an order": swapping them is a TypeError or a no-op.
_NO_SWAP = {"cast", "isinstance", "issubclass", "hasattr", "getattr", "setattr", "delattr", "super", "TypeVar", "NewType"}

# Calls whose keywords are all required by the callee's text: a dropped one is a KeyError.
_NO_DROP = {"format", "format_map", "substitute", "Template"}

# name -> the arities at which the last positional argument is optional (dropping it is a
# plausible bug, not a TypeError): d.get(k, default), s.split(sep, 1), getattr(o, n, default)...
_OPTIONAL_LAST = {
    "get": {2}, "pop": {2}, "setdefault": {2}, "getattr": {3}, "next": {2}, "round": {2},
    "int": {2}, "split": {1, 2}, "rsplit": {1, 2}, "strip": {1}, "lstrip": {1}, "rstrip": {1},
    "replace": {3}, "encode": {1, 2}, "decode": {1, 2}, "open": {2, 3}, "sum": {2},
    "enumerate": {2}, "startswith": {2, 3}, "endswith": {2, 3}, "find": {2, 3}, "rfind": {2, 3},
    "ljust": {2}, "rjust": {2}, "center": {2}, "read": {1}, "readline": {1}, "sorted": set(),
    "min": set(), "max": set(), "islice": {3}, "dumps": set(), "zfill": set(), "format": set(),
}


def _callee(call: cst.Call) -> str:
    """The called name's last part: `format` for `"{x}".format(...)`, `get` for `d.get(...)`."""
    if isinstance(call.func, cst.Attribute):
        return call.func.attr.value
    return call.func.value if isinstance(call.func, cst.Name) else ""


def _positional(call: cst.Call) -> list[int]:
    return [i for i, a in enumerate(call.args) if a.keyword is None and not a.star]


class SwapArguments(Operator):
    name = "swap_arguments"
    family = "calls"
    explanation = "Swap two adjacent positional arguments of a call."
    node_types = (cst.Call,)
    example = "def ratio(part, whole):\n    return divmod(part, whole)\n"

    def variants(self, node, ctx):
        if _is_quiet(node) or ctx.in_annotation_or_decorator():
            return ()
        if _callee(node) in _NO_SWAP:
            return ()
        pos = _positional(node)
        if any(a.star for a in node.args):
            return ()  # f(*a, b): positions are not what they look like
        def movable(a: cst.Arg) -> bool:  # Base.__init__(self, x): nobody swaps self
            return not (isinstance(a.value, cst.Name) and a.value.value in ("self", "cls"))

        return tuple(
            i for i, j in zip(pos, pos[1:], strict=False)
            if j == i + 1
            and movable(node.args[i]) and movable(node.args[j])
            and not node.args[i].value.deep_equals(node.args[j].value)
        )

    def mutate(self, node, ctx, variant, rng):
        args = list(node.args)
        a, b = args[variant], args[variant + 1]
        args[variant], args[variant + 1] = a.with_changes(value=b.value), b.with_changes(value=a.value)
        return node.with_changes(args=args)


class DropArgument(Operator):
    name = "drop_argument"
    family = "calls"
    explanation = "Drop a keyword argument, or an optional last positional one (d.get(k, default) to d.get(k)), so a default is used instead."
    node_types = (cst.Call,)
    example = "def read_text(path):\n    with open(path, encoding='utf-8') as f:\n        return f.read()\n"

    def variants(self, node, ctx):
        if _is_quiet(node) or ctx.in_annotation_or_decorator():
            return ()
        if _callee(node) in _NO_DROP:
            return ()
        args = node.args
        keywords = [i for i, a in enumerate(args) if a.keyword is not None]
        pos = _positional(node)
        out = list(keywords)
        last = _callee(node)
        if (
            pos
            and len(pos) in _OPTIONAL_LAST.get(last, ())
            and pos[-1] == len(args) - 1 - len(keywords)
            and not any(a.star for a in args)
        ):
            out.insert(0, pos[-1])
        return tuple(out)

    def mutate(self, node, ctx, variant, rng):
        args = [a for i, a in enumerate(node.args) if i != variant]
        if variant == len(node.args) - 1 and args:
            # The new last argument inherits the removed one's (absent) trailing comma.
            args[-1] = args[-1].with_changes(comma=node.args[-1].comma)
        return node.with_changes(args=args)


_SIBLINGS = {
    "startswith": "endswith", "endswith": "startswith", "lstrip": "rstrip", "rstrip": "lstrip",
    "strip": "rstrip", "lower": "upper", "upper": "lower", "find": "rfind", "rfind": "find",
    "partition": "rpartition", "rpartition": "partition", "ljust": "rjust", "rjust": "ljust",
    "removeprefix": "removesuffix", "removesuffix": "removeprefix", "isupper": "islower",
    "islower": "isupper", "title": "capitalize", "capitalize": "title",
    "split": "rsplit", "rsplit": "split",
}


class SwapStringMethod(Operator):
    name = "swap_string_method"
    family = "calls"
    explanation = "Call a string method's sibling (startswith/endswith, lstrip/rstrip, find/rfind, split/rsplit with a limit)."
    node_types = (cst.Call,)
    example = "def has_prefix(name, prefix):\n    return name.startswith(prefix)\n"

    def applies(self, node, ctx):
        func = node.func
        if not isinstance(func, cst.Attribute) or func.attr.value not in _SIBLINGS:
            return False
        if func.attr.value in ("split", "rsplit"):
            # Without a limit split and rsplit agree: only a maxsplit makes them differ.
            return len(node.args) >= 2 or any(a.keyword and a.keyword.value == "maxsplit" for a in node.args)
        return True

    def mutate(self, node, ctx, variant, rng):
        func = node.func
        return node.with_changes(func=func.with_changes(attr=func.attr.with_changes(value=_SIBLINGS[func.attr.value])))
