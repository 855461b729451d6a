"""Mutation operators on tree-sitter syntax trees, for JavaScript, TypeScript and Go.

An operator names the node types it looks at and, for a node, returns its variants: each a list
of byte edits ``(start, end, replacement)`` on the original source. Edits are byte-exact: only
the bytes of the changed node move, so formatting and comments elsewhere stay as they were.
The engine (``mutators.treesitter.engine``) checks that every mutant parses.

The families are Python's (``mutators.ops.FAMILIES``): operations, control_flow, removals,
values, calls; plus language-specific operators (a dropped ``await``, ``===`` loosened to
``==``, a dropped ``if err != nil`` branch, a dropped ``defer``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TS_FAMILIES", "TS_OPERATORS", "TSOperator", "ts_operator_names"]

JS = frozenset({"javascript", "typescript", "tsx"})
GO = frozenset({"go"})
ALL = JS | GO

Edit = tuple[int, int, bytes]
Variant = tuple[str, list[Edit]]

TS_FAMILIES = ("operations", "control_flow", "removals", "values", "calls")


def _text(node, src: bytes) -> bytes:
    return src[node.start_byte:node.end_byte]


def _op_node(node):
    return node.child_by_field_name("operator")


def _swap_op(node, src: bytes, table: dict[bytes, bytes]) -> list[Variant]:
    op = _op_node(node)
    if op is None:
        return []
    new = table.get(_text(op, src))
    return [(new.decode(), [(op.start_byte, op.end_byte, new)])] if new else []


@dataclass(frozen=True)
class TSOperator:
    """One mutation: its name, family, what it does, the languages and node types it reads."""

    name: str
    family: str
    explanation: str
    languages: frozenset[str]
    node_types: tuple[str, ...]
    examples: tuple[tuple[str, str], ...]  # (language, a function it mutates), for the docs and tests

    def variants(self, node, src: bytes, language: str) -> list[Variant]:
        return _RULES[self.name](node, src, language)


# -- the rules -------------------------------------------------------------------------------------

def _arith(node, src, lang):
    return _swap_op(node, src, {b"+": b"-", b"-": b"+", b"*": b"/", b"/": b"*", b"%": b"*"})


def _compare(node, src, lang):
    return _swap_op(node, src, {b"<": b"<=", b"<=": b"<", b">": b">=", b">=": b">", b"==": b"!=", b"!=": b"==",
                                b"===": b"!==", b"!==": b"==="})


def _boolean(node, src, lang):
    return _swap_op(node, src, {b"&&": b"||", b"||": b"&&", b"??": b"||"})


def _loose(node, src, lang):
    return _swap_op(node, src, {b"===": b"==", b"!==": b"!="})


def _off_by_one(node, src, lang):
    """An integer literal that bounds a comparison or an index, one more or one less."""
    parent = node.parent
    if parent is None or parent.type not in ("binary_expression", "subscript_expression", "index_expression"):
        return []
    if parent.type == "binary_expression":
        op = _op_node(parent)
        if op is None or _text(op, src) not in (b"<", b"<=", b">", b">=", b"==", b"!=", b"===", b"!==", b"-", b"+"):
            return []
    text = _text(node, src)
    if not text.isdigit():
        return []
    n = int(text)
    out = [("plus_one", [(node.start_byte, node.end_byte, str(n + 1).encode())])]
    if n > 0:
        out.append(("minus_one", [(node.start_byte, node.end_byte, str(n - 1).encode())]))
    return out


def _off_by_one_index(node, src, lang):
    idx = node.child_by_field_name("index")
    if idx is None or idx.type in ("number", "int_literal", "string", "interpreted_string_literal"):
        return []
    return [("plus_one", [(idx.end_byte, idx.end_byte, b" + 1")]), ("minus_one", [(idx.end_byte, idx.end_byte, b" - 1")])]


def _update(node, src, lang):
    text = _text(node, src)
    if b"++" in text:
        i = node.start_byte + text.index(b"++")
        return [("--", [(i, i + 2, b"--")])]
    if b"--" in text:
        i = node.start_byte + text.index(b"--")
        return [("++", [(i, i + 2, b"++")])]
    return []


def _invert_if(node, src, lang):
    cond = node.child_by_field_name("condition")
    if cond is None:
        return []
    if lang == "go":
        return [("not", [(cond.start_byte, cond.start_byte, b"!("), (cond.end_byte, cond.end_byte, b")")])]
    inner = cond.named_children[0] if cond.type == "parenthesized_expression" and cond.named_children else cond
    return [("not", [(inner.start_byte, inner.start_byte, b"!("), (inner.end_byte, inner.end_byte, b")")])]


def _remove_else(node, src, lang):
    alt = node.child_by_field_name("alternative")
    if alt is None:
        return []
    cons = node.child_by_field_name("consequence")
    start = cons.end_byte if cons is not None else alt.start_byte
    if lang == "go":  # `} else {...}` / `} else if ...`: the `else` keyword precedes the alternative
        return [("drop_else", [(start, alt.end_byte, b"")])]
    return [("drop_else", [(start, alt.end_byte, b"" if src[start - 1:start] == b"}" else b"\n")])]


def _exits(block, src) -> bool:
    """A block (or single statement) that only returns or throws."""
    stmts = [c for c in block.named_children if c.type != "comment"] if block.type in ("statement_block", "block") \
        else [block]
    if block.type == "block" and len(stmts) == 1 and stmts[0].type == "statement_list":
        stmts = [c for c in stmts[0].named_children if c.type != "comment"]
    return len(stmts) == 1 and stmts[0].type in ("return_statement", "throw_statement")


def _guard(node, src, lang):
    """``if (...) return ...;`` / ``if (...) throw ...;`` with no else: the whole statement dropped."""
    if node.child_by_field_name("alternative") is not None:
        return []
    cons = node.child_by_field_name("consequence")
    if cons is None or not _exits(cons, src):
        return []
    if lang == "go" and _is_err_check(node, src):
        return []  # Go's error checks have their own operator
    start, end = _line_span(node, src)
    return [("drop_guard", [(start, end, b"")])]


def _is_err_check(node, src) -> bool:
    cond = node.child_by_field_name("condition")
    return cond is not None and _text(cond, src).replace(b" ", b"") in (b"err!=nil", b"nil!=err")


def _drop_err_check(node, src, lang):
    if node.child_by_field_name("alternative") is not None or node.child_by_field_name("initializer") is not None:
        return []
    if not _is_err_check(node, src):
        return []
    start, end = _line_span(node, src)
    return [("drop_err_check", [(start, end, b"")])]


def _line_span(node, src: bytes) -> tuple[int, int]:
    """The node's bytes, widened to its whole lines when nothing else shares them."""
    start, end = node.start_byte, node.end_byte
    line_start = src.rfind(b"\n", 0, start) + 1
    line_end = src.find(b"\n", end)
    line_end = len(src) if line_end < 0 else line_end
    if src[line_start:start].strip() == b"" and src[end:line_end].strip() in (b"", b";"):
        return line_start, min(len(src), line_end + 1)
    return start, end


