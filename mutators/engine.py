"""Source text in, mutants out: find sites, pick a few per function, render, check, diff.

``mutate_source`` is pure: it reads no files and knows nothing of repositories. For one
module it

1. parses it with libcst (a file that does not parse or does not round-trip is skipped with a
   reason) and resolves line positions;
2. walks the tree once, asking each operator for its variants at each node of its types;
3. drops sites whose lines no stable passing test executes, and sites outside any function or
   class (module-level code);
4. per unit (innermost function or class) orders the sites in a seeded round-robin over
   operators and materialises them until ``max_per_function`` mutants survive: the mutated
   unit must parse and compile, must differ from the original as an AST (so
   whitespace and comments never count as a change), and its diff must be new.

Rendering and checking work on the one function or class the mutant belongs to (rendered with
its indentation and checked against the file's own lines; the whole top-level statement when
that check fails), so the cost of a mutant is proportional to its function, not to the file.
"""

from __future__ import annotations

import ast
import random
from collections import Counter, defaultdict
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from factory.schema import content_hash
from mutators.base import Context, Operator, child_nodes
from mutators.diff import file_diff, split_lines

try:  # private, see _Renderer: every use is checked, and without it we render whole statements
    from libcst._nodes.internal import CodegenState
except ImportError:  # pragma: no cover - a libcst that moved it
    CodegenState = None

__all__ = ["FileMutants", "Mutant", "class_index", "mutate_source", "stable_int"]


def stable_int(*parts: object) -> int:
    """A 64-bit integer from a stable hash of the parts (never Python's salted ``hash()``)."""
    return int(content_hash(*parts, length=16), 16)


@dataclass(frozen=True)
class Mutant:
    """One bug in one file: where, by which operator, and the diff that introduces it."""

    operator: str
    family: str
    explanation: str
    file: str
    symbol: str  # qualified name of the function or class it belongs to ("Cls.method")
    unit_kind: str  # "function" or "class"
    start_line: int
    end_line: int
    line: int  # the mutated node's own position, the "location" its seed derives from
    column: int
    variant: str
    patch: str
    covering_tests: tuple[str, ...]


@dataclass(frozen=True)
class FileMutants:
    """What one module gave: its mutants, or the reason it was skipped; counts either way."""

    mutants: list[Mutant]
    skipped: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Site:
    op: Operator
    node: cst.CSTNode
    ctx: Context
    variant: Hashable
    unit: cst.CSTNode
    symbol: str
    top: int  # index of the top-level statement that contains it
    tests: tuple[str, ...]


def _collect_sites(
    module: cst.Module,
    by_type: Mapping[type, list[Operator]],
    classes: Mapping[str, frozenset[str]] | None = None,
) -> list[tuple[Operator, cst.CSTNode, Context, Hashable]]:
    """Every (operator, node, context, variant) in the module, in a fixed order."""
    found: list[tuple[Operator, cst.CSTNode, Context, Hashable]] = []
    stack: list[cst.CSTNode] = []

    def walk(node: cst.CSTNode) -> None:
        ops = by_type.get(type(node))
        if ops:
            ctx = Context(tuple(stack), module, classes)
            for op in ops:
                for variant in op.variants(node, ctx):
                    found.append((op, node, ctx, variant))
        stack.append(node)
        for child in child_nodes(node):
            walk(child)
        stack.pop()

    for stmt in module.body:
        walk(stmt)
    return found


def class_index(sources: Iterable[str]) -> dict[str, frozenset[str]]:
    """Class name -> the methods it defines, over several modules (names merged by union).

    Uses CPython's ``ast`` (fast); a module that does not parse is left out, as the stage
    will skip it anyway.
    """
    out: dict[str, set[str]] = defaultdict(set)
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                out[node.name].update(
                    n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                )
    return {name: frozenset(methods) for name, methods in sorted(out.items())}


