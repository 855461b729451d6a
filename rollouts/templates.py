"""One trajectory record, many tool-call formats: a renderer and a parser per format.

Every format shares the outer chat frame (``<|im_start|>ROLE\\n...<|im_end|>\\n``, the trainer's
special tokens); what differs is how the system turn writes the tool definitions, how an
assistant turn writes its calls, and how results come back:

=============  ===================================  ========================================  ==============================
format         tool definitions                     calls                                     results
=============  ===================================  ========================================  ==============================
``json``       JSON schema lines in ``<tools>``     ``<tool_call>{"name", "arguments"}``      ``<tool_response>`` in a user turn
``qwen-xml``   ``<function><name>..<parameters>``   ``<function=NAME><parameter=P>``          ``<tool_response>`` in a user turn
``xml-invoke`` JSON schema in ``<functions>``       ``<function_calls><invoke name=..>``      ``<function_results>`` in a user turn
``pythonic``   ``def NAME(*, p: str) -> str:`` +    ``<|python_start|>[f(p='..')]<|python_end|>`` an ``ipython`` turn per result
               a docstring with ``Args:``
``typescript`` ``namespace functions { type NAME =  ``<|channel|>commentary to=functions.NAME``  a ``functions.NAME to=assistant``
               (_: {p: string}) => any; }``         ``<|message|>{json}<|call|>``             turn per result
=============  ===================================  ========================================  ==============================

``parse(fmt, render(fmt, t)) == t`` for every record whose text holds none of the format's
reserved markers (real formats do not escape their own tags, so a value containing one cannot be
written unambiguously). ``render`` refuses such a record with ``AmbiguousText`` naming the marker
and the field, rather than writing text that would parse back as something else.
"""

from __future__ import annotations

import ast
import json
import re

from rollouts.record import TYPES, Message, Param, RecordError, Tool, ToolCall, Trajectory

__all__ = ["FORMATS", "AmbiguousText", "ParseError", "parse", "render"]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
COMMON_RESERVED = (IM_START, IM_END, "<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>")


class AmbiguousText(RecordError):
    reason = "ambiguous_text"


class ParseError(RecordError):
    reason = "parse_error"


def _jdump(x) -> str:
    return json.dumps(x, ensure_ascii=False)


def _scalar_text(v) -> str:
    """A non-string value as XML formats write it (JSON literals)."""
    return _jdump(v)


def _scalar_from_text(text: str, typ: str):
    if typ == "string":
        return text
    v = json.loads(text)
    if typ == "number" and type(v) is int:
        v = float(v)
    if type(v) is not TYPES[typ]:
        raise ParseError(f"value {text!r} is not a {typ}")
    return v


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise ParseError(what)


# ------------------------------------------------------------------------------------------------
# json: Hermes / Qwen2.5 style

_JSON_HEAD = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
              "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n")
_JSON_TAIL = ("</tools>\n\nFor each function call, return a json object with function name and arguments within "
              "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
              "<args-json-object>}\n</tool_call>")


class JsonFormat:
    name = "json"
    reserved = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>")

    def system(self, content: str, tools) -> str:
        return content + _JSON_HEAD + "".join(_jdump(t.json_schema()) + "\n" for t in tools) + _JSON_TAIL

    def parse_system(self, body: str):
        at = body.rfind(_JSON_HEAD)
        _need(at >= 0 and body.endswith(_JSON_TAIL), "system turn lacks the tools section")
        lines = body[at + len(_JSON_HEAD):len(body) - len(_JSON_TAIL)].split("\n")[:-1]
        return body[:at], tuple(Tool.from_json_schema(json.loads(ln)) for ln in lines)

    def assistant(self, content: str, calls, tools) -> str:
        return content + "".join(f"\n<tool_call>\n{_jdump({'name': c.name, 'arguments': c.arguments})}\n</tool_call>"
                                 for c in calls)

    def parse_assistant(self, body: str, tools):
        calls = []
        while body.endswith("\n</tool_call>"):
            at = body.rfind("\n<tool_call>\n")
            _need(at >= 0, "a </tool_call> without its opening tag")
            d = json.loads(body[at + len("\n<tool_call>\n"):-len("\n</tool_call>")])
            calls.append(ToolCall(d["name"], _typed(d.get("arguments") or {}, d["name"], tools)))
            body = body[:at]
        return body, tuple(reversed(calls))

    def results(self, msgs):
        return [("user", "\n".join(f"<tool_response>\n{m.content}\n</tool_response>" for m in msgs))]

    def parse_results(self, header: str, body: str):
        if header != "user" or not body.startswith("<tool_response>\n"):
            return None
        return [(None, p) for p in _split_blocks(body, "<tool_response>\n", "\n</tool_response>", "\n")]


