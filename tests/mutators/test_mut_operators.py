"""Every operator, on a concrete before/after pair; and the places each must leave alone."""

from __future__ import annotations

import ast

import pytest
from mut_helpers import mutants_of

from mutators import FAMILIES, OPERATOR_CLASSES, operator_names

# (operator, before, one expected after). Each after is exactly one of the operator's mutants.
PAIRS = [
    ("swap_arithmetic", "def f(a, b):\n    return a + b\n", "def f(a, b):\n    return a - b\n"),
    ("swap_arithmetic", "def f(a, b):\n    return a / b\n", "def f(a, b):\n    return a // b\n"),
    ("swap_arithmetic", "def f(flags):\n    return flags | re.IGNORECASE\n", "def f(flags):\n    return flags & re.IGNORECASE\n"),
    ("swap_augmented_assignment", "def f(n):\n    n += 2\n    return n\n", "def f(n):\n    n -= 2\n    return n\n"),
    ("swap_comparison", "def f(a, b):\n    return a < b\n", "def f(a, b):\n    return a <= b\n"),
    ("swap_comparison", "def f(a):\n    return a is None\n", "def f(a):\n    return a is not None\n"),
    ("swap_comparison", "def f(a, b):\n    return a not in b\n", "def f(a, b):\n    return a in b\n"),
    ("swap_boolean_operator", "def f(a, b):\n    return a and b\n", "def f(a, b):\n    return a or b\n"),
    ("swap_operands", "def f(a, b):\n    return a - b * 2\n", "def f(a, b):\n    return b * 2 - a\n"),
    ("swap_operands", "def f(a, b, c):\n    return a - (b - c)\n", "def f(a, b, c):\n    return (b - c) - a\n"),
    ("swap_operands", "def f(a, b):\n    return a < b\n", "def f(a, b):\n    return b < a\n"),
    ("off_by_one_constant", "def f(n):\n    return n > 0\n", "def f(n):\n    return n > 1\n"),
    ("off_by_one_constant", "def f(xs, n):\n    return len(xs) > n - 1\n", "def f(xs, n):\n    return len(xs) > n\n"),
    ("off_by_one_constant", "def f(xs, n):\n    return len(xs) > n - 1\n", "def f(xs, n):\n    return len(xs) > n - 2\n"),
    ("off_by_one_range", "def f(n):\n    return range(n)\n", "def f(n):\n    return range(1, n)\n"),
    ("off_by_one_range", "def f(a, b):\n    return range(a, b)\n", "def f(a, b):\n    return range(a + 1, b)\n"),
    ("off_by_one_slice", "def f(xs, n):\n    return xs[:n]\n", "def f(xs, n):\n    return xs[:n + 1]\n"),
    ("off_by_one_slice", "def f(xs):\n    return xs[:-1]\n", "def f(xs):\n    return xs[:-2]\n"),
    ("off_by_one_slice", "def f(xs, n):\n    return xs[:n + 1]\n", "def f(xs, n):\n    return xs[:n]\n"),
    ("off_by_one_range", "def f(n):\n    return range(n - 1)\n", "def f(n):\n    return range(n - 2)\n"),
    ("off_by_one_index", "def f(xs):\n    return xs[0]\n", "def f(xs):\n    return xs[1]\n"),
    ("break_method_chain", "def f(s):\n    return s.strip().split(',')\n", "def f(s):\n    return s.split(',')\n"),
    ("invert_if_condition", "def f(a):\n    if a:\n        return 1\n    return 2\n", "def f(a):\n    if not a:\n        return 1\n    return 2\n"),
    ("invert_if_condition", "def f(a, b):\n    if a or b:\n        return 1\n    return 2\n", "def f(a, b):\n    if not (a or b):\n        return 1\n    return 2\n"),
    ("invert_if_condition", "def f(a):\n    if(a):\n        return 1\n    return 2\n", "def f(a):\n    if not (a):\n        return 1\n    return 2\n"),
    ("swap_if_else_bodies", "def f(a):\n    if a:\n        x = 1\n    else:\n        x = 2\n    return x\n", "def f(a):\n    if a:\n        x = 2\n    else:\n        x = 1\n    return x\n"),
    ("remove_elif_else", "def f(a):\n    x = 0\n    if a > 1:\n        x = 1\n    else:\n        x = 2\n    return x\n", "def f(a):\n    x = 0\n    if a > 1:\n        x = 1\n    return x\n"),
    ("remove_elif_else", "def f(a):\n    if a > 1:\n        return 1\n    elif a > 0:\n        return 2\n    else:\n        return 3\n", "def f(a):\n    if a > 1:\n        return 1\n    else:\n        return 3\n"),
    ("remove_loop_body_effect", "def f(xs):\n    n = 0\n    for x in xs:\n        n += x\n    return n\n", "def f(xs):\n    n = 0\n    for x in xs:\n        pass\n    return n\n"),
    ("swap_break_continue", "def f(xs):\n    for x in xs:\n        if x:\n            break\n    return x\n", "def f(xs):\n    for x in xs:\n        if x:\n            continue\n    return x\n"),
    ("drop_early_return", "def f(a):\n    if a is None:\n        return 0\n    return a * 2\n", "def f(a):\n    return a * 2\n"),
    ("shuffle_statements", "def f(a):\n    a.items.append(1)\n    a.n = len(a.items)\n    return a\n", "def f(a):\n    a.n = len(a.items)\n    a.items.append(1)\n    return a\n"),
    ("remove_assignment", "def f(self, v):\n    self.v = v\n    return self\n", "def f(self, v):\n    return self\n"),
    ("remove_conditional", "def f(x):\n    if x < 0:\n        x = 0\n    return x\n", "def f(x):\n    return x\n"),
    ("remove_call_statement", "def f(xs, x):\n    xs.append(x)\n    return xs\n", "def f(xs, x):\n    return xs\n"),
    ("remove_decorator", "class A:\n    @staticmethod\n    def f(x):\n        return x\n", "class A:\n    def f(x):\n        return x\n"),
    ("unwrap_call", "def f(xs):\n    return sorted(xs)\n", "def f(xs):\n    return xs\n"),
    ("unwrap_call", "def f(a, b):\n    return int(a + b) * 2\n", "def f(a, b):\n    return (a + b) * 2\n"),
    ("remove_exception_handler", "def f(s):\n    try:\n        return int(s)\n    except ValueError:\n        return 0\n", "def f(s):\n    return int(s)\n"),
    ("remove_exception_handler", "def f(s):\n    try:\n        return int(s)\n    except ValueError:\n        return 0\n    except TypeError:\n        return 1\n", "def f(s):\n    try:\n        return int(s)\n    except TypeError:\n        return 1\n"),
    ("remove_guard_clause", "def f(x):\n    if x < 0:\n        raise ValueError(x)\n    return x\n", "def f(x):\n    return x\n"),
    ("change_literal", "def f(xs):\n    return ','.join(xs)\n", "def f(xs):\n    return ';'.join(xs)\n"),
    ("change_literal", "def f():\n    return 1000\n", "def f():\n    return 100\n"),
    ("change_default_argument", "def f(x, strict=True):\n    return strict\n", "def f(x, strict=False):\n    return strict\n"),
    ("change_default_argument", "def f(x, n=0):\n    return n\n", "def f(x, n=1):\n    return n\n"),
    ("flip_boolean", "def f():\n    return True\n", "def f():\n    return False\n"),
    ("return_none", "def f(x):\n    return x * 2\n", "def f(x):\n    return None\n"),
    ("return_none", "def f(x):\n    return(x)\n", "def f(x):\n    return None\n"),
    ("return_none", "def f(x):\n    if x:\n        def g():\n            yield x\n    return x + 1\n", "def f(x):\n    if x:\n        def g():\n            yield x\n    return None\n"),
    ("return_input", "def f(s):\n    return s.strip()\n", "def f(s):\n    return s\n"),
    ("swap_arguments", "def f(a, b):\n    return g(a, b)\n", "def f(a, b):\n    return g(b, a)\n"),
    ("drop_argument", "def f(p):\n    return open(p, encoding='utf-8')\n", "def f(p):\n    return open(p)\n"),
    ("drop_argument", "def f(d, k):\n    return d.get(k, 0)\n", "def f(d, k):\n    return d.get(k)\n"),
    ("swap_string_method", "def f(s):\n    return s.lstrip()\n", "def f(s):\n    return s.rstrip()\n"),
    ("swap_string_method", "def f(s):\n    return s.split(',', 1)\n", "def f(s):\n    return s.rsplit(',', 1)\n"),
    ("remove_method_override", "class B:\n    def f(self):\n        return 1\n\n\nclass A(B):\n    x = 1\n\n    def f(self):\n        return 2\n", "class B:\n    def f(self):\n        return 1\n\n\nclass A(B):\n    x = 1\n"),
    ("remove_method_override", "class A(Imported):\n    def __str__(self):\n        return 'a'\n", "class A(Imported):\n    pass\n"),
    ("remove_method_override", "class A:\n    def __eq__(self, o):\n        return True\n", "class A:\n    pass\n"),
    ("remove_base_class", "class A(Base, Mixin):\n    x = 1\n", "class A(Base):\n    x = 1\n"),
    ("remove_base_class", "class A(Base):\n    x = 1\n", "class A:\n    x = 1\n"),
    ("remove_base_class", "class BadInputError(ValueError):\n    pass\n", "class BadInputError(Exception):\n    pass\n"),
    ("remove_property_setter", "class A:\n    @property\n    def x(self):\n        return self._x\n\n    @x.setter\n    def x(self, v):\n        self._x = v\n", "class A:\n    @property\n    def x(self):\n        return self._x\n"),
]

