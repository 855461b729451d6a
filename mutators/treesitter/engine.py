"""Source text in, mutants out, for JavaScript, TypeScript and Go (tree-sitter).

``mutate_ts_source`` is pure, like ``mutators.engine.mutate_source``: it parses the file, walks
it once asking each operator for its variants at the node types it reads, keeps sites inside a
function (module-level code is skipped) on lines the stable tests cover, orders each function's
sites in a seeded round-robin over operators and keeps the first ``max_per_function`` mutants
that parse without an error node (where the original had none), change the bytes, and give a
new diff. Edits are byte-exact: the mutant is the original with one node's bytes replaced.

Not for: Python (libcst: ``mutators.engine``).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from mutators.diff import file_diff, split_lines
from mutators.engine import FileMutants, Mutant, round_robin, stable_int
from mutators.treesitter.grammar import parser
from mutators.treesitter.ops import TS_OPERATORS, TSOperator

__all__ = ["mutate_ts_source", "ts_operators"]

# Function-like nodes: a mutant belongs to the innermost one (its "unit").
_UNITS = {"function_declaration", "function_expression", "function", "arrow_function", "method_definition",
          "generator_function_declaration", "generator_function", "method_declaration", "func_literal"}


def ts_operators(names: Sequence[str] | None, language: str) -> list[TSOperator]:
    """The operators for ``language`` (all, or those named that apply to it)."""
    return [op for op in TS_OPERATORS if language in op.languages and (names is None or op.name in names)]


@dataclass
class _Site:
    op: TSOperator
    variant: str
    edits: list[tuple[int, int, bytes]]
    line: int
    column: int
    first_line: int
    last_line: int
    unit_id: int
    symbol: str
    unit_start: int
    unit_end: int
    tests: tuple[str, ...]


def _unit_name(node, src: bytes) -> str:
    name = node.child_by_field_name("name")
    if name is not None:
        text = src[name.start_byte:name.end_byte].decode("utf-8", "replace")
        if node.type == "method_declaration":  # Go: the receiver's type names the method's owner
            recv = node.child_by_field_name("receiver")
            if recv is not None:
                rtype = src[recv.start_byte:recv.end_byte].decode("utf-8", "replace").strip("()").split()[-1]
                return f"{rtype.lstrip('*')}.{text}"
        return text
    parent = node.parent
    if parent is not None and parent.type in ("variable_declarator", "pair", "assignment_expression",
                                              "public_field_definition", "field_definition"):
        key = (parent.child_by_field_name("name") or parent.child_by_field_name("key")
               or parent.child_by_field_name("left"))
        if key is not None:
            return src[key.start_byte:key.end_byte].decode("utf-8", "replace")
    return f"<anonymous@{node.start_point[0] + 1}>"


def _qualified(stack: list, src: bytes) -> str:
    names = []
    for n in stack:
        if n.type in _UNITS:
            names.append(_unit_name(n, src))
        elif n.type in ("class_declaration", "class"):
            name = n.child_by_field_name("name")
            if name is not None:
                names.append(src[name.start_byte:name.end_byte].decode("utf-8", "replace"))
    return ".".join(names)


def _tests_for(coverage: Mapping[int, Collection[str]] | None, first: int, last: int) -> tuple[str, ...] | None:
    if coverage is None:
        return ()
    found: set[str] = set()
    for line in range(first, last + 1):
        found.update(coverage.get(line, ()))
    return tuple(sorted(found)) if found else None


def _apply(src: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out, pos = [], 0
    for start, end, new in sorted(edits):
        out += [src[pos:start], new]
        pos = end
    out.append(src[pos:])
    return b"".join(out)


def mutate_ts_source(source: str, path: str, language: str, operators: Sequence[TSOperator], *, seed: int = 0,
                     max_per_function: int = 3, coverage: Mapping[int, Collection[str]] | None = None) -> FileMutants:
    """Mutants of one JavaScript, TypeScript or Go file (``coverage``: line -> covering tests;
    ``None`` treats every line as covered, for the docs and unit tests)."""
    counts: Counter[str] = Counter()
    src = source.encode("utf-8")
    p = parser(language)
    tree = p.parse(src)
    if tree.root_node.has_error:
        return FileMutants([], "parse_error")
    by_type: dict[str, list[TSOperator]] = {}
    for op in operators:
        for t in op.node_types:
            by_type.setdefault(t, []).append(op)

    units: dict[int, list[_Site]] = {}
    stack: list = []
    cursor_nodes = [(tree.root_node, False)]
    # An explicit stack (no recursion: generated files nest deeply); (node, exiting)
    while cursor_nodes:
        node, exiting = cursor_nodes.pop()
        if exiting:
            stack.pop()
            continue
        ops = by_type.get(node.type)
        if ops:
            unit = next((n for n in reversed(stack) if n.type in _UNITS), None)
            for op in ops:
                for variant, edits in op.variants(node, src, language):
                    counts["sites_found"] += 1
                    if unit is None:
                        counts["skipped_module_level"] += 1
                        continue
                    first, last = node.start_point[0] + 1, node.end_point[0] + 1
                    tests = _tests_for(coverage, first, last)
                    if tests is None:
                        counts["skipped_uncovered"] += 1
                        continue
                    units.setdefault(unit.id, []).append(_Site(
                        op, variant, edits, first, node.start_point[1], first, last, unit.id,
                        _qualified([*stack], src), unit.start_point[0] + 1, unit.end_point[0] + 1, tests))
        stack.append(node)
        cursor_nodes.append((node, True))
        cursor_nodes.extend((c, False) for c in reversed(node.children))

    old_lines = split_lines(source)
    seen: set[str] = set()
    mutants: list[Mutant] = []
    for sites in units.values():
        rng = random.Random(stable_int("select", seed, path, sites[0].symbol, sites[0].unit_start))
        kept = 0
        for site in round_robin(sites, rng):
            if kept >= max_per_function:
                break
            new_src = _apply(src, site.edits)
            if new_src == src:
                counts["skipped_equivalent"] += 1
                continue
            if p.parse(new_src).root_node.has_error:
                counts["skipped_no_parse"] += 1
                continue
            try:
                new_text = new_src.decode("utf-8")
            except UnicodeDecodeError:
                counts["skipped_invalid"] += 1
                continue
            patch = file_diff(path, old_lines, split_lines(new_text))
            if not patch or patch in seen:
                counts["skipped_duplicate"] += 1
                continue
            seen.add(patch)
            mutants.append(Mutant(
                operator=site.op.name, family=site.op.family, explanation=site.op.explanation, file=path,
                symbol=site.symbol, unit_kind="function", start_line=site.unit_start, end_line=site.unit_end,
                line=site.line, column=site.column, variant=site.variant, patch=patch, covering_tests=site.tests))
            kept += 1
    counts["mutants"] += len(mutants)
    return FileMutants(mutants, None, dict(counts))