def _split_blocks(body: str, open_: str, close: str, sep: str) -> list[str]:
    out = []
    while body:
        _need(body.startswith(open_), f"expected {open_!r}")
        end = body.find(close, len(open_))
        _need(end >= 0, f"missing {close!r}")
        out.append(body[len(open_):end])
        body = body[end + len(close):]
        if body:
            _need(body.startswith(sep), "blocks not separated")
            body = body[len(sep):]
    return out


def _typed(args: dict, name: str, tools) -> dict:
    """JSON gives floats that happen to be whole as floats already; ints stay ints. Check only."""
    tool = next((t for t in tools if t.name == name), None)
    out = {}
    for k, v in args.items():
        p = tool.param(k) if tool else None
        if p is not None and p.type == "number" and type(v) is int:
            v = float(v)
        out[k] = v
    return out


# ------------------------------------------------------------------------------------------------
# qwen-xml: Qwen3-Coder

_QX_HEAD = "\n\n# Tools\n\nYou have access to the following functions:\n\n<tools>"
_QX_TAIL = ("\n</tools>\n\nIf you choose to call a function ONLY reply in the following format with NO suffix:\n\n"
            "<tool_call>\n<function=example_function_name>\n<parameter=example_parameter_1>\nvalue_1\n</parameter>\n"
            "<parameter=example_parameter_2>\nThis is the value for the second parameter\nthat can span\nmultiple lines\n"
            "</parameter>\n</function>\n</tool_call>\n\n<IMPORTANT>\nReminder:\n"
            "- Function calls MUST follow the specified format: an inner <function=...></function> block must be "
            "nested within <tool_call></tool_call> XML tags\n- Required parameters MUST be specified\n</IMPORTANT>")


