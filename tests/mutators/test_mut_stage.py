"""mutate_repo on real git repositories: targeting, patches that apply, determinism, bad input."""

from __future__ import annotations

import ast
import io
import json
import os
import subprocess

import pyarrow.parquet as pq
import pytest
from mut_helpers import CALC, STABLE, TEST_CALC, TESTS, coverage_of, git, lines_of

from factory.schema import Candidate, CoverageEntry, content_hash, to_table
from mutators import ConfigError, MutateConfig, mutate_repo
from mutators.diff import apply_patch, parse_patch


@pytest.fixture
def calc_repo(repo_factory):
    repo, commit = repo_factory({
        "pkg/__init__.py": "",
        "pkg/calc.py": CALC,
        "tests/test_calc.py": TEST_CALC,
        "pkg/conftest.py": "def helper(x):\n    return x + 1\n",
    })
    coverage = coverage_of(CALC, "pkg/calc.py", TESTS)
    # Test files are covered too (they run, after all); they must never be mutated.
    coverage += [CoverageEntry("tests/test_calc.py", 5, ("tests/test_calc.py::test_add",))]
    coverage += [CoverageEntry("pkg/conftest.py", 2, ("tests/test_calc.py::test_add",))]
    return repo, commit, coverage


def _fresh_clone(src, dest):
    subprocess.run(["git", "clone", "-q", str(src), str(dest)], check=True)
    return dest


def test_every_patch_applies_on_a_fresh_checkout_and_compiles(calc_repo, tmp_path):
    repo, commit, coverage = calc_repo
    result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(max_per_function=4))
    assert len(result.candidates) >= 15
    clone = _fresh_clone(repo, tmp_path / "clone")
    for c in result.candidates:
        check = git(clone, "apply", "--check", "-", input=c.patch)
        assert check.returncode == 0, (c.operator, check.stderr, c.patch)
        mutated = apply_patch(CALC, parse_patch(c.patch)["pkg/calc.py"])
        compile(mutated, "pkg/calc.py", "exec")
        assert ast.dump(ast.parse(mutated)) != ast.dump(ast.parse(CALC))
    # And one really applied: the working tree changes the way the patch says.
    first = result.candidates[0]
    assert git(clone, "apply", "-", input=first.patch).returncode == 0
    assert (clone / "pkg/calc.py").read_text() == apply_patch(CALC, parse_patch(first.patch)["pkg/calc.py"])


def test_candidates_are_complete_records(calc_repo):
    repo, commit, coverage = calc_repo
    result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(seed=7))
    assert git(repo, "status", "--porcelain").stdout == ""  # the checkout is read, never written
    assert list(result.stats) == sorted(result.stats)
    assert all(isinstance(v, int) for v in result.stats.values())
    for c in result.candidates:
        assert isinstance(c, Candidate)
        assert (c.repo, c.base_commit, c.origin, c.seed, c.file) == ("calc", commit, "mutation", 7, "pkg/calc.py")
        assert c.candidate_id == content_hash("mutation", "calc", commit, c.file, c.patch)
        assert c.operator and c.symbol and 1 <= c.start_line <= c.end_line
        assert json.loads(c.provenance)["explanation"]
    assert len({c.candidate_id for c in result.candidates}) == len(result.candidates)
    assert len({c.patch for c in result.candidates}) == len(result.candidates)


def test_only_covered_code_outside_tests_is_mutated(calc_repo):
    repo, commit, coverage = calc_repo
    result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(max_per_function=50))
    symbols = {c.symbol.split(".")[0] for c in result.candidates}
    assert "never_tested" not in symbols  # covered only by a flaky test
    assert {c.file for c in result.candidates} == {"pkg/calc.py"}
    assert result.stats["skipped_test_file"] == 2  # tests/test_calc.py and pkg/conftest.py
    assert {"add", "clamp", "total", "parse", "Stack"} <= symbols
    assert "Stack.push" in {c.symbol for c in result.candidates}
    for c in result.candidates:
        top = c.symbol.split(".")[0]
        assert c.covering_tests == (TESTS[top],)
        # The diff touches only the lines of its own function or class.
        span = lines_of(CALC, c.symbol.split(".")[-1])
        for hunk in parse_patch(c.patch)["pkg/calc.py"]:
            old_line = hunk.old_start
            for line in hunk.lines:
                if line[0] == "-":
                    assert old_line in span, (c.symbol, c.operator, c.patch)
                if line[0] in " -":
                    old_line += 1


