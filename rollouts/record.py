"""The trajectory record: tool definitions, then messages; an assistant message may carry calls.

One record, many renderings (``rollouts.templates``). The record is what every format must give
back exactly: ``parse(render(t)) == t`` compares ``tools`` and ``messages``; ``meta`` (instance id,
reward, variant, source) travels beside the text, not inside it.

Rules a record obeys (``Trajectory.check``): the first message is ``system``; every ``tool``
message answers a call of the assistant message before it, in call order, and names that call's
tool; every call names a defined tool and passes only its parameters, with the declared types,
and every required one. Parameter types are the JSON-schema scalars every format can write:
``string``, ``integer``, ``number``, ``boolean``.
"""

from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass, field

from factory.errors import FactoryError

__all__ = ["Message", "Param", "RecordError", "Tool", "ToolCall", "Trajectory", "TYPES"]

TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}
ROLES = ("system", "user", "assistant", "tool")


class RecordError(FactoryError):
    """A trajectory record that breaks the record's rules (the message says which)."""

    reason = "bad_record"


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    description: str
    required: bool = True


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    params: tuple[Param, ...] = ()

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def json_schema(self) -> dict:
        """OpenAI-style function definition."""
        return {"type": "function", "function": {
            "name": self.name, "description": self.description,
            "parameters": {"type": "object",
                           "properties": {p.name: {"type": p.type, "description": p.description} for p in self.params},
                           "required": [p.name for p in self.params if p.required]}}}

    @classmethod
    def from_json_schema(cls, d: dict) -> Tool:
        f = d.get("function", d)
        props = (f.get("parameters") or {}).get("properties") or {}
        req = set((f.get("parameters") or {}).get("required") or [])
        return cls(f["name"], f.get("description", ""),
                   tuple(Param(k, v.get("type", "string"), v.get("description", ""), k in req) for k, v in props.items()))


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict = field(default_factory=dict)

    def __eq__(self, other) -> bool:  # bool is an int subclass: compare types too (True != 1 here)
        if not isinstance(other, ToolCall) or self.name != other.name or self.arguments.keys() != other.arguments.keys():
            return False
        return all(type(v) is type(other.arguments[k]) and (v == other.arguments[k] or (v != v and other.arguments[k] != other.arguments[k]))
                   for k, v in self.arguments.items())

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.arguments))))


@dataclass(frozen=True)
class Message:
    role: str
    content: str = ""
    calls: tuple[ToolCall, ...] = ()
    name: str = ""  # tool messages: the tool that answered


@dataclass
class Trajectory:
    tools: tuple[Tool, ...]
    messages: tuple[Message, ...]
    meta: dict = field(default_factory=dict)

    def __eq__(self, other) -> bool:
        return isinstance(other, Trajectory) and self.tools == other.tools and self.messages == other.messages

    # -- checks ------------------------------------------------------------------------------------

    def check(self) -> Trajectory:
        if not self.messages or self.messages[0].role != "system":
            raise RecordError("a trajectory starts with a system message")
        names = [t.name for t in self.tools]
        if len(set(names)) != len(names):
            raise RecordError(f"tool names repeat: {names}")
        by_name = {t.name: t for t in self.tools}
        for t in self.tools:
            for n in (t.name, *(p.name for p in t.params)):
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) or keyword.iskeyword(n):
                    raise RecordError(f"tool {t.name!r}: {n!r} is not an identifier every format can write")
            if len({p.name for p in t.params}) != len(t.params):
                raise RecordError(f"tool {t.name}: parameter names repeat")
            for p in t.params:
                if p.type not in TYPES:
                    raise RecordError(f"tool {t.name}: parameter {p.name} has type {p.type!r}; allowed: {', '.join(TYPES)}")
        pending: list[ToolCall] = []
        for i, m in enumerate(self.messages):
            if m.role not in ROLES:
                raise RecordError(f"message {i}: unknown role {m.role!r}")
            if m.role != "tool" and pending:
                raise RecordError(f"message {i}: {len(pending)} call(s) of message before it have no result")
            if m.role == "tool":
                if not pending:
                    raise RecordError(f"message {i}: a tool result that answers no call")
                call = pending.pop(0)
                if m.name != call.name:
                    raise RecordError(f"message {i}: result names {m.name!r}, the call was {call.name!r}")
            if m.calls and m.role != "assistant":
                raise RecordError(f"message {i}: only assistant messages make calls")
            for c in m.calls:
                tool = by_name.get(c.name)
                if tool is None:
                    raise RecordError(f"message {i}: call of undefined tool {c.name!r}")
                for k, v in c.arguments.items():
                    p = tool.param(k)
                    if p is None:
                        raise RecordError(f"message {i}: {c.name} has no parameter {k!r}")
                    want = TYPES[p.type]
                    if want is float and not math.isfinite(v if type(v) is float else 0.0):
                        raise RecordError(f"message {i}: {c.name}.{k} is not a finite number")
                    if type(v) is not want:
                        raise RecordError(f"message {i}: {c.name}.{k} is {type(v).__name__}, declared {p.type}")
                missing = [p.name for p in tool.params if p.required and p.name not in c.arguments]
                if missing:
                    raise RecordError(f"message {i}: {c.name} lacks required {', '.join(missing)}")
            if m.role != "tool":
                pending = list(m.calls)
        if pending:
            raise RecordError(f"the last {len(pending)} call(s) have no result")
        return self

    # -- JSON ------------------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"tools": [t.json_schema() for t in self.tools],
                "messages": [{"role": m.role, "content": m.content,
                              **({"tool_calls": [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                                 for c in m.calls]} if m.calls else {}),
                              **({"name": m.name} if m.name else {})} for m in self.messages],
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict) -> Trajectory:
        tools = tuple(Tool.from_json_schema(t) for t in d["tools"])
        msgs = []
        for m in d["messages"]:
            calls = []
            for c in m.get("tool_calls") or []:
                f = c.get("function", c)
                args = f.get("arguments") or {}
                calls.append(ToolCall(f["name"], json.loads(args) if isinstance(args, str) else dict(args)))
            msgs.append(Message(m["role"], m.get("content") or "", tuple(calls), m.get("name") or ""))
        return cls(tools, tuple(msgs), dict(d.get("meta") or {}))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Trajectory:
        return cls.from_dict(json.loads(text))

    @property
    def num_calls(self) -> int:
        return sum(len(m.calls) for m in self.messages)