class QwenXmlFormat:
    name = "qwen-xml"
    reserved = ("<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<function", "</function>",
                "<parameter", "</parameter>")
    reserved_defs = ("</description>", "\n<parameter>\n", "\n<required>")
    # Tool results are <tool_response> blocks (JsonFormat's): only their own tags are ambiguous
    # there. A result that prints `<function foo at 0x...>` (Python's repr) is common and fine.
    reserved_results = ("<tool_response>", "</tool_response>")

    def system(self, content: str, tools) -> str:
        parts = [content, _QX_HEAD]
        for t in tools:
            parts.append(f"\n<function>\n<name>{t.name}</name>\n<description>{t.description}</description>\n<parameters>")
            for p in t.params:
                parts.append(f"\n<parameter>\n<name>{p.name}</name>\n<type>{p.type}</type>\n"
                             f"<description>{p.description}</description>\n</parameter>")
            parts.append(f"\n<required>{_jdump([p.name for p in t.params if p.required])}</required>\n</parameters>\n</function>")
        parts.append(_QX_TAIL)
        return "".join(parts)

    def parse_system(self, body: str):
        at = body.rfind(_QX_HEAD)
        _need(at >= 0 and body.endswith(_QX_TAIL), "system turn lacks the tools section")
        inner = body[at + len(_QX_HEAD):len(body) - len(_QX_TAIL)]
        tools = []
        fn = re.compile(r"\n<function>\n<name>(.*?)</name>\n<description>(.*?)</description>\n<parameters>(.*?)"
                        r"\n<required>(.*?)</required>\n</parameters>\n</function>", re.S)
        pos = 0
        for m in fn.finditer(inner):
            _need(m.start() == pos, "unexpected text between tool definitions")
            pos = m.end()
            req = set(json.loads(m.group(4)))
            params = tuple(Param(n, ty, d, n in req) for n, ty, d in re.findall(
                r"\n<parameter>\n<name>(.*?)</name>\n<type>(.*?)</type>\n<description>(.*?)</description>\n</parameter>",
                m.group(3), re.S))
            tools.append(Tool(m.group(1), m.group(2), params))
        _need(pos == len(inner), "unreadable tool definitions")
        return body[:at], tuple(tools)

    def assistant(self, content: str, calls, tools) -> str:
        out = [content]
        for c in calls:
            out.append(f"\n<tool_call>\n<function={c.name}>\n")
            for k, v in c.arguments.items():
                out.append(f"<parameter={k}>\n{v if isinstance(v, str) else _scalar_text(v)}\n</parameter>\n")
            out.append("</function>\n</tool_call>")
        return "".join(out)

    def parse_assistant(self, body: str, tools):
        calls = []
        while body.endswith("\n</function>\n</tool_call>"):
            at = body.rfind("\n<tool_call>\n<function=")
            _need(at >= 0, "a </tool_call> without its opening tag")
            block = body[at + len("\n<tool_call>\n<function="):-len("</function>\n</tool_call>")]
            name, rest = block.split(">\n", 1)
            tool = _tool(tools, name)
            args = {}
            for k, v in re.findall(r"<parameter=([^>\n]*)>\n(.*?)\n</parameter>\n", rest, re.S):
                p = tool.param(k)
                _need(p is not None, f"{name} has no parameter {k}")
                args[k] = _scalar_from_text(v, p.type)
            _need(len(re.sub(r"<parameter=([^>\n]*)>\n(.*?)\n</parameter>\n", "", rest, flags=re.S)) == 0,
                  "unreadable parameters")
            calls.append(ToolCall(name, args))
            body = body[:at]
        return body, tuple(reversed(calls))

    results = JsonFormat.results
    parse_results = JsonFormat.parse_results


def _tool(tools, name: str) -> Tool:
    t = next((t for t in tools if t.name == name), None)
    _need(t is not None, f"call of undefined tool {name!r}")
    return t


# ------------------------------------------------------------------------------------------------
# xml-invoke: <function_calls><invoke name=...>

_XI_HEAD = ("\n\nIn this environment you have access to a set of tools you can use to answer the user's question.\n\n"
            "You can invoke functions by writing a \"<function_calls>\" block like the following:\n"
            "<function_calls>\n<invoke name=\"$FUNCTION_NAME\">\n<parameter name=\"$PARAMETER_NAME\">$PARAMETER_VALUE"
            "</parameter>\n...\n</invoke>\n</function_calls>\n\nString and scalar parameters should be specified as is, "
            "while lists and objects should use JSON format.\n\nHere are the functions available in JSONSchema format:\n"
            "<functions>\n")
_XI_TAIL = "</functions>"