def _positions(module: cst.Module) -> Mapping[cst.CSTNode, CodeRange]:
    """Line/column ranges of every node: libcst's PositionProvider, one codegen pass.

    ``MetadataWrapper.resolve`` would also walk the whole tree for batchable providers it does
    not have; running the provider directly halves the cost. Falls back to the wrapper if the
    (private) hook ever changes.
    """
    provider = PositionProvider()
    gen = getattr(provider, "_gen_impl", None)
    if gen is not None and isinstance(getattr(provider, "_computed", None), dict):
        gen(module)
        if module.body and module.body[0] in provider._computed:
            return provider._computed
    return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)


def _unit(op: Operator, node: cst.CSTNode, ctx: Context) -> tuple[cst.CSTNode | None, str]:
    """The function or class a mutation belongs to, and its dotted qualified name."""
    chain = (*ctx.path, node)
    if op.unit == "class":
        idx = next((i for i in range(len(chain) - 1, -1, -1) if isinstance(chain[i], cst.ClassDef)), None)
    else:
        idx = next(
            (i for i in range(len(ctx.path) - 1, -1, -1) if isinstance(chain[i], (cst.FunctionDef, cst.ClassDef))),
            None,
        )
    if idx is None:
        return None, ""
    names = [n.name.value for n in chain[: idx + 1] if isinstance(n, (cst.FunctionDef, cst.ClassDef))]
    return chain[idx], ".".join(names)


def _tests_for(coverage: Mapping[int, Collection[str]] | None, start: int, end: int) -> tuple[str, ...] | None:
    """Stable tests executing any of the lines, or None when none does."""
    if coverage is None:
        return ()
    found: set[str] = set()
    for line in range(start, end + 1):
        tests = coverage.get(line)
        if tests:
            found.update(tests)
    return tuple(sorted(found)) if found else None


def round_robin(sites: list, rng: random.Random) -> list:
    """Sites (anything with ``.op.name``) interleaved across operators in a seeded order, so a
    per-file cap keeps a mix of operators; shared by the libcst and tree-sitter engines."""
    by_op: dict[str, list] = {}
    for s in sites:
        by_op.setdefault(s.op.name, []).append(s)
    names = sorted(by_op)
    rng.shuffle(names)
    for name in names:
        rng.shuffle(by_op[name])
    out = []
    for depth in range(max(len(v) for v in by_op.values())):
        out.extend(by_op[n][depth] for n in names if depth < len(by_op[n]))
    return out


def mutate_source(
    source: str,
    path: str,
    operators: Sequence[Operator],
    *,
    seed: int = 0,
    max_per_function: int = 3,
    coverage: Mapping[int, Collection[str]] | None = None,
    classes: Mapping[str, frozenset[str]] | None = None,
) -> FileMutants:
    """Mutants of one module.

    ``coverage`` maps a line to the stable passing tests that execute it; lines missing from
    it are not mutated. ``None`` means "treat every line as covered" (docs and unit tests).
    ``classes`` (see ``class_index``) tells which methods the repository's other classes
    define, so a method is known to override one of an imported base class.
    """
    try:
        return _mutate_source(source, path, operators, seed, max_per_function, coverage, classes)
    except RecursionError:
        # Expressions nested thousands deep (generated code): libcst and our walks recurse.
        return FileMutants([], "too_deep")