def test_covering_tests_are_those_of_the_mutated_lines(repo_factory):
    src = "def f(a, b):\n    x = a + 1\n    y = b - 1\n    return x * y\n"
    repo, commit = repo_factory({"m.py": src})
    coverage = [
        CoverageEntry("m.py", 2, ("t::one",)),
        CoverageEntry("m.py", 3, ("t::two",)),
        CoverageEntry("m.py", 4, ("t::one", "t::two", "t::flaky")),
    ]
    result = mutate_repo(repo, "r", commit, coverage, {"t::one", "t::two"}, MutateConfig(max_per_function=100))
    by_line = {2: ("t::one",), 3: ("t::two",), 4: ("t::one", "t::two")}
    assert result.candidates
    for c in result.candidates:
        if c.start_line == c.end_line and c.operator in ("swap_arithmetic", "off_by_one_constant"):
            assert c.covering_tests == by_line[c.start_line]


def test_max_per_function_spreads_candidates(calc_repo):
    repo, commit, coverage = calc_repo
    for n in (1, 2):
        result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(max_per_function=n))
        per_symbol: dict[str, int] = {}
        for c in result.candidates:
            per_symbol[c.symbol] = per_symbol.get(c.symbol, 0) + 1
        assert max(per_symbol.values()) <= n
        assert len(per_symbol) >= 6


def _parquet_bytes(candidates) -> bytes:
    buf = io.BytesIO()
    pq.write_table(to_table(candidates, Candidate), buf)
    return buf.getvalue()


def test_same_seed_gives_byte_identical_output_and_another_seed_differs(calc_repo):
    repo, commit, coverage = calc_repo
    a = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(seed=3))
    b = mutate_repo(repo, "calc", commit, list(reversed(coverage)), list(STABLE), MutateConfig(seed=3))
    assert a == b
    assert _parquet_bytes(a.candidates) == _parquet_bytes(b.candidates)
    c = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(seed=4))
    assert [x.patch for x in c.candidates] != [x.patch for x in a.candidates]


def test_same_seed_is_identical_across_processes(calc_repo):
    """Python's hash() is salted per process; nothing may depend on it."""
    repo, commit, coverage = calc_repo
    code = (
        "import json, sys\n"
        "from factory.schema import CoverageEntry\n"
        "from mutators import MutateConfig, mutate_repo\n"
        "cov = [CoverageEntry(*e[:2], tuple(e[2])) for e in json.load(sys.stdin)]\n"
        f"r = mutate_repo({str(repo)!r}, 'calc', {commit!r}, cov, {sorted(STABLE)!r}, MutateConfig())\n"
        "print(json.dumps([c.candidate_id for c in r.candidates]))\n"
    )
    payload = json.dumps([[e.file, e.line, list(e.nodeids)] for e in coverage])
    outs = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        proc = subprocess.run(
            [os.sys.executable, "-c", code], input=payload, capture_output=True, text=True, env=env, check=True
        )
        outs.add(proc.stdout)
    assert len(outs) == 1


def test_operators_and_limits_from_the_config(calc_repo):
    repo, commit, coverage = calc_repo
    result = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(operators=("swap_comparison",)))
    assert result.candidates and {c.operator for c in result.candidates} == {"swap_comparison"}
    capped = mutate_repo(repo, "calc", commit, coverage, STABLE, MutateConfig(max_candidates=3))
    assert len(capped.candidates) == 3 and capped.stats["candidates"] == 3
    with pytest.raises(ConfigError, match="--operators"):
        MutateConfig(operators=("no_such_operator",))
    with pytest.raises(ConfigError, match="--max-per-function"):
        MutateConfig(max_per_function=0)
    flags = MutateConfig.from_flags(seed=2, max_per_function=5, operators="swap_comparison, flip_boolean")
    assert flags == MutateConfig(seed=2, max_per_function=5, operators=("swap_comparison", "flip_boolean"))
    with pytest.raises(ConfigError, match="--operators"):
        MutateConfig.from_flags(operators=",")


GOOD = "def f(x):\n    if x > 0:\n        return x + 1\n    return -x\n"


def _all_lines(files: dict[str, str | bytes], test="t::ok") -> list[CoverageEntry]:
    out = []
    for rel, content in files.items():
        text = content if isinstance(content, str) else content.decode("latin-1")
        out.extend(CoverageEntry(rel, i, (test,)) for i in range(1, text.count("\n") + 2))
    return out