class XmlInvokeFormat:
    name = "xml-invoke"
    reserved = ("<function_calls>", "</function_calls>", "<invoke", "</invoke>", "</parameter>", "<function_results>",
                "</function_results>", "</stdout>", "<functions>", "</functions>")

    def system(self, content: str, tools) -> str:
        lines = "".join("<function>" + _jdump({"description": t.description, "name": t.name,
                                               "parameters": t.json_schema()["function"]["parameters"]}) + "</function>\n"
                        for t in tools)
        return content + _XI_HEAD + lines + _XI_TAIL

    def parse_system(self, body: str):
        at = body.rfind(_XI_HEAD)
        _need(at >= 0 and body.endswith(_XI_TAIL), "system turn lacks the tools section")
        tools = []
        for ln in body[at + len(_XI_HEAD):len(body) - len(_XI_TAIL)].split("\n")[:-1]:
            _need(ln.startswith("<function>") and ln.endswith("</function>"), "unreadable tool definition")
            tools.append(Tool.from_json_schema(json.loads(ln[len("<function>"):-len("</function>")])))
        return body[:at], tuple(tools)

    def assistant(self, content: str, calls, tools) -> str:
        if not calls:
            return content
        out = [content, "\n<function_calls>\n"]
        for c in calls:
            out.append(f'<invoke name="{c.name}">\n')
            for k, v in c.arguments.items():
                out.append(f'<parameter name="{k}">{v if isinstance(v, str) else _scalar_text(v)}</parameter>\n')
            out.append("</invoke>\n")
        out.append("</function_calls>")
        return "".join(out)

    def parse_assistant(self, body: str, tools):
        if not body.endswith("\n</function_calls>"):
            return body, ()
        at = body.rfind("\n<function_calls>\n")
        _need(at >= 0, "a </function_calls> without its opening tag")
        inner = body[at + len("\n<function_calls>\n"):-len("</function_calls>")]
        calls = []
        inv = re.compile(r'<invoke name="([^"\n]*)">\n((?:<parameter name="[^"\n]*">.*?</parameter>\n)*)</invoke>\n', re.S)
        pos = 0
        for m in inv.finditer(inner):
            _need(m.start() == pos, "unexpected text between invoke blocks")
            pos = m.end()
            tool = _tool(tools, m.group(1))
            args = {}
            for k, v in re.findall(r'<parameter name="([^"\n]*)">(.*?)</parameter>\n', m.group(2), re.S):
                p = tool.param(k)
                _need(p is not None, f"{tool.name} has no parameter {k}")
                args[k] = _scalar_from_text(v, p.type)
            calls.append(ToolCall(tool.name, args))
        _need(pos == len(inner) and calls, "unreadable function_calls block")
        return body[:at], tuple(calls)

    def results(self, msgs):
        return [("user", "<function_results>\n" + "".join(
            f"<result>\n<tool_name>{m.name}</tool_name>\n<stdout>\n{m.content}\n</stdout>\n</result>\n" for m in msgs)
            + "</function_results>")]

    def parse_results(self, header: str, body: str):
        if header != "user" or not body.startswith("<function_results>\n"):
            return None
        _need(body.endswith("</function_results>"), "unterminated function_results")
        inner = body[len("<function_results>\n"):-len("</function_results>")]
        out, pos = [], 0
        pat = re.compile(r"<result>\n<tool_name>([^<\n]*)</tool_name>\n<stdout>\n(.*?)\n</stdout>\n</result>\n", re.S)
        for m in pat.finditer(inner):
            _need(m.start() == pos, "unexpected text between results")
            pos = m.end()
            out.append((m.group(1), m.group(2)))
        _need(pos == len(inner), "unreadable function_results")
        return out


# ------------------------------------------------------------------------------------------------
# pythonic: Llama 3.x style python calls

_PY_HEAD = ("\n\nYou have access to the functions below. To call functions, reply with a Python list of calls "
            "between <|python_start|> and <|python_end|>, e.g. <|python_start|>[func_name1(param_name1=value1, "
            "param_name2=value2), func_name2(param=value)]<|python_end|>. Results come back in ipython turns.\n\n"
            "```python\n")
_PY_TAIL = "```"
_PY_TYPES = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_PY_BACK = {v: k for k, v in _PY_TYPES.items()}


