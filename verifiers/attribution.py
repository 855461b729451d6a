"""Which tests can observe a change: a patch's changed lines attributed through the coverage map.

A test that never executes a changed line cannot observe the change. The baseline's coverage map
records, per test, every line it executes, so for a change made only of statements inside
function bodies the tests that can see it are those that executed those statements. Everything
else is *not attributable* and needs the full suite:

- module level and class bodies (they run at import), decorators, annotations and ``def`` lines
  (they run when the function is defined), docstrings (``__doc__``), default values other than a
  literal replaced by a literal;
- any statement the map saw run outside every test (``OUTSIDE_TESTS``: import, collection,
  between tests), such as a helper that builds a ``parametrize`` list;
- files without coverage data, non-Python files, new, deleted or renamed files, test files;
- a pure insertion at a function's last line (it may belong to the function or follow it).

Inside a body the unit is a statement: a changed line belongs to the innermost statement whose
lines hold it (a ``def`` or ``class`` statement nested in a function starts at its first
decorator), and the tests that ran any line of that statement are the ones that can see the
change. A pure insertion between two statements of a body, or before the first statement of a body
without a docstring, gets the tests of the whole body. Comment and blank lines between a signature
and the first statement belong to the body (not above a docstring): a change that removes them
with the statement below is a change to the body, the ``def`` line untouched.
A function whose only change is a default value, from one literal to another, is attributed to
the tests of its whole body: evaluating a literal at definition runs nothing, and a default is
seen only by a call, which runs the body (the mutators target the same tests for this operator).
A change is not attributed either when no test executed any statement it touches (coverage may
have missed how that code runs). Within a change that some test does execute, a statement no test
executed adds no test: had coverage missed a way it runs (a subprocess, ``exec``), the tests that
run it that way would be missing from the map for an executed statement too, so leaving it out
loses nothing the rule otherwise sees (a removed ``except`` clause that never fired, a dropped
``else`` branch no test took).
One change reaches past its statement: a function's *scope* (its local, global and nonlocal
names, whether it is a generator or a coroutine) is fixed when it is compiled, so deleting the
only assignment to ``x`` turns an earlier use of ``x`` into a global lookup. When a change alters
the scope of a function, the tests of the whole function body are the ones that can see it.

Not for: running anything. Pure functions of the patch text, the sources and the map.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from factory.schema import CoverageEntry

__all__ = ["OUTSIDE_TESTS", "Attribution", "CoverageMap", "attribute", "changed_lines"]

# The coverage map's pseudo node id for lines run outside every test (import, collection, between
# tests). It is no test id: mutators keep only stable-passing ids, which it never is.
OUTSIDE_TESTS = "<outside tests>"

_UNEXECUTED = "no test executes it"

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass(frozen=True)
class Attribution:
    """``tests``: the tests that can observe the change (None: not attributable, see ``reason``)."""

    tests: frozenset[str] | None
    reason: str = ""

    @property
    def attributable(self) -> bool:
        return self.tests is not None


@dataclass
class CoverageMap:
    """file -> line -> node ids that executed it; ``outside``: file -> lines run outside tests."""

    lines: dict[str, dict[int, frozenset[str]]] = field(default_factory=dict)
    outside: dict[str, frozenset[int]] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: Iterable[CoverageEntry]) -> CoverageMap:
        lines: dict[str, dict[int, set[str]]] = {}
        outside: dict[str, set[int]] = {}
        for e in entries:
            f = e.file.removeprefix("./")
            ids = set(e.nodeids)
            if OUTSIDE_TESTS in ids:
                outside.setdefault(f, set()).add(e.line)
                ids.discard(OUTSIDE_TESTS)
            if ids:
                lines.setdefault(f, {}).setdefault(e.line, set()).update(ids)
        return cls({f: {n: frozenset(t) for n, t in ls.items()} for f, ls in lines.items()},
                   {f: frozenset(ls) for f, ls in outside.items()})

    def __bool__(self) -> bool:
        return bool(self.lines)


@dataclass(frozen=True)
class _FileChange:
    path: str
    removed: tuple[int, ...]  # old line numbers of removed (or replaced) lines
    inserted_before: tuple[int, ...]  # pure insertions: the old line they precede
    whole_file: str = ""  # why the file as a whole is not attributable ("new file", ...)
    hunks: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (old start, the hunk's body lines)


def changed_lines(patch: str) -> list[_FileChange]:
    """The old-side lines each file's hunks change; a run of ``-``/``+`` lines with no ``-`` is a
    pure insertion before the next old line."""
    out: list[_FileChange] = []
    path, whole = None, ""
    removed: list[int] = []
    inserted: list[int] = []
    old = 0
    block_removed = block_added = False

    def _end_block() -> None:
        nonlocal block_removed, block_added
        if block_added and not block_removed:
            inserted.append(old)
        block_removed = block_added = False

    hunks: list[tuple[int, list[str]]] = []

    def _flush() -> None:
        if path is not None:
            _end_block()
            out.append(_FileChange(path, tuple(removed), tuple(inserted), whole,
                                   tuple((a, tuple(b)) for a, b in hunks)))

    in_hunk = False
    old_left = new_left = 0
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            _flush()
            parts = line.split(" b/", 1)
            path, whole, removed, inserted, in_hunk = (parts[1] if len(parts) == 2 else line), "", [], [], False
            hunks = []
            continue
        if in_hunk and old_left <= 0 and new_left <= 0 and not line.startswith("\\"):
            in_hunk = False
        if not in_hunk or line[:1] not in (" ", "-", "+", "\\"):
            if line.startswith("+++ "):
                target = line[4:].strip()
                if target == "/dev/null":
                    whole = whole or "deletes a file"
                elif path is None:
                    path = target.removeprefix("b/")
            elif line.startswith("--- ") and line[4:].strip() == "/dev/null":
                whole = whole or "adds a file"
            elif line.startswith(("new file mode", "deleted file mode", "rename from", "copy from")):
                whole = whole or line.split(" ")[0] + " " + line.split(" ")[1]
            m = _HUNK.match(line)
            if m:
                if path is None:
                    path = "?"
                _end_block()
                old = int(m.group(1)) if m.group(2) != "0" else int(m.group(1)) + 1
                old_left = int(m.group(2)) if m.group(2) is not None else 1
                new_left = int(m.group(4)) if m.group(4) is not None else 1
                hunks.append((old, []))
                in_hunk = True
            continue
        tag = line[:1]
        if tag == "\\":
            continue
        hunks[-1][1].append(line)
        if tag == " ":
            _end_block()
            old += 1
            old_left, new_left = old_left - 1, new_left - 1
        elif tag == "-":
            removed.append(old)
            block_removed = True
            old += 1
            old_left -= 1
        elif tag == "+":
            block_added = True
            new_left -= 1
    _flush()
    return out


@dataclass(frozen=True)
class _Stmt:
    start: int  # first line (a decorator's, for a decorated def or class)
    end: int


@dataclass(frozen=True)
class _Func:
    body_start: int
    end: int
    doc: tuple[int, int] | None  # the docstring's lines
    stmts: tuple[_Stmt, ...]  # every statement under the body, nested ones too
    name: str = ""  # qualified: outer names and this one, with an ordinal for repeats
    scope: tuple = ()  # what compiling the function fixes (see _scope)
    head: int = 0  # the ``def`` line (decorators excluded): the signature runs from here to the body
    lead: int = 0  # the first of the comment and blank lines between the signature and body_start


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)


def _scope(node) -> tuple:
    """The names a function binds, declares global or nonlocal, and whether it yields or awaits:
    what its compilation fixes for every line of it."""
    binds, glob, nonloc, flags = set(), set(), set(), set()
    a = node.args
    for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg]:
        if arg is not None:
            binds.add(arg.arg)
    todo = list(node.body)
    while todo:
        n = todo.pop()
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            binds.add(n.name)
            todo.extend(n.decorator_list)
            continue
        if isinstance(n, _SCOPES):
            continue
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            binds.add(n.id)
        elif isinstance(n, ast.alias):
            binds.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.Global):
            glob.update(n.names)
        elif isinstance(n, ast.Nonlocal):
            nonloc.update(n.names)
        elif isinstance(n, (ast.Yield, ast.YieldFrom)):
            flags.add("yield")
        elif isinstance(n, (ast.Await, ast.AsyncFor, ast.AsyncWith)):
            flags.add("await")
        elif isinstance(n, ast.ExceptHandler) and n.name:
            binds.add(n.name)
        elif isinstance(n, ast.MatchAs | ast.MatchStar) and n.name:
            binds.add(n.name)
        todo.extend(ast.iter_child_nodes(n))
    return tuple(sorted(binds)), tuple(sorted(glob)), tuple(sorted(nonloc)), tuple(sorted(flags))


def _named_functions(tree) -> dict[str, ast.AST]:
    out: dict[str, ast.AST] = {}

    def visit(node, prefix: str) -> None:
        seen: dict[str, int] = {}
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                k = seen[child.name] = seen.get(child.name, 0) + 1
                name = f"{prefix}{child.name}#{k}"
                if not isinstance(child, ast.ClassDef):
                    out[name] = child
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _code_lines(source: str) -> set[int]:
    """The lines that hold code: any token but a comment or a line break (a line inside a
    multi-line string holds code, whatever it starts with)."""
    out: set[int] = set()
    quiet = (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER)
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in quiet:
            out.update(range(tok.start[0], tok.end[0] + 1))
    return out


def _functions(source: str) -> list[_Func]:
    tree = ast.parse(source)
    code = _code_lines(source)
    out = []
    for name, node in _named_functions(tree).items():
        if not node.body:
            continue
        first = node.body[0]
        doc = None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
            doc = (first.lineno, first.end_lineno or first.lineno)
        stmts = []
        for sub in node.body:
            for s in ast.walk(sub):
                if isinstance(s, ast.stmt):
                    decos = getattr(s, "decorator_list", None) or []
                    start = min([s.lineno, *(d.lineno for d in decos)])
                    stmts.append(_Stmt(start, s.end_lineno or s.lineno))
        # Comment and blank lines right above the first statement, below the signature, are the
        # body's too (holidays' "# Epiphany." above a body's only call); not above a docstring,
        # where code replacing them would stop it being one.
        lead = first.lineno
        while doc is None and lead - 1 > node.lineno and lead - 1 not in code:
            lead -= 1
        out.append(_Func(first.lineno, node.end_lineno or node.lineno, doc, tuple(stmts), name, _scope(node),
                         node.lineno, lead))
    return out


def _apply(old: str, hunks) -> str | None:
    """The new text of a file from its old text and its hunks (None: they do not match)."""
    lines = old.splitlines(keepends=True)
    out: list[str] = []
    pos = 0  # index into lines
    for start, body in hunks:
        begin = max(start - 1, 0)
        if begin < pos:
            return None
        out.extend(lines[pos:begin])
        pos = begin
        for h in body:
            tag, text = h[:1], h[1:]
            if tag in (" ", "-"):
                if pos >= len(lines) or lines[pos].rstrip("\r\n") != text:
                    return None
                if tag == " ":
                    out.append(lines[pos])
                pos += 1
            elif tag == "+":
                out.append(text + "\n")
    out.extend(lines[pos:])
    return "".join(out)


def _rescoped(old_src: str, ch: _FileChange, funcs: list[_Func]) -> tuple[set[str], set[str]] | str:
    """Names of the functions whose scope the change alters, and of those whose change is only
    to literal default values (or why that cannot be told)."""
    new_src = _apply(old_src, ch.hunks)
    if new_src is None:
        return "the patch does not match the source"
    try:
        new_funcs = _named_functions(ast.parse(new_src))
    except (SyntaxError, ValueError):
        return "does not parse with the change"
    new = {n: _scope(node) for n, node in new_funcs.items()}
    old_funcs = _named_functions(ast.parse(old_src))
    defaults = {n for n, node in old_funcs.items() if n in new_funcs and _only_literal_defaults(node, new_funcs[n])}
    return {f.name for f in funcs if new.get(f.name) != f.scope}, defaults


def _literal(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        node = node.operand
    return isinstance(node, ast.Constant)


def _only_literal_defaults(old, new) -> bool:
    """Whether ``new`` is ``old`` with some default values changed, each from a literal to a
    literal: evaluating them at definition runs nothing, and a default is only seen by a call,
    which runs the function's body."""
    od = [*old.args.defaults, *old.args.kw_defaults]
    nd = [*new.args.defaults, *new.args.kw_defaults]
    if len(od) != len(nd):
        return False
    def dump(node) -> str:  # kw_defaults hold None for a keyword-only parameter without one
        return "" if node is None else ast.dump(node)

    changed = [(a, b) for a, b in zip(od, nd, strict=True) if dump(a) != dump(b)]
    if not changed or not all(a is not None and b is not None and _literal(a) and _literal(b) for a, b in changed):
        return False

    def without_defaults(node) -> str:
        keep = node.args.defaults, node.args.kw_defaults
        node.args.defaults, node.args.kw_defaults = [], []
        try:
            return ast.dump(node)
        finally:
            node.args.defaults, node.args.kw_defaults = keep

    return without_defaults(old) == without_defaults(new)