def _mutate_source(
    source: str,
    path: str,
    operators: Sequence[Operator],
    seed: int,
    max_per_function: int,
    coverage: Mapping[int, Collection[str]] | None,
    classes: Mapping[str, frozenset[str]] | None,
) -> FileMutants:
    counts: Counter[str] = Counter()
    try:
        module = cst.parse_module(source)
    except cst.ParserSyntaxError:
        return FileMutants([], "parse_error")
    if not module.body:
        return FileMutants([], None)
    try:
        ast.parse(source)  # libcst accepts some code CPython rejects; our checks need CPython's
    except (SyntaxError, ValueError):
        return FileMutants([], "parse_error")

    # Each top-level statement's own text and first line, so a mutant re-renders only one.
    header = "".join(module.code_for_node(h) for h in module.header)
    texts = [module.code_for_node(stmt) for stmt in module.body]
    footer = "".join(module.code_for_node(f) for f in module.footer)
    whole = header + "".join(texts) + footer
    if not module.has_trailing_newline:
        whole = whole.removesuffix(module.default_newline)
    if whole != source:
        return FileMutants([], "roundtrip")
    old_lines = split_lines(source)
    starts, line = [], header.count("\n")
    for text in texts:
        starts.append(line)
        line += text.count("\n")
    top_index = {id(stmt): i for i, stmt in enumerate(module.body)}

    positions = _positions(module)
    by_type: dict[type, list[Operator]] = defaultdict(list)
    for op in operators:
        for t in op.node_types:
            by_type[t].append(op)
    found = _collect_sites(module, by_type, classes)
    counts["sites_found"] += len(found)

    units: dict[int, list[_Site]] = {}
    for op, node, ctx, variant in found:
        unit, symbol = _unit(op, node, ctx)
        if unit is None:
            counts["skipped_module_level"] += 1
            continue
        first, last = op.coverage_nodes(node, ctx, variant)
        tests = _tests_for(coverage, positions[first].start.line, positions[last].end.line)
        if tests is None:
            counts["skipped_uncovered"] += 1
            continue
        top = top_index[id(ctx.path[0] if ctx.path else node)]
        units.setdefault(id(unit), []).append(_Site(op, node, ctx, variant, unit, symbol, top, tests))

    original_dumps: dict[int, str] = {}
    renderer = _Renderer(module, old_lines, positions)
    seen_patches: set[str] = set()
    mutants: list[Mutant] = []
    for sites in units.values():
        symbol = sites[0].symbol
        rng = random.Random(stable_int("select", seed, path, symbol))
        kept = 0
        for site in round_robin(sites, rng):
            if kept >= max_per_function:
                break
            outcome = _materialise(
                site, module, path, seed, texts, starts, old_lines, original_dumps, positions, renderer
            )
            if isinstance(outcome, str):
                counts[f"skipped_{outcome}"] += 1
                continue
            if outcome.patch in seen_patches:
                counts["skipped_duplicate"] += 1
                continue
            seen_patches.add(outcome.patch)
            mutants.append(outcome)
            kept += 1
    counts["mutants"] += len(mutants)
    return FileMutants(mutants, None, dict(counts))


class _Renderer:
    """Renders one unit (function or class) with the indentation it has in the file.

    Rendering only the unit keeps a mutant's cost proportional to its function, not to the
    class or file around it. It relies on libcst's codegen state (private, but our libcst is
    pinned), and every use is checked: the unit's original rendering must equal its lines in
    the file, else the caller falls back to re-rendering the whole top-level statement.
    """

    def __init__(self, module: cst.Module, old_lines: list[str], positions) -> None:
        self.module = module
        self.old_lines = old_lines
        self.positions = positions
        self.units: dict[int, tuple[int, int, list[str], str] | None] = {}

    def render(self, node: cst.CSTNode, indent: list[str]) -> str:
        state = CodegenState(default_indent=self.module.default_indent, default_newline=self.module.default_newline)
        state.indent_tokens = list(indent)
        node._codegen(state)
        return "".join(state.tokens)

    def unit_info(self, unit: cst.CSTNode, above: tuple[cst.CSTNode, ...]) -> tuple[int, int, list[str], str] | None:
        """(first line index, end index, indent tokens, AST dump) of a unit, or None."""
        key = id(unit)
        if key in self.units:
            return self.units[key]
        if CodegenState is None:
            return None
        indent = [
            b.indent if b.indent is not None else self.module.default_indent
            for b in above
            if isinstance(b, cst.IndentedBlock)
        ]
        anchor = unit.decorators[0] if unit.decorators else unit
        pre = len(unit.leading_lines) + (len(anchor.leading_lines) if unit.decorators else 0)
        start = self.positions[anchor].start.line - 1 - pre
        text = self.render(unit, indent)
        end = start + text.count("\n")
        info = None
        if start >= 0 and "".join(self.old_lines[start:end]) == text:
            try:
                tree = ast.parse(self.render(unit, []) if indent else text)
                # Alone, the unit must compile as it does in place (a nonlocal needs its
                # enclosing function): if not, its mutants are checked in context instead.
                compile(tree, "<unit>", "exec", dont_inherit=True)
                dump = ast.dump(tree)
            except (SyntaxError, ValueError):
                dump = None
            if dump is not None:
                info = (start, end, indent, dump)
        self.units[key] = info
        return info