class PythonicFormat:
    name = "pythonic"
    reserved = ("<|python_start|>", "<|python_end|>")
    reserved_defs = ('"""', "\n    Args:\n")

    def system(self, content: str, tools) -> str:
        return content + _PY_HEAD + "".join(self._def(t) for t in tools) + _PY_TAIL

    @staticmethod
    def _def(t: Tool) -> str:
        sig = ", ".join(f"{p.name}: {_PY_TYPES[p.type]}" + ("" if p.required else " = None") for p in t.params)
        desc = "\n".join(("    " + ln if i else ln) for i, ln in enumerate(t.description.split("\n")))
        out = [f"def {t.name}({'*, ' + sig if sig else ''}) -> str:\n    \"\"\"{desc}\n"]
        if t.params:
            out.append("\n    Args:\n")
            for p in t.params:
                lines = p.description.split("\n")
                out.append(f"        {p.name}: " + lines[0] + "\n" + "".join(f"            {ln}\n" for ln in lines[1:]))
        out.append("    \"\"\"\n\n\n")
        return "".join(out)

    def parse_system(self, body: str):
        at = body.rfind(_PY_HEAD)
        _need(at >= 0 and body.endswith(_PY_TAIL), "system turn lacks the tools section")
        src = body[at + len(_PY_HEAD):len(body) - len(_PY_TAIL)]
        tools = []
        for chunk in src.split("    \"\"\"\n\n\n")[:-1]:
            m = re.match(r'def ([^(]*)\((.*?)\) -> str:\n    """', chunk)
            _need(m is not None, "unreadable function definition")
            rest = chunk[m.end():]
            sig = m.group(2)
            params = []
            if sig:
                _need(sig.startswith("*, "), "parameters are keyword-only")
                for part in sig[3:].split(", "):
                    pm = re.fullmatch(r"(\w+): (\w+)( = None)?", part)
                    _need(pm is not None, f"unreadable parameter {part!r}")
                    params.append([pm.group(1), _PY_BACK[pm.group(2)], pm.group(3) is None])
            desc_part, _, args_part = rest.partition("\n\n    Args:\n") if params else (rest, "", "")
            if not params:
                _need(desc_part.endswith("\n"), "unterminated docstring")
                desc_part = desc_part[:-1]
            dl = desc_part.split("\n")
            desc = "\n".join([dl[0]] + [ln[4:] for ln in dl[1:]])
            pdesc: list[list[str]] = []
            for ln in args_part.split("\n")[:-1] if args_part else []:
                if ln.startswith("            "):
                    pdesc[-1].append(ln[12:])
                else:
                    name, _, first = ln[8:].partition(": ")
                    pdesc.append([first])
            _need(len(pdesc) == len(params), "Args: does not match the signature")
            tools.append(Tool(m.group(1), desc, tuple(Param(n, ty, "\n".join(d), req)
                                                       for (n, ty, req), d in zip(params, pdesc, strict=True))))
        return body[:at], tuple(tools)

    def assistant(self, content: str, calls, tools) -> str:
        if not calls:
            return content
        return content + "<|python_start|>[" + ", ".join(
            f"{c.name}(" + ", ".join(f"{k}={v!r}" for k, v in c.arguments.items()) + ")" for c in calls) + "]<|python_end|>"

    def parse_assistant(self, body: str, tools):
        if not body.endswith("<|python_end|>"):
            return body, ()
        at = body.rfind("<|python_start|>")
        _need(at >= 0, "<|python_end|> without <|python_start|>")
        tree = ast.parse(body[at + len("<|python_start|>"):-len("<|python_end|>")], mode="eval").body
        _need(isinstance(tree, ast.List), "calls are a Python list")
        calls = []
        for node in tree.elts:
            _need(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args, "calls use keywords")
            tool = _tool(tools, node.func.id)
            args = {}
            for kw in node.keywords:
                p = tool.param(kw.arg)
                _need(p is not None, f"{tool.name} has no parameter {kw.arg}")
                v = ast.literal_eval(kw.value)
                _need(type(v) is TYPES[p.type], f"{tool.name}.{kw.arg} is not a {p.type}")
                args[kw.arg] = v
            calls.append(ToolCall(tool.name, args))
        return body[:at], tuple(calls)

    def results(self, msgs):
        return [("ipython", m.content) for m in msgs]

    def parse_results(self, header: str, body: str):
        return [(None, body)] if header == "ipython" else None