def _statement_dropped(node, src) -> list[Variant]:
    start, end = _line_span(node, src)
    return [("drop", [(start, end, b"")])]


def _remove_assignment(node, src, lang):
    if lang == "go":
        if node.type != "assignment_statement" or node.parent is None or node.parent.type not in ("block",
                                                                                                   "statement_list"):
            return []
        return _statement_dropped(node, src)
    expr = node.named_children[0] if node.named_children else None
    if expr is None or expr.type not in ("assignment_expression", "augmented_assignment_expression"):
        return []
    return _statement_dropped(node, src)


def _call_of(node, lang):
    expr = node.named_children[0] if node.named_children else None
    if expr is not None and expr.type == "await_expression" and expr.named_children:
        expr = expr.named_children[0]
    return expr if expr is not None and expr.type == "call_expression" else None


def _remove_call(node, src, lang):
    call = _call_of(node, lang)
    if call is None:
        return []
    if lang == "go" and (node.parent is None or node.parent.type not in ("block", "statement_list")):
        return []
    return _statement_dropped(node, src)


def _return_value(node, src, lang):
    """``return x`` → ``return`` (undefined) in JavaScript/TypeScript."""
    vals = [c for c in node.named_children if c.type != "comment"]
    if not vals:
        return []
    return [("return_undefined", [(node.start_byte, vals[-1].end_byte, b"return")])]


def _swap_args(node, src, lang):
    args = node.child_by_field_name("arguments")
    if args is None:
        return []
    items = [c for c in args.named_children if c.type != "comment"]
    if len(items) < 2 or any(c.type in ("spread_element", "variadic_argument") for c in items[:2]):
        return []
    a, b = items[0], items[1]
    ta, tb = _text(a, src), _text(b, src)
    if ta == tb:
        return []
    return [("swap_0_1", [(a.start_byte, a.end_byte, tb), (b.start_byte, b.end_byte, ta)])]


