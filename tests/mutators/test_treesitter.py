"""Tree-sitter mutators for JavaScript, TypeScript and Go: every operator on its own examples,
byte-exact edits, mutants that parse, coverage and module-level filtering, determinism."""

from __future__ import annotations

import subprocess

import pytest

pytest.importorskip("tree_sitter_javascript")

from mutators.diff import apply_patch, parse_patch  # noqa: E402
from mutators.treesitter import TS_OPERATORS, mutate_ts_source, ts_operators  # noqa: E402
from mutators.treesitter.grammar import language_of_path, parser  # noqa: E402

CASES = [(op, lang, src) for op in TS_OPERATORS for lang, src in op.examples]


def _apply(source: str, patch: str) -> str:
    hunks = parse_patch(patch)
    (path_hunks,) = hunks.values()
    return apply_patch(source, path_hunks)


def test_at_least_twelve_operators_per_language_across_the_families():
    for lang in ("javascript", "typescript", "go"):
        ops = ts_operators(None, lang)
        assert len(ops) >= 12, lang
        assert {op.family for op in ops} >= {"operations", "control_flow", "removals", "values", "calls"}
    names = {op.name for op in TS_OPERATORS}
    assert {"drop_await", "loosen_strict_equality", "drop_err_check"} <= names


@pytest.mark.parametrize(("op", "lang", "source"), CASES, ids=[f"{o.name}-{lang}" for o, lang, _ in CASES])
def test_each_example_gives_a_mutant_that_parses_and_changes_only_its_node(op, lang, source):
    path = "ex.go" if lang == "go" else "ex.js"
    res = mutate_ts_source(source, path, lang, [op], max_per_function=5)
    assert res.skipped is None and res.mutants, res.counts
    for m in res.mutants:
        assert m.operator == op.name and m.family == op.family
        mutated = _apply(source, m.patch)
        assert mutated != source
        assert not parser(lang).parse(mutated.encode()).root_node.has_error
        # Byte-exact: the bytes before and after the changed region are the original's, and the
        # changed region lies inside the mutant's function.
        pre = next(i for i in range(len(source) + 1) if i == len(source) or i == len(mutated) or source[i] != mutated[i])
        suf = 0
        while suf < min(len(source), len(mutated)) - pre and source[-1 - suf] == mutated[-1 - suf]:
            suf += 1
        first_line = source[:pre].count("\n") + 1
        last_line = source[:len(source) - suf].count("\n") + 1
        assert m.start_line <= first_line and last_line <= m.end_line + 1, (first_line, last_line, m.patch)


def test_typescript_files_are_mutated_with_the_typescript_grammar():
    src = ("export function clamp(n: number, lo: number, hi: number): number {\n"
           "  if (n < lo) return lo;\n  return n > hi ? hi : n;\n}\n")
    assert language_of_path("src/clamp.ts") == "typescript"
    res = mutate_ts_source(src, "src/clamp.ts", "typescript", ts_operators(None, "typescript"), max_per_function=50)
    ops = {m.operator for m in res.mutants}
    assert {"swap_comparison", "remove_guard_clause", "swap_ternary"} <= ops
    for m in res.mutants:
        assert not parser("typescript").parse(_apply(src, m.patch).encode()).root_node.has_error


def test_module_level_code_and_uncovered_lines_are_not_mutated():
    src = "const LIMIT = 1 < 2;\n\nfunction a(x) {\n  return x + 1;\n}\n\nfunction b(x) {\n  return x - 1;\n}\n"
    res = mutate_ts_source(src, "m.js", "javascript", ts_operators(None, "javascript"), max_per_function=10,
                           coverage={4: ("t::a",)})
    assert res.mutants and {m.symbol for m in res.mutants} == {"a"}
    assert all(m.covering_tests == ("t::a",) for m in res.mutants)
    assert res.counts["skipped_module_level"] >= 1 and res.counts["skipped_uncovered"] >= 1


def test_a_file_that_does_not_parse_is_skipped_with_a_reason():
    assert mutate_ts_source("function (", "x.js", "javascript", ts_operators(None, "javascript")).skipped == "parse_error"


def test_same_seed_same_mutants_and_a_cap_per_function():
    src = "function f(a, b) {\n  if (a === b) return a + b;\n  return a < b ? a * 2 : b - 1;\n}\n"
    ops = ts_operators(None, "javascript")
    one = mutate_ts_source(src, "f.js", "javascript", ops, seed=3, max_per_function=2)
    two = mutate_ts_source(src, "f.js", "javascript", ops, seed=3, max_per_function=2)
    assert [m.patch for m in one.mutants] == [m.patch for m in two.mutants] and len(one.mutants) == 2


def test_go_method_symbols_name_their_receiver_and_err_checks_are_their_own_operator():
    src = ("package p\n\nimport \"strconv\"\n\ntype T struct{ n int }\n\n"
           "func (t *T) Set(s string) error {\n\tn, err := strconv.Atoi(s)\n\tif err != nil {\n\t\treturn err\n\t}\n"
           "\tt.n = n\n\treturn nil\n}\n")
    res = mutate_ts_source(src, "t.go", "go", ts_operators(None, "go"), max_per_function=50)
    assert {m.symbol for m in res.mutants} == {"T.Set"}
    by_op = {m.operator for m in res.mutants}
    assert "drop_err_check" in by_op and "remove_assignment" in by_op


def test_mutated_go_still_passes_gofmt_parse(tmp_path):
    """The Go mutants parse for Go's own parser too, where a Go toolchain is installed."""
    gofmt = subprocess.run(["which", "gofmt"], capture_output=True, text=True).stdout.strip()
    if not gofmt:
        pytest.skip("no gofmt on this machine (the Go tests in Docker cover the toolchain)")
    for op, lang, src in CASES:
        if lang != "go":
            continue
        for m in mutate_ts_source(src, "ex.go", "go", [op]).mutants:
            p = tmp_path / "ex.go"
            p.write_text(_apply(src, m.patch))
            assert subprocess.run([gofmt, "-e", str(p)], capture_output=True).returncode == 0, m.patch
