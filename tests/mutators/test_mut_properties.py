"""Property: on many generated functions every mutant compiles, differs, and stays in its unit."""

from __future__ import annotations

import ast
import warnings

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mutators import make_operators, mutate_source
from mutators.diff import apply_patch, parse_patch

NAMES = ("a", "b", "c", "xs", "s")

atoms = st.one_of(
    st.sampled_from(NAMES),
    st.integers(0, 12).map(str),
    st.sampled_from(("True", "False", "None", "','", "''", "-1", "self.n")),
)


def _compound(children):
    binop = st.tuples(children, st.sampled_from(("+", "-", "*", "//", "%", "<<", "&", "|")), children)
    cmp = st.tuples(children, st.sampled_from(("<", "<=", ">", ">=", "==", "!=", "is", "in", "not in")), children)
    boolop = st.tuples(children, st.sampled_from(("and", "or")), children)
    return st.one_of(
        binop.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        binop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        cmp.map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
        boolop.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        children.map(lambda e: f"not ({e})"),
        children.map(lambda e: f"-({e})"),
        st.tuples(children, children).map(lambda t: f"min({t[0]}, {t[1]})"),
        st.tuples(children, children).map(lambda t: f"g({t[0]}, key={t[1]})"),
        children.map(lambda e: f"sorted({e})"),
        children.map(lambda e: f"len({e})"),
        st.just("s.strip().lower()"),
        st.just("s.split(',', 1)"),
        st.just("s.startswith('x')"),
        st.tuples(children, children).map(lambda t: f"xs[{t[0]}:{t[1]}]"),
        st.just("xs[0]"),
        st.just("xs[-1]"),
        children.map(lambda e: f"range({e})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
    )


exprs = st.recursive(atoms, _compound, max_leaves=4)
targets = st.sampled_from(("a", "b", "c", "self.n", "xs[0]"))


def _block(depth: int):
    simple = st.one_of(
        st.tuples(targets, exprs).map(lambda t: [f"{t[0]} = {t[1]}"]),
        st.tuples(targets, st.sampled_from(("+=", "-=", "|=")), exprs).map(lambda t: [f"{t[0]} {t[1]} {t[2]}"]),
        exprs.map(lambda e: [f"xs.append({e})"]),
        exprs.map(lambda e: [f"return {e}"]),
        exprs.map(lambda e: [f"if {e}:", "    raise ValueError(a)"]),
    )
    if depth == 0:
        return st.lists(simple, min_size=1, max_size=4).map(lambda ls: [x for part in ls for x in part])
    inner = _block(depth - 1).map(lambda lines: ["    " + x for x in lines])
    compound = st.one_of(
        st.tuples(exprs, inner).map(lambda t: [f"if {t[0]}:", *t[1]]),
        st.tuples(exprs, inner, inner).map(lambda t: [f"if {t[0]}:", *t[1], "else:", *t[2]]),
        st.tuples(exprs, inner, inner).map(lambda t: [f"if {t[0]}:", *t[1], f"elif {t[0]} == 1:", *t[2]]),
        st.tuples(exprs, inner, st.sampled_from(("break", "continue"))).map(
            lambda t: [f"for i in range({t[0]}):", *t[1], "    if i == 2:", f"        {t[2]}"]
        ),
        st.tuples(inner, inner).map(lambda t: ["try:", *t[0], "except (ValueError, KeyError):", *t[1]]),
    )
    return st.lists(st.one_of(simple, compound), min_size=1, max_size=3).map(lambda ls: [x for part in ls for x in part])


@st.composite
def modules(draw):
    body = draw(_block(2))
    params = draw(st.sampled_from(("a, b, c=0", "a, b=True, *xs", "self, a, b, c, xs, s=','")))
    in_class = draw(st.booleans())
    fn = [f"def f({params}):", *("    " + x for x in body)]
    if in_class:
        base = draw(st.sampled_from(("", "(Base)", "(Base, Mixin)")))
        decorator = draw(st.sampled_from(([], ["@property"], ["@staticmethod"])))
        fn = [f"class K{base}:", "    n = 10", "", *("    " + x for x in decorator + fn)]
    return "import os\n\n\n" + "\n".join(fn) + "\n"


def _changed_old_lines(patch: str) -> set[int]:
    out = set()
    for hunk in parse_patch(patch)["m.py"]:
        line = hunk.old_start
        for text in hunk.lines:
            if text[0] == "-":
                out.add(line)
            if text[0] in " -":
                line += 1
        if hunk.old_len == 0:
            out.add(hunk.old_start)
    return out


def _span(source: str, name: str) -> tuple[int, int]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            return min([node.lineno] + [d.lineno for d in node.decorator_list]), node.end_lineno
    raise KeyError(name)


OPS = make_operators()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(modules(), st.integers(0, 3))
def test_every_mutant_compiles_differs_and_stays_in_its_unit(source, seed):
    warnings.simplefilter("ignore", SyntaxWarning)  # `a is 1` is legal, if silly
    try:
        compile(source, "m.py", "exec")
    except SyntaxError:
        return  # the generator can write e.g. `return` at odd places inside a class; not our input
    result = mutate_source(source, "m.py", OPS, seed=seed, max_per_function=1000)
    assert result.skipped is None
    original = ast.dump(ast.parse(source))
    first_unit_line = 4  # after "import os" and two blank lines
    for m in result.mutants:
        mutated = apply_patch(source, parse_patch(m.patch)["m.py"])
        compile(mutated, "m.py", "exec")
        assert ast.dump(ast.parse(mutated)) != original, (m.operator, m.patch)
        assert mutated.startswith("import os\n\n\n"), "module-level code is never touched"
        assert min(_changed_old_lines(m.patch)) >= first_unit_line
        assert m.symbol in ("f", "K", "K.f")
        lo, hi = _span(source, m.symbol.rsplit(".", 1)[-1])
        assert all(lo <= line <= hi + 1 for line in _changed_old_lines(m.patch)), (m.symbol, m.patch)
    assert len({m.patch for m in result.mutants}) == len(result.mutants)
