"""mutate_source: which sites become mutants, and how many per function."""

from __future__ import annotations

from mut_helpers import mutants_of

from mutators import make_operators, mutate_source

OPS = make_operators()


def test_module_level_and_uncovered_code_is_left_alone():
    src = "LIMIT = 1 + 2\n\n\ndef f(a):\n    return a - 1\n\n\ndef g(b):\n    return b * 2\n"
    result = mutate_source(src, "m.py", OPS, max_per_function=50, coverage={5: ("t::f",)})
    assert result.mutants and {m.symbol for m in result.mutants} == {"f"}
    assert all(m.covering_tests == ("t::f",) for m in result.mutants)
    assert result.counts["skipped_module_level"] > 0 and result.counts["skipped_uncovered"] > 0


def test_a_function_with_nonlocal_is_still_mutated():
    src = (
        "def outer(xs):\n    total = 0\n\n    def add(x):\n        nonlocal total\n"
        "        if x > 0:\n            total += x\n\n    for x in xs:\n        add(x)\n    return total\n"
    )
    result = mutate_source(src, "m.py", OPS, max_per_function=50)
    assert "outer.add" in {m.symbol for m in result.mutants}
    assert "skipped_no_compile" not in result.counts


def test_max_per_function_prefers_different_operators():
    src = "def f(a, b, xs):\n    if a < b and b > 0:\n        xs.append(a + b)\n    return sorted(xs)[1:]\n"
    result = mutate_source(src, "m.py", OPS, max_per_function=4)
    assert len(result.mutants) == 4
    assert len({m.operator for m in result.mutants}) == 4


def test_identical_diffs_are_kept_once():
    src = "def f(xs, out):\n    for x in xs:\n        out.append(x)\n    return out\n"
    both = [o for o in OPS if o.name in ("remove_loop_body_effect", "remove_call_statement")]
    result = mutate_source(src, "m.py", both, max_per_function=10)
    assert len(result.mutants) == 1 and result.counts["skipped_duplicate"] == 1


def test_seeds_change_the_choice_not_the_validity():
    src = "def f(a, b, xs):\n    if a < b and b > 0:\n        xs.append(a + b)\n    return sorted(xs)[1:]\n"
    picks = {
        tuple(m.patch for m in mutate_source(src, "m.py", OPS, seed=s, max_per_function=2).mutants)
        for s in range(6)
    }
    assert len(picks) > 1
    assert mutate_source(src, "m.py", OPS, seed=3).mutants == mutate_source(src, "m.py", OPS, seed=3).mutants


def test_pathological_input_is_a_reason_not_a_crash():
    deep = "def f(a):\n    return " + " + ".join(["a"] * 1500) + "\n"
    result = mutate_source(deep, "m.py", OPS)
    assert result.skipped in (None, "too_deep", "parse_error")
    assert mutate_source("def f(:\n", "m.py", OPS).skipped == "parse_error"
    assert mutate_source("", "m.py", OPS).mutants == []


def test_comments_and_whitespace_alone_never_make_a_mutant():
    # swap_if_else_bodies on identical bodies (differing only in a comment) would be a no-op.
    src = "def f(a):\n    if a:\n        x = 1  # one\n    else:\n        x = 1  # uno\n    return x\n"
    assert mutants_of(src, "swap_if_else_bodies") == []
