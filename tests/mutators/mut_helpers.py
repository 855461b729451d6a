"""Helpers for the mutators' tests: real git repositories in temporary folders, mutant texts."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

from factory.schema import CoverageEntry
from mutators import make_operators, mutate_source
from mutators.diff import apply_patch, parse_patch


def git(repo: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, text=True, check=False
    )


def make_repo(root: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """A git repository at root holding files, committed; (path, commit)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_bytes(content.encode())
    assert git(root, "init", "-q").returncode == 0
    git(root, "add", "-A")
    r = git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    assert r.returncode == 0, r.stderr
    return root, git(root, "rev-parse", "HEAD").stdout.strip()


def mutants_of(source: str, operator: str, **kw) -> list[str]:
    """Every mutated version of source that one operator makes (each site, all variants)."""
    ops = [o for o in make_operators() if o.name == operator]
    kw.setdefault("max_per_function", 1000)
    result = mutate_source(source, "m.py", ops, **kw)
    assert result.skipped is None, result.skipped
    return [apply_patch(source, parse_patch(m.patch)["m.py"]) for m in result.mutants]


CALC = '''\
"""A small module with enough functions to spread mutants over."""

LIMIT = 10


def add(a, b):
    return a + b


def clamp(x, lo=0, hi=LIMIT):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x


def total(items):
    n = 0
    for x in items:
        if x is None:
            continue
        n += x
    return n


def parse(text, sep=","):
    parts = text.strip().split(sep)
    return [p for p in parts if p]


def never_tested(x):
    return x * 2 - 1


class Stack:
    def __init__(self):
        self.items = []

    def push(self, item):
        if item is None:
            raise ValueError("no None")
        self.items.append(item)
        return len(self.items)

    @property
    def top(self):
        return self.items[-1]
'''

TEST_CALC = '''\
from pkg.calc import add, clamp, total, parse, Stack


def test_add():
    assert add(1, 2) == 3
'''


def lines_of(source: str, name: str) -> range:
    """Lines of a top-level function or method (decorators included)."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            return range(start, node.end_lineno + 1)
    raise KeyError(name)


def coverage_of(source: str, file: str, test_for: dict[str, str]) -> list[CoverageEntry]:
    """Every line of each named function covered by its test."""
    out = []
    for name, test in test_for.items():
        out.extend(CoverageEntry(file, line, (test,)) for line in lines_of(source, name))
    return out


TESTS = {
    "add": "tests/test_calc.py::test_add",
    "clamp": "tests/test_calc.py::test_clamp",
    "total": "tests/test_calc.py::test_total",
    "parse": "tests/test_calc.py::test_parse",
    "Stack": "tests/test_calc.py::test_stack",
    "never_tested": "tests/test_calc.py::test_flaky",  # flaky: not in the stable set
}
STABLE = {t for n, t in TESTS.items() if n != "never_tested"}