# ------------------------------------------------------------------------------------------------
# typescript: tool namespaces (Harmony style)

_TS_HEAD = "\n\n# Tools\n\n## functions\n\nnamespace functions {\n\n"
_TS_TAIL = "} // namespace functions"
_TS_TYPES = {"string": "string", "integer": "number", "number": "number", "boolean": "boolean"}
_TS_CALL = "<|channel|>commentary to=functions."


class TypeScriptFormat:
    name = "typescript"
    reserved = ("<|channel|>", "<|message|>", "<|call|>", "<|constrain|>")

    def system(self, content: str, tools) -> str:
        out = [content, _TS_HEAD]
        for t in tools:
            out.append("".join(f"// {ln}\n" for ln in t.description.split("\n")))
            if not t.params:
                out.append(f"type {t.name} = () => any;\n\n")
                continue
            out.append(f"type {t.name} = (_: {{\n")
            for p in t.params:
                out.append("".join(f"// {ln}\n" for ln in p.description.split("\n")))
                out.append(f"{p.name}{'' if p.required else '?'}: {_TS_TYPES[p.type]},"
                           + (" // integer" if p.type == "integer" else "") + "\n")
            out.append("}) => any;\n\n")
        out.append(_TS_TAIL)
        return "".join(out)

    def parse_system(self, body: str):
        at = body.rfind(_TS_HEAD)
        _need(at >= 0 and body.endswith(_TS_TAIL), "system turn lacks the tools section")
        lines = body[at + len(_TS_HEAD):len(body) - len(_TS_TAIL)].split("\n")
        tools, i, comment = [], 0, []
        while i < len(lines) - 1:
            ln = lines[i]
            if ln.startswith("// "):
                comment.append(ln[3:])
            elif m := re.fullmatch(r"type (\w+) = \(\) => any;", ln):
                tools.append(Tool(m.group(1), "\n".join(comment)))
                comment, i = [], i + 1  # the blank line after
            elif m := re.fullmatch(r"type (\w+) = \(_: \{", ln):
                name, desc, comment, params, pc = m.group(1), "\n".join(comment), [], [], []
                i += 1
                while lines[i] != "}) => any;":
                    pl = lines[i]
                    if pl.startswith("// "):
                        pc.append(pl[3:])
                    else:
                        pm = re.fullmatch(r"(\w+)(\??): (\w+),( // integer)?", pl)
                        _need(pm is not None, f"unreadable parameter line {pl!r}")
                        ty = "integer" if pm.group(4) else {"string": "string", "number": "number",
                                                              "boolean": "boolean"}[pm.group(3)]
                        params.append(Param(pm.group(1), ty, "\n".join(pc), pm.group(2) == ""))
                        pc = []
                    i += 1
                tools.append(Tool(name, desc, tuple(params)))
                i += 1
            else:
                _need(ln == "", f"unreadable tool line {ln!r}")
            i += 1
        return body[:at], tuple(tools)

    def assistant(self, content: str, calls, tools) -> str:
        return content + "".join(f"{_TS_CALL}{c.name} <|constrain|>json<|message|>{_jdump(c.arguments)}<|call|>"
                                 for c in calls)

    def parse_assistant(self, body: str, tools):
        content, *pieces = body.split(_TS_CALL)
        calls = []
        for p in pieces:
            m = re.fullmatch(r"(\w+) <\|constrain\|>json<\|message\|>(.*)<\|call\|>", p, re.S)
            _need(m is not None, "unreadable call")
            _tool(tools, m.group(1))
            calls.append(ToolCall(m.group(1), _typed(json.loads(m.group(2)), m.group(1), tools)))
        return content, tuple(calls)

    def results(self, msgs):
        return [(f"functions.{m.name} to=assistant", m.content) for m in msgs]

    def parse_results(self, header: str, body: str):
        m = re.fullmatch(r"functions\.(\w+) to=assistant", header)
        return [(m.group(1), body)] if m else None


