"""Every format round-trips: parse(render(t)) == t, for generated records and for the oracle's."""

from __future__ import annotations

import keyword

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rollouts.oracle import TOOLS
from rollouts.record import Message, Param, RecordError, Tool, ToolCall, Trajectory
from rollouts.templates import COMMON_RESERVED, FORMATS, AmbiguousText, parse, render

# Text that likes to collide with the formats: their own markers (refused), and newlines, quotes, code
# and brackets (allowed), mixed into arbitrary text.
RESERVED = sorted({m for f in FORMATS.values() for m in (*f.reserved, *getattr(f, "reserved_defs", ()))}
                  | set(COMMON_RESERVED))
NASTY = ["\n", "\n\n", '"', "'", "\\", "</", "<", ">", "{", "}", "[", "]", "(", ")", ", ", "=", "// ", "    ",
         "# Tools", "\u2028", "def f(", ": ", "<tool", "<parameter=x>", "<|", "|>", '"""x', "\n    Arg"]
piece = st.one_of(st.text(max_size=12), st.text(max_size=12), st.sampled_from(NASTY), st.sampled_from(NASTY),
                  st.text(max_size=12))
plain = st.lists(piece, max_size=6).map("".join)
# One field in 60 holds a reserved marker, so most records render and some are refused.
text = st.tuples(plain, st.lists(st.one_of(piece, st.sampled_from(RESERVED)), min_size=1, max_size=4).map("".join),
                 st.integers(0, 59)).map(lambda x: x[1] if x[2] == 0 else x[0])
ident = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))
VALUES = {"string": text, "integer": st.integers(-2**62, 2**62),
          "number": st.floats(allow_nan=False, allow_infinity=False), "boolean": st.booleans()}


@st.composite
def trajectories(draw):
    names = draw(st.lists(ident, min_size=1, max_size=3, unique=True))
    tools = []
    for n in names:
        pnames = draw(st.lists(ident, max_size=3, unique=True))
        tools.append(Tool(n, draw(text), tuple(Param(p, draw(st.sampled_from(list(VALUES))), draw(text), draw(st.booleans()))
                                               for p in pnames)))
    msgs = [Message("system", draw(text)), Message("user", draw(text))]
    for _ in range(draw(st.integers(0, 4))):
        calls = []
        for _ in range(draw(st.integers(0, 3))):
            t = draw(st.sampled_from(tools))
            args = {p.name: draw(VALUES[p.type]) for p in t.params if p.required or draw(st.booleans())}
            calls.append(ToolCall(t.name, args))
        msgs.append(Message("assistant", draw(text), tuple(calls)))
        msgs += [Message("tool", draw(text), name=c.name) for c in calls]
        if draw(st.booleans()):
            msgs.append(Message("user", draw(text)))
    return Trajectory(tuple(tools), tuple(msgs)).check()


def _reserved_hit(fmt: str, t: Trajectory) -> bool:
    f = FORMATS[fmt]
    common = (*COMMON_RESERVED, *f.reserved)
    in_results = (*COMMON_RESERVED, *getattr(f, "reserved_results", f.reserved))  # tool results: their own tags
    texts = [m.content for m in t.messages if m.role != "tool"] + [
        v for m in t.messages for c in m.calls for v in c.arguments.values() if isinstance(v, str)]
    results = [m.content for m in t.messages if m.role == "tool"]
    defs = [t_.description for t_ in t.tools] + [p.description for t_ in t.tools for p in t_.params]
    return (any(mk in x for x in texts + defs for mk in common)
            or any(mk in x for x in results for mk in in_results)
            or any(mk in x for x in defs for mk in getattr(f, "reserved_defs", ())))


@pytest.mark.parametrize("fmt", list(FORMATS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(t=trajectories())
def test_round_trip(fmt, t):
    if _reserved_hit(fmt, t):
        with pytest.raises(AmbiguousText):
            render(fmt, t)
        return
    text = render(fmt, t)
    assert parse(fmt, text) == t
    assert render(fmt, parse(fmt, text)) == text


def test_formats_differ_and_write_tools_their_way():
    t = Trajectory(TOOLS, (Message("system", "sys"), Message("user", "fix it"),
                           Message("assistant", "run", (ToolCall("bash", {"command": "ls", "timeout": 5}),)),
                           Message("tool", "a\n[exit code 0]", name="bash"), Message("assistant", "done"))).check()
    texts = {f: render(f, t) for f in FORMATS}
    assert len(set(texts.values())) == len(FORMATS) >= 5
    assert '<tool_call>\n{"name": "bash", "arguments": {"command": "ls", "timeout": 5}}\n</tool_call>' in texts["json"]
    assert "<function=bash>\n<parameter=command>\nls\n</parameter>\n<parameter=timeout>\n5\n</parameter>" in texts["qwen-xml"]
    assert '<invoke name="bash">\n<parameter name="command">ls</parameter>' in texts["xml-invoke"]
    assert "[bash(command='ls', timeout=5)]" in texts["pythonic"]
    assert "def bash(*, command: str, timeout: int = None) -> str:" in texts["pythonic"]
    assert "type bash = (_: {\n// The command, run with bash.\ncommand: string," in texts["typescript"]
    assert "to=functions.bash <|constrain|>json<|message|>{\"command\": \"ls\", \"timeout\": 5}<|call|>" in texts["typescript"]
    for f, s in texts.items():
        assert parse(f, s) == t


def test_bad_records_are_refused():
    with pytest.raises(RecordError, match="undefined tool"):
        Trajectory(TOOLS, (Message("system", ""), Message("assistant", "", (ToolCall("nope", {}),)),
                           Message("tool", "", name="nope"))).check()
    with pytest.raises(RecordError, match="is str, declared integer"):
        Trajectory(TOOLS, (Message("system", ""), Message("assistant", "", (ToolCall("bash", {"command": "x", "timeout": "5"}),)),
                           Message("tool", "", name="bash"))).check()
    with pytest.raises(RecordError, match="no result"):
        Trajectory(TOOLS, (Message("system", ""), Message("assistant", "", (ToolCall("diff", {}),)),
                           Message("user", "hm"))).check()
    with pytest.raises(AmbiguousText, match="reserves"):
        render("json", Trajectory(TOOLS, (Message("system", ""), Message("user", "see </tool_response> here"))))