def _checked(text: str, path: str, original_dump: str) -> str | None:
    """None when ``text`` compiles and differs from the original as an AST, else the reason."""
    try:
        tree = ast.parse(text)
        compile(tree, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return "no_compile"
    if ast.dump(tree) == original_dump:
        return "equivalent"
    return None


def _materialise(
    site: _Site,
    module: cst.Module,
    path: str,
    seed: int,
    texts: list[str],
    starts: list[int],
    old_lines: list[str],
    original_dumps: dict[int, str],
    positions: Mapping[cst.CSTNode, object],
    renderer: _Renderer,
) -> Mutant | str:
    """The mutant for one site, or the reason there is none."""
    op, node = site.op, site.node
    pos = positions[node].start
    rng_parts = ("site", seed, op.name, path, site.symbol, pos.line, pos.column, str(site.variant))

    chain = (*site.ctx.path, node)
    depth = next(i for i, n in enumerate(chain) if n is site.unit)
    info = renderer.unit_info(site.unit, chain[:depth])
    if info is not None:
        a, b, indent, unit_dump = info
        new_unit = op.rewrite(site.unit, node, site.ctx, site.variant, random.Random(stable_int(*rng_parts)))
        if not isinstance(new_unit, cst.CSTNode):
            return "invalid"
        new_text = renderer.render(new_unit, indent)
        reason = _checked(renderer.render(new_unit, []) if indent else new_text, path, unit_dump)
        if reason is not None:
            return reason
    else:
        # The slow, always-right path: the whole top-level statement around the site.
        top = module.body[site.top]
        new_top = op.rewrite(top, node, site.ctx, site.variant, random.Random(stable_int(*rng_parts)))
        if not isinstance(new_top, cst.CSTNode):
            return "invalid"
        new_text = module.code_for_node(new_top)
        if site.top not in original_dumps:
            original_dumps[site.top] = ast.dump(ast.parse(texts[site.top]))
        reason = _checked(new_text, path, original_dumps[site.top])
        if reason is not None:
            return reason
        a = starts[site.top]
        b = a + texts[site.top].count("\n")
        last_stmt = site.top == len(module.body) - 1
        if last_stmt and not module.has_trailing_newline and not module.footer:
            new_text = new_text.removesuffix(module.default_newline)

    new_lines = split_lines(new_text)
    new_file = old_lines[:a] + new_lines + old_lines[b:]
    patch = file_diff(path, old_lines, new_file, lo=a, hi_old=b, hi_new=a + len(new_lines))
    if not patch:
        return "equivalent"
    first, last = op.span_nodes(node, site.variant)
    return Mutant(
        operator=op.name,
        family=op.family,
        explanation=op.explanation,
        file=path,
        symbol=site.symbol,
        unit_kind="class" if isinstance(site.unit, cst.ClassDef) else "function",
        start_line=positions[first].start.line,
        end_line=positions[last].end.line,
        line=pos.line,
        column=pos.column,
        variant=str(site.variant),
        patch=patch,
        covering_tests=site.tests,
    )
