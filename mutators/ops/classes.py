"""Classes: a lost method override, a lost base class, a lost property setter."""

from __future__ import annotations

import libcst as cst

from mutators.base import Operator, dotted_name

_TRIVIAL_BASES = {
    "object", "ABC", "abc.ABC", "Protocol", "typing.Protocol", "Generic", "typing.Generic",
    "NamedTuple", "typing.NamedTuple", "TypedDict", "typing.TypedDict", "Enum", "enum.Enum",
    "IntEnum", "enum.IntEnum", "StrEnum", "Flag", "IntFlag",
}


_ROOT_EXCEPTIONS = {"Exception", "BaseException"}


def _EXCEPTION_NAME(name: str) -> bool:
    return name.rsplit(".", 1)[-1].endswith(("Error", "Exception", "Warning", "Exit", "Interrupt"))


def _decorator_names(fn: cst.FunctionDef) -> list[str]:
    out = []
    for d in fn.decorators:
        expr = d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator
        out.append(dotted_name(expr) or "")
    return out


def _is_setter(fn: cst.FunctionDef) -> bool:
    return any(n.endswith(".setter") for n in _decorator_names(fn))


def _real_bases(cls: cst.ClassDef) -> list[int]:
    return [
        i for i, a in enumerate(cls.bases)
        if a.keyword is None and not a.star and dotted_name(a.value) not in _TRIVIAL_BASES
        and dotted_name(a.value) is not None
    ]


def _in_class_body(ctx) -> bool:
    return isinstance(ctx.parent, cst.IndentedBlock) and isinstance(ctx.grandparent, cst.ClassDef)


class RemoveMethodOverride(Operator):
    name = "remove_method_override"
    family = "classes"
    explanation = "Delete a method a subclass overrides, so the base class's version runs instead."
    node_types = (cst.FunctionDef,)
    unit = "class"
    example = "class Animal:\n    def sound(self):\n        return '...'\n\n\nclass Dog(Animal):\n    def sound(self):\n        return 'woof'\n"

    def __init__(self) -> None:
        super().__init__()
        self._methods: dict[int, tuple[cst.Module, dict[str, set[str]]]] = {}

    def _module_methods(self, module: cst.Module | None) -> dict[str, set[str]]:
        """Top-level class name -> the methods it defines, for the module at hand."""
        if module is None:
            return {}
        hit = self._methods.get(id(module))
        if hit is not None and hit[0] is module:
            return hit[1]
        table = {
            stmt.name.value: {
                s.name.value for s in stmt.body.body if isinstance(s, cst.FunctionDef)
            }
            for stmt in module.body
            if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock)
        }
        self._methods = {id(module): (module, table)}
        return table

    def applies(self, node, ctx):
        if not _in_class_body(ctx):
            return False
        cls, name = ctx.grandparent, node.name.value
        dunder = name.startswith("__") and name.endswith("__")
        bases = [dotted_name(cls.bases[i].value) for i in _real_bases(cls)]
        if not bases and (not dunder or name == "__init__"):
            return False  # without a base only object's dunders are overridden; no __init__ is noise
        if not dunder:
            # An override only if a base we can see (in this module, or anywhere in the
            # repository through ctx.classes) defines it; otherwise only dunders are taken on
            # trust, else deleting a method is a plain AttributeError, not "the base runs".
            local = self._module_methods(ctx.module)
            known = ctx.classes or {}
            short = [b.rsplit(".", 1)[-1] for b in bases]  # `mod.Base` is found as `Base`
            if not any(name in local.get(b, ()) or name in known.get(b, ()) for b in short):
                return False
        names = _decorator_names(node)
        return not _is_setter(node) and not any(n.endswith(("overload", "abstractmethod")) for n in names)

    def span_nodes(self, node, variant):
        return (node.decorators[0] if node.decorators else node), node

    def mutate(self, node, ctx, variant, rng):
        return cst.RemovalSentinel.REMOVE  # an emptied class body is rendered as `pass`


class RemoveBaseClass(Operator):
    name = "remove_base_class"
    family = "classes"
    explanation = "Delete a base class (a mixin, an exception parent), losing the behaviour it provided."
    node_types = (cst.ClassDef,)
    unit = "class"
    example = "class Base:\n    def greet(self):\n        return 'hi ' + self.name\n\n\nclass User(Base):\n    name = 'ann'\n"

    def variants(self, node, ctx):
        real = _real_bases(node)
        if len(node.bases) == 1 and real and dotted_name(node.bases[0].value) in _ROOT_EXCEPTIONS:
            return ()  # `class E(Exception)` has nothing to lose but its raisability
        return tuple(real)

    def span_nodes(self, node, variant):
        return node.bases[variant], node.bases[variant]

    def coverage_nodes(self, node, ctx, variant):
        return node, node

    def mutate(self, node, ctx, variant, rng):
        bases = [b for i, b in enumerate(node.bases) if i != variant]
        name = node.name.value
        removed = dotted_name(node.bases[variant].value) or ""
        if not bases and (_EXCEPTION_NAME(name) or _EXCEPTION_NAME(removed)):
            # An exception class must stay raisable: fall back to the root, losing the parent.
            bases = [cst.Arg(cst.Name("Exception"))]
        elif bases and variant == len(node.bases) - 1:
            bases[-1] = bases[-1].with_changes(comma=node.bases[-1].comma)
        if not bases and not node.keywords:
            return node.with_changes(
                bases=[], lpar=cst.MaybeSentinel.DEFAULT, rpar=cst.MaybeSentinel.DEFAULT
            )
        return node.with_changes(bases=bases)


class RemovePropertySetter(Operator):
    name = "remove_property_setter"
    family = "classes"
    explanation = "Delete a property's setter, so assigning the attribute fails."
    node_types = (cst.FunctionDef,)
    unit = "class"
    example = "class Temp:\n    def __init__(self):\n        self._c = 0.0\n\n    @property\n    def celsius(self):\n        return self._c\n\n    @celsius.setter\n    def celsius(self, v):\n        self._c = float(v)\n"

    def applies(self, node, ctx):
        return _in_class_body(ctx) and _is_setter(node)

    def span_nodes(self, node, variant):
        return node.decorators[0], node

    def mutate(self, node, ctx, variant, rng):
        return cst.RemovalSentinel.REMOVE