def attribute(patch: str, cov: CoverageMap, source_of: Callable[[str], str | None],
              is_test_file: Callable[[str], bool] = lambda _p: False) -> Attribution:
    """The tests that can observe ``patch`` (applied to the sources ``source_of`` returns), or why
    none can be named: the rule in this module's docstring."""
    changes = changed_lines(patch)
    if not changes:
        return Attribution(None, "the patch changes no file")
    tests: set[str] = set()
    unexecuted = ""  # the first changed statement no test executed, when there is one
    for ch in changes:
        why = _file_problem(ch, cov, is_test_file)
        if why:
            return Attribution(None, f"{ch.path}: {why}")
        src = source_of(ch.path)
        if src is None:
            return Attribution(None, f"{ch.path}: source not readable")
        try:
            funcs = _functions(src)
        except (SyntaxError, ValueError):
            return Attribution(None, f"{ch.path}: does not parse")
        file_lines = cov.lines.get(ch.path, {})
        outside = cov.outside.get(ch.path, frozenset())
        rescoped = _rescoped(src, ch, funcs)
        if isinstance(rescoped, str):
            return Attribution(None, f"{ch.path}: {rescoped}")
        rescoped, new_defaults = rescoped
        found: list[tuple[str, set[str] | str]] = []  # (where, then its tests or why it has none)
        for line in ch.removed:
            sig = [f for f in funcs if f.name in new_defaults and f.head <= line < f.body_start]
            if sig:  # a literal default changed: the calls that can see it run the body
                found.append((f"{ch.path}:{line}: ", _tests_of(sig[0].body_start, sig[0].end, file_lines, outside)))
            else:
                found.append((f"{ch.path}:{line}: ", _statement_tests(line, funcs, file_lines, outside)))
        found += [(f"{ch.path}: {f.name.split('#')[0]} changes its scope; its body ",  # every test of its body
                   _tests_of(f.body_start, f.end, file_lines, outside)) for f in funcs if f.name in rescoped]
        found += [(f"{ch.path}: insertion before line {before}: ", _insertion_tests(before, funcs, file_lines, outside))
                  for before in ch.inserted_before]
        for where, got in found:
            if got == _UNEXECUTED:
                unexecuted = unexecuted or where + got
            elif isinstance(got, str):
                return Attribution(None, where + got)
            else:
                tests |= got
    if not tests and unexecuted:
        return Attribution(None, unexecuted)
    return Attribution(frozenset(tests))