# (operator, source) where the operator must not fire: noise, equivalent or not-ours cases.
LEAVE_ALONE = [
    ("swap_arithmetic", "def f(s):\n    return 'a' + s\n"),  # string building
    ("swap_arithmetic", "def f(s):\n    return '%s!' % s\n"),  # formatting
    ("swap_arithmetic", "def f(x: int | None):\n    return x\n"),  # a type annotation
    ("swap_arithmetic", "def f(x):\n    return isinstance(x, int | None)\n"),  # a type union
    ("swap_arithmetic", "class P(Base[str | bytes]):\n    pass\n"),  # class bases
    ("break_method_chain", "def f(d, k, x):\n    d.setdefault(k, []).append(x)\n"),
    ("drop_argument", "def f(n):\n    return '{n} items'.format(n=n)\n"),
    ("swap_operands", "def f(a, b):\n    return a + b\n"),  # commutative
    ("swap_string_method", "def f(s):\n    return s.split(',')\n"),  # split == rsplit here
    ("remove_call_statement", "def f(x):\n    logger.info('x=%s', x)\n    return x\n"),
    ("remove_call_statement", "def f(x):\n    print(x)\n    return x\n"),
    ("remove_assignment", "def f():\n    x = compute()\n    return x\n"),  # NameError, not a bug
    ("return_none", "def f():\n    yield 1\n    return 2\n"),  # a generator
    ("return_none", "class A:\n    def __init__(self):\n        return None\n"),
    ("shuffle_statements", "def f(a, b):\n    x = a\n    y = b\n    return x + y\n"),  # independent
    ("remove_decorator", "from typing import overload\n\nclass A:\n    @overload\n    def f(self): ...\n"),
    ("remove_method_override", "class A:\n    def __init__(self):\n        self.x = 1\n"),  # no base
    ("remove_method_override", "class A(Imported):\n    def helper(self):\n        return 1\n"),  # not known to override
    ("remove_base_class", "class E(Exception):\n    pass\n"),
    ("drop_argument", "def f(a, b):\n    return isinstance(a, b)\n"),  # a required argument
    ("swap_arguments", "def f(a):\n    return cast(int, a)\n"),
    ("swap_arguments", "class A(B):\n    def __init__(self, s):\n        B.__init__(self, s)\n"),
    ("swap_operands", "def f(n):\n    return n // 2\n"),
    ("remove_assignment", "def f(parts):\n    append = parts.append\n    return append\n"),
    ("remove_base_class", "class A(object):\n    pass\n"),
    ("flip_boolean", "def f(x=True):\n    return x\n"),  # that is change_default_argument's
    ("drop_early_return", "def f(xs):\n    out = []\n    if not xs:\n        return out\n    out.extend(xs)\n    return out\n"),
    ("invert_if_condition", "def f(x):\n    if x is not None:\n        return 1\n    return 2\n"),  # swap_comparison's
    ("swap_comparison", "x = 1 < 2\n"),  # module level: never mutated
]