def _drop_last_arg(node, src, lang):
    if lang == "go":
        return []  # Go's arity is checked at compile time: the mutant would not build
    args = node.child_by_field_name("arguments")
    if args is None or args.type != "arguments":
        return []
    items = [c for c in args.named_children if c.type != "comment"]
    if len(items) < 2:
        return []
    return [("drop_last", [(items[-2].end_byte, items[-1].end_byte, b"")])]


def _boolean_literal(node, src, lang):
    return [("flip", [(node.start_byte, node.end_byte, b"false" if node.type == "true" else b"true")])]


def _string_literal(node, src, lang):
    text = _text(node, src)
    if len(text) <= 2 or b"\n" in text or node.parent is None or node.parent.type in (
            "import_statement", "import_spec", "export_statement", "pair", "property_identifier", "call_expression") \
            or (node.parent.type == "arguments" and node.parent.parent is not None
                and _text(node.parent.parent.child_by_field_name("function") or node.parent, src) == b"require"):
        return []
    quote = text[:1]
    if quote not in (b'"', b"'"):
        return []
    return [("empty", [(node.start_byte, node.end_byte, quote + quote)])]


def _number_literal(node, src, lang):
    text = _text(node, src)
    if text == b"0":
        return [("one", [(node.start_byte, node.end_byte, b"1")])]
    if text == b"1":
        return [("zero", [(node.start_byte, node.end_byte, b"0")])]
    return []


def _drop_await(node, src, lang):
    arg = node.named_children[0] if node.named_children else None
    if arg is None:
        return []
    return [("drop_await", [(node.start_byte, arg.start_byte, b"")])]


def _ternary(node, src, lang):
    c, a = node.child_by_field_name("consequence"), node.child_by_field_name("alternative")
    if c is None or a is None or _text(c, src) == _text(a, src):
        return []
    return [("swap", [(c.start_byte, c.end_byte, _text(a, src)), (a.start_byte, a.end_byte, _text(c, src))])]


def _break_continue(node, src, lang):
    if node.named_children:  # labelled: leave it
        return []
    new = b"continue" if node.type == "break_statement" else b"break"
    word = b"break" if node.type == "break_statement" else b"continue"
    return [(new.decode(), [(node.start_byte, node.start_byte + len(word), new)])]


def _negation(node, src, lang):
    op = _op_node(node)
    arg = node.child_by_field_name("argument") or node.child_by_field_name("operand")
    if op is None or arg is None or _text(op, src) != b"!":
        return []
    return [("drop_not", [(node.start_byte, arg.start_byte, b"")])]


def _drop_defer(node, src, lang):
    return _statement_dropped(node, src)


_RULES = {
    "swap_arithmetic": _arith, "swap_comparison": _compare, "swap_boolean_operator": _boolean,
    "loosen_strict_equality": _loose, "off_by_one_constant": _off_by_one, "off_by_one_index": _off_by_one_index,
    "swap_increment": _update, "invert_if_condition": _invert_if, "remove_else": _remove_else,
    "remove_guard_clause": _guard, "drop_err_check": _drop_err_check, "remove_assignment": _remove_assignment,
    "remove_call_statement": _remove_call, "return_undefined": _return_value, "swap_arguments": _swap_args,
    "drop_last_argument": _drop_last_arg, "flip_boolean": _boolean_literal, "empty_string": _string_literal,
    "swap_zero_one": _number_literal, "drop_await": _drop_await, "swap_ternary": _ternary,
    "swap_break_continue": _break_continue, "drop_negation": _negation, "drop_defer": _drop_defer,
}

_JS_FN = "function f(a, b) {\n  {}\n}\n"


def _ex(lang: str, body: str) -> tuple[str, str]:
    return (lang, body)