def _file_problem(ch: _FileChange, cov: CoverageMap, is_test_file: Callable[[str], bool]) -> str:
    if ch.whole_file:
        return ch.whole_file
    if not ch.path.endswith(".py"):
        return "not a Python file"
    if is_test_file(ch.path):
        return "changes a test file"
    if ch.path not in cov.lines:
        return "no coverage data for the file"
    return ""


def _innermost(funcs: list[_Func], line: int) -> _Func | None:
    inside = [f for f in funcs if f.lead <= line <= f.end]
    return min(inside, key=lambda f: f.end - f.body_start) if inside else None


def _tests_of(lo: int, hi: int, file_lines: dict[int, frozenset[str]], outside: frozenset[int]) -> set[str] | str:
    if any(n in outside for n in range(lo, hi + 1)):
        return "runs outside the tests (import or collection)"
    got: set[str] = set()
    for n in range(lo, hi + 1):
        got |= file_lines.get(n, frozenset())
    return got if got else _UNEXECUTED


def _statement_tests(line: int, funcs: list[_Func], file_lines, outside) -> set[str] | str:
    f = _innermost(funcs, line)
    if f is None:
        return "not inside a function body (module level, class body, def line, decorator or default)"
    if f.doc and f.doc[0] <= line <= f.doc[1]:
        return "a docstring"
    holding = [s for s in f.stmts if s.start <= line <= s.end]
    if not holding:  # a blank or comment line between statements: the body is the unit
        return _tests_of(f.body_start, f.end, file_lines, outside)
    s = min(holding, key=lambda s: s.end - s.start)
    return _tests_of(s.start, s.end, file_lines, outside)


def _insertion_tests(before: int, funcs: list[_Func], file_lines, outside) -> set[str] | str:
    """Lines inserted before old line ``before``: both neighbours must lie in one body, or the
    insertion opens a body that has no docstring."""
    inside = [f for f in funcs if f.body_start <= before - 1 and before <= f.end]
    # Right after the signature, before the first statement, is the body too (not where the body
    # shares the def line, and not before a docstring, which would stop being one).
    inside += [f for f in funcs if f.lead <= before <= f.body_start and f.body_start > f.head and not f.doc]
    inside = [f for f in inside if f.lead <= before and not (f.doc and f.doc[0] <= before <= f.doc[1])]
    if not inside:
        return "not between two statements of one function body"
    f = min(inside, key=lambda f: f.end - f.body_start)
    return _tests_of(f.body_start, f.end, file_lines, outside)
