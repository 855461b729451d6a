"""The point of it all: the covering tests notice most mutants (a kill rate, measured in-process).

The verifiers do this for real, in containers; here the calc module's own tests run against
each mutated module in a fresh namespace, which is enough to show that the operators make bugs
tests catch rather than noise they cannot see.
"""

from __future__ import annotations

import pytest
from mut_helpers import CALC, STABLE, TESTS, coverage_of

from mutators import MutateConfig, mutate_repo
from mutators.diff import apply_patch, parse_patch

SUITE = '''
import pytest


def test_add():
    assert add(1, 2) == 3
    assert add(-1, 1) == 0


def test_clamp():
    assert clamp(-5) == 0
    assert clamp(50) == 10
    assert clamp(0) == 0
    assert clamp(10) == 10
    assert clamp(3, lo=4) == 4
    assert clamp(7) == 7


def test_total():
    assert total([1, 2, None, 3]) == 6
    assert total([]) == 0


def test_parse():
    assert parse(" a,b,,c ") == ["a", "b", "c"]
    assert parse("a;b", sep=";") == ["a", "b"]
    assert parse("") == []


def test_stack():
    s = Stack()
    assert s.push(1) == 1
    assert s.push(2) == 2
    assert s.top == 2
    with pytest.raises(ValueError):
        s.push(None)
    assert s.items == [1, 2]
'''


def _killed(mutated_source: str, covering: tuple[str, ...]) -> bool:
    ns: dict = {"__name__": "calc_under_test"}
    try:
        exec(compile(mutated_source, "calc.py", "exec"), ns)
        exec(compile(SUITE, "test_calc.py", "exec"), ns)
        for nodeid in covering:
            ns[nodeid.split("::")[1]]()
    except (Exception, pytest.fail.Exception):  # any failure of a test is the test noticing the bug
        return True
    return False


def test_the_covering_tests_notice_most_mutants(repo_factory):
    # Sanity first: the suite passes on the original.
    assert not _killed(CALC, tuple(t for n, t in TESTS.items() if n != "never_tested"))
    repo, commit = repo_factory({"pkg/calc.py": CALC})
    coverage = coverage_of(CALC, "pkg/calc.py", TESTS)
    result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(max_per_function=100))
    outcomes = {}
    for c in result.candidates:
        mutated = apply_patch(CALC, parse_patch(c.patch)["pkg/calc.py"])
        outcomes[(c.operator, c.symbol, c.start_line)] = _killed(mutated, c.covering_tests)
    rate = sum(outcomes.values()) / len(outcomes)
    survivors = sorted(k for k, killed in outcomes.items() if not killed)
    assert len(outcomes) >= 30
    assert rate >= 0.8, f"kill rate {rate:.0%}; survivors: {survivors}"
    print(f"kill rate {rate:.0%} of {len(outcomes)}; survivors: {survivors}")