TS_OPERATORS: tuple[TSOperator, ...] = (
    TSOperator("swap_arithmetic", "operations", "Swaps an arithmetic operator (`+`/`-`, `*`/`/`, `%` to `*`).", ALL,
               ("binary_expression",),
               (_ex("javascript", "function total(a, b) {\n  return a + b;\n}\n"),
                _ex("go", "package p\n\nfunc total(a, b int) int {\n\treturn a + b\n}\n"))),
    TSOperator("swap_comparison", "operations", "Moves a comparison's boundary or negates it (`<`/`<=`, "
               "`>`/`>=`, `==`/`!=`, `===`/`!==`).", ALL, ("binary_expression",),
               (_ex("javascript", "function small(n) {\n  return n < 10;\n}\n"),
                _ex("go", "package p\n\nfunc small(n int) bool {\n\treturn n < 10\n}\n"))),
    TSOperator("swap_boolean_operator", "operations", "Swaps `&&` and `||` (and `??` to `||`).", ALL,
               ("binary_expression",),
               (_ex("javascript", "function both(a, b) {\n  return a && b;\n}\n"),
                _ex("go", "package p\n\nfunc both(a, b bool) bool {\n\treturn a && b\n}\n"))),
    TSOperator("loosen_strict_equality", "operations", "Loosens `===` to `==` and `!==` to `!=` (type "
               "coercion creeps in).", JS, ("binary_expression",),
               (_ex("javascript", "function isZero(n) {\n  return n === 0;\n}\n"),)),
    TSOperator("off_by_one_constant", "operations", "An integer that bounds a comparison or offsets an "
               "index, one more or one less.", ALL, ("number", "int_literal"),
               (_ex("javascript", "function full(xs) {\n  return xs.length >= 3;\n}\n"),
                _ex("go", "package p\n\nfunc full(xs []int) bool {\n\treturn len(xs) >= 3\n}\n"))),
    TSOperator("off_by_one_index", "operations", "Shifts a computed index by one (`xs[i]` to `xs[i + 1]`).", ALL,
               ("subscript_expression", "index_expression"),
               (_ex("javascript", "function at(xs, i) {\n  return xs[i];\n}\n"),
                _ex("go", "package p\n\nfunc at(xs []int, i int) int {\n\treturn xs[i]\n}\n"))),
    TSOperator("swap_increment", "operations", "Turns `++` into `--` and back.", ALL,
               ("update_expression", "inc_statement", "dec_statement"),
               (_ex("javascript", "function count(xs) {\n  let n = 0;\n  for (const x of xs) n++;\n  return n;\n}\n"),
                _ex("go", "package p\n\nfunc count(xs []int) int {\n\tn := 0\n\tfor range xs {\n\t\tn++\n\t}\n"
                          "\treturn n\n}\n"))),
    TSOperator("invert_if_condition", "control_flow", "Negates an `if` condition.", ALL, ("if_statement",),
               (_ex("javascript", "function sign(n) {\n  if (n > 0) {\n    return 1;\n  }\n  return -1;\n}\n"),
                _ex("go", "package p\n\nfunc sign(n int) int {\n\tif n > 0 {\n\t\treturn 1\n\t}\n\treturn -1\n}\n"))),
    TSOperator("remove_else", "control_flow", "Drops an `else` branch.", ALL, ("if_statement",),
               (_ex("javascript", "function abs(n) {\n  let r = n;\n  if (n < 0) {\n    r = -n;\n  } else {\n"
                                  "    r = n;\n  }\n  return r;\n}\n"),
                _ex("go", "package p\n\nfunc abs(n int) int {\n\tr := n\n\tif n < 0 {\n\t\tr = -n\n\t} else {\n"
                          "\t\tr = n + 0\n\t}\n\treturn r\n}\n"))),
    TSOperator("remove_guard_clause", "control_flow", "Drops an `if` whose only statement returns or throws "
               "(a guard or early return).", ALL, ("if_statement",),
               (_ex("javascript", "function first(xs) {\n  if (!xs.length) return null;\n  return xs[0];\n}\n"),
                _ex("go", "package p\n\nfunc first(xs []int) int {\n\tif len(xs) == 0 {\n\t\treturn -1\n\t}\n"
                          "\treturn xs[0]\n}\n"))),
    TSOperator("drop_err_check", "control_flow", "Drops an `if err != nil { ... }` branch: the error is "
               "ignored.", GO, ("if_statement",),
               (_ex("go", "package p\n\nimport \"strconv\"\n\nfunc parse(s string) (int, error) {\n"
                          "\tn, err := strconv.Atoi(s)\n\tif err != nil {\n\t\treturn 0, err\n\t}\n\treturn n, nil\n}\n"),)),
    TSOperator("remove_assignment", "removals", "Drops an assignment statement.", ALL,
               ("expression_statement", "assignment_statement"),
               (_ex("javascript", "function bump(o) {\n  o.count += 1;\n  return o;\n}\n"),
                _ex("go", "package p\n\nfunc bump(n int) int {\n\tn = n * 2\n\treturn n\n}\n"))),
    TSOperator("remove_call_statement", "removals", "Drops a call made for its effect (`save(x);`, "
               "`await flush();`).", ALL, ("expression_statement",),
               (_ex("javascript", "function add(xs, x) {\n  xs.push(x);\n  return xs;\n}\n"),
                _ex("go", "package p\n\nimport \"sort\"\n\nfunc sorted(xs []int) []int {\n\tsort.Ints(xs)\n"
                          "\treturn xs\n}\n"))),
    TSOperator("drop_defer", "removals", "Drops a `defer` statement (the cleanup never runs).", GO,
               ("defer_statement",),
               (_ex("go", "package p\n\nimport \"sync\"\n\nfunc locked(m *sync.Mutex, f func()) {\n\tm.Lock()\n"
                          "\tdefer m.Unlock()\n\tf()\n}\n"),)),
    TSOperator("return_undefined", "values", "Returns nothing (`undefined`) instead of the value.", JS,
               ("return_statement",),
               (_ex("javascript", "function name(user) {\n  return user.name;\n}\n"),)),
    TSOperator("flip_boolean", "values", "Flips a `true`/`false` literal.", ALL, ("true", "false"),
               (_ex("javascript", "function opts() {\n  return { strict: true };\n}\n"),
                _ex("go", "package p\n\nfunc strict() bool {\n\treturn true\n}\n"))),
    TSOperator("empty_string", "values", "Empties a string literal (not imports or object keys).", ALL,
               ("string", "interpreted_string_literal"),
               (_ex("javascript", "function sep() {\n  return ', ';\n}\n"),
                _ex("go", "package p\n\nfunc sep() string {\n\treturn \", \"\n}\n"))),
    TSOperator("swap_zero_one", "values", "Turns a `0` into `1` and a `1` into `0`.", ALL,
               ("number", "int_literal"),
               (_ex("javascript", "function start() {\n  return 0;\n}\n"),
                _ex("go", "package p\n\nfunc start() int {\n\treturn 0\n}\n"))),
    TSOperator("swap_arguments", "calls", "Swaps a call's first two arguments.", ALL, ("call_expression",),
               (_ex("javascript", "function ratio(a, b) {\n  return Math.pow(a, b);\n}\n"),
                _ex("go", "package p\n\nimport \"strings\"\n\nfunc has(s, sub string) bool {\n"
                          "\treturn strings.Contains(s, sub)\n}\n"))),
    TSOperator("drop_last_argument", "calls", "Drops a call's last argument (its default applies).", JS,
               ("call_expression",),
               (_ex("javascript", "function parse(s) {\n  return parseInt(s, 10);\n}\n"),)),
    TSOperator("drop_await", "calls", "Drops an `await`: the promise, not its value, flows on.", JS,
               ("await_expression",),
               (_ex("javascript", "async function load(db) {\n  const rows = await db.all();\n  return rows.length;\n}\n"),)),
    TSOperator("swap_ternary", "control_flow", "Swaps a conditional expression's two branches.", JS,
               ("ternary_expression",),
               (_ex("javascript", "function label(n) {\n  return n === 1 ? 'item' : 'items';\n}\n"),)),
    TSOperator("swap_break_continue", "control_flow", "Turns `break` into `continue` and back.", ALL,
               ("break_statement", "continue_statement"),
               (_ex("javascript", "function firstNeg(xs) {\n  let r = null;\n  for (const x of xs) {\n"
                                  "    if (x < 0) { r = x; break; }\n  }\n  return r;\n}\n"),
                _ex("go", "package p\n\nfunc firstNeg(xs []int) int {\n\tr := 0\n\tfor _, x := range xs {\n"
                          "\t\tif x < 0 {\n\t\t\tr = x\n\t\t\tbreak\n\t\t}\n\t}\n\treturn r\n}\n"))),
    TSOperator("drop_negation", "operations", "Drops a logical `!`.", ALL, ("unary_expression",),
               (_ex("javascript", "function empty(xs) {\n  return !xs.length;\n}\n"),
                _ex("go", "package p\n\nfunc off(on bool) bool {\n\treturn !on\n}\n"))),
)


def ts_operator_names(language: str | None = None) -> list[str]:
    return [op.name for op in TS_OPERATORS if language is None or language in op.languages]