def test_every_operator_has_a_before_after_pair():
    assert {op for op, _, _ in PAIRS} == set(operator_names())


def test_operators_cover_every_family_and_declare_themselves():
    assert len(OPERATOR_CLASSES) >= 20
    assert {c.family for c in OPERATOR_CLASSES} == set(FAMILIES)
    for c in OPERATOR_CLASSES:
        assert c.name and c.explanation and c.node_types and c.example, c
        assert "\n" not in c.explanation, f"{c.name}: the explanation is one line"


@pytest.mark.parametrize(("operator", "before", "after"), PAIRS, ids=[f"{p[0]}-{i}" for i, p in enumerate(PAIRS)])
def test_operator_turns_before_into_after(operator, before, after):
    got = mutants_of(before, operator)
    assert after in got, "\n---\n".join(got)
    for text in got:
        compile(text, "m.py", "exec")
        assert ast.dump(ast.parse(text)) != ast.dump(ast.parse(before))


@pytest.mark.parametrize(("operator", "source"), LEAVE_ALONE, ids=[f"{p[0]}-{i}" for i, p in enumerate(LEAVE_ALONE)])
def test_operator_leaves_alone(operator, source):
    assert mutants_of(source, operator) == []


@pytest.mark.parametrize("cls", OPERATOR_CLASSES, ids=lambda c: c.name)
def test_operator_example_produces_a_mutant(cls):
    assert mutants_of(cls.example, cls.name), f"{cls.name}'s docs example has no mutant"