FORMATS = {f.name: f for f in (JsonFormat(), QwenXmlFormat(), XmlInvokeFormat(), PythonicFormat(), TypeScriptFormat())}


def _get(fmt: str):
    try:
        return FORMATS[fmt]
    except KeyError:
        raise RecordError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}") from None


def _texts(t: Trajectory):
    """(field, text) for every free text a rendering writes."""
    for tool in t.tools:
        yield f"tool {tool.name} description", tool.description
        for p in tool.params:
            yield f"tool {tool.name}.{p.name} description", p.description
    for i, m in enumerate(t.messages):
        yield f"message {i} ({m.role})", m.content
        for c in m.calls:
            for k, v in c.arguments.items():
                if isinstance(v, str):
                    yield f"message {i} call {c.name}.{k}", v


def check_renderable(fmt: str, t: Trajectory) -> None:
    f = _get(fmt)
    for where, text in _texts(t):
        extra = getattr(f, "reserved_defs", ()) if where.startswith("tool ") else ()
        own = getattr(f, "reserved_results", f.reserved) if where.endswith("(tool)") else f.reserved
        for marker in (*COMMON_RESERVED, *own, *extra):
            if marker in text:
                raise AmbiguousText(f"{fmt}: {where} contains {marker!r}, which the format reserves")


def render(fmt: str, t: Trajectory) -> str:
    """The whole trajectory as one training text in format ``fmt``."""
    f = _get(fmt)
    t.check()
    check_renderable(fmt, t)
    turns: list[tuple[str, str]] = []
    msgs = list(t.messages)
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if i == 0:
            turns.append(("system", f.system(m.content, t.tools)))
        elif m.role == "tool":
            j = i
            while j < len(msgs) and msgs[j].role == "tool":
                j += 1
            turns += f.results(msgs[i:j])
            i = j
            continue
        elif m.role == "assistant":
            turns.append(("assistant", f.assistant(m.content, m.calls, t.tools)))
        else:
            turns.append((m.role, m.content))
        i += 1
    return "".join(f"{IM_START}{h}\n{b}{IM_END}\n" for h, b in turns)


def parse(fmt: str, text: str) -> Trajectory:
    """The record back from ``render(fmt, t)``'s text."""
    f = _get(fmt)
    pieces = text.split(IM_START)
    _need(pieces[0] == "", "text before the first turn")
    tools: tuple[Tool, ...] = ()
    msgs: list[Message] = []
    pending: list[str] = []
    for k, piece in enumerate(pieces[1:]):
        _need(piece.endswith(IM_END + "\n"), "a turn without its end marker")
        header, sep, body = piece[:-len(IM_END) - 1].partition("\n")
        _need(bool(sep), "a turn without a header line")
        if k == 0:
            _need(header == "system", "the first turn is the system turn")
            content, tools = f.parse_system(body)
            msgs.append(Message("system", content))
            continue
        results = f.parse_results(header, body)
        if results is not None:
            for name, content in results:
                _need(bool(pending), "a result that answers no call")
                expected = pending.pop(0)
                msgs.append(Message("tool", content, name=name or expected))
            continue
        if header == "assistant":
            content, calls = f.parse_assistant(body, tools)
            msgs.append(Message("assistant", content, calls))
            pending = [c.name for c in calls]
        else:
            _need(header in ("user", "system"), f"unknown turn header {header!r}")
            msgs.append(Message(header, body))
    return Trajectory(tools, tuple(msgs)).check()