def test_bad_input_is_skipped_with_a_counted_reason(repo_factory, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text(GOOD)
    files = {
        "ok.py": GOOD,
        "py2.py": 'def f(x):\n    print "x is", x\n    return x\n',
        "broken.py": "def f(x:\n    return x\n",
        "latin1.py": "def f(x):\n    return 'caf\xe9' + x\n".encode("latin-1"),
        "big.py": GOOD + "\n".join(f"X{i} = {i}" for i in range(3000)) + "\n",
        "gen.py": "# @generated by protoc. DO NOT EDIT.\n" + GOOD,
        "bom.py": b"\xef\xbb\xbf" + GOOD.encode(),
        "notes.txt": "not python\n",
    }
    repo, _ = repo_factory(files)
    os.symlink(outside, repo / "link_out.py")
    os.symlink(repo / "ok.py", repo / "link_in.py")
    (repo / "untracked.py").write_text(GOOD)
    subprocess.run(["git", "-C", str(repo), "add", "link_out.py", "link_in.py"], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@e.invalid", "commit", "-qm", "links"], check=True)
    commit = git(repo, "rev-parse", "HEAD").stdout.strip()
    coverage = _all_lines(files) + _all_lines({"link_out.py": GOOD, "link_in.py": GOOD, "untracked.py": GOOD, "missing.py": GOOD})
    coverage.append(CoverageEntry("../escape.py", 1, ("t::ok",)))
    coverage.append(CoverageEntry("./ok.py", 2, ("t::other",)))  # the same file as ok.py
    result = mutate_repo(repo, "r", commit, coverage, {"t::ok", "t::other"}, MutateConfig(max_file_bytes=10_000))
    s = result.stats
    assert any("t::other" in c.covering_tests for c in result.candidates)
    assert s["files_mutated"] == 1 and {c.file for c in result.candidates} == {"ok.py"}
    assert s["skipped_parse_error"] == 2  # py2.py, broken.py
    assert s["skipped_non_utf8"] == 1
    assert s["skipped_too_large"] == 1
    assert s["skipped_generated"] == 1
    assert s["skipped_bom"] == 1
    assert s["skipped_not_python"] == 1
    assert s["skipped_symlink"] == 2
    assert s["skipped_untracked"] == 1
    assert s["skipped_missing"] == 1
    assert s["skipped_outside_repo"] == 1


@pytest.mark.parametrize(
    "source",
    [
        "def f(x):\r\n    if x > 0:\r\n        return x + 1\r\n    return -x\r\n",  # CRLF
        "def f(x):\n    if x > 0:\n        return x + 1\n    return -x",  # no newline at the end
        "def f(x):\n\tif x > 0:\n\t\treturn x + 1\n\treturn -x\n",  # tabs
        "class A:\n    def f(self, x):\n        '''doc\n  with odd\nindent'''\n        return x - 1\n",
        "def f(x):\n    return x + 1\n\x0c\ndef g(y):\n    return y * 2\n",  # a form feed
    ],
    ids=["crlf", "no-final-newline", "tabs", "multiline-string", "form-feed"],
)
def test_unusual_formatting_still_gives_patches_git_applies(repo_factory, tmp_path, source):
    repo, commit = repo_factory({"m.py": source.encode()})
    result = mutate_repo(repo, "r", commit, _all_lines({"m.py": source}), {"t::ok"}, MutateConfig(max_per_function=50))
    assert result.candidates
    clone = _fresh_clone(repo, tmp_path / "clone")
    for c in result.candidates:
        check = git(clone, "apply", "--check", "-", input=c.patch)
        assert check.returncode == 0, (c.operator, check.stderr, repr(c.patch))
        compile(apply_patch(source, parse_patch(c.patch)["m.py"]), "m.py", "exec")


def test_a_method_overriding_a_base_from_another_module_can_be_removed(repo_factory):
    base = "class Shape:\n    def area(self):\n        return 0\n\n    def name(self):\n        return 'shape'\n"
    sub = (
        "from pkg.base import Shape\n\n\nclass Square(Shape):\n    def __init__(self, s):\n        self.s = s\n\n"
        "    def area(self):\n        return self.s * self.s\n\n    def extra(self):\n        return 1\n"
    )
    repo, commit = repo_factory({"pkg/__init__.py": "", "pkg/base.py": base, "pkg/shapes.py": sub})
    # Only the subclass is covered: the base module is indexed anyway.
    coverage = [CoverageEntry("pkg/shapes.py", line, ("t::sq",)) for line in range(1, 13)]
    result = mutate_repo(repo, "r", commit, coverage, {"t::sq"}, MutateConfig(operators=("remove_method_override",), max_per_function=10))
    removed = {c.patch.split("-    def ", 1)[1].split("(")[0] for c in result.candidates}
    assert removed == {"area", "__init__"}  # extra() overrides nothing
