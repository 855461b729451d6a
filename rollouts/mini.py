"""Import mini-swe-agent trajectory files (``*.traj.json``) into the trajectory record.

mini-swe-agent 2.x (``minisweagent.agents.default.DefaultAgent.serialize``) writes
``{"info": {...exit_status, submission...}, "messages": [...], "trajectory_format": "mini-swe-agent-1.1"}``.
Messages are OpenAI-style dicts with an ``extra`` field of its own:

- ``system`` / ``user``: the prompts (``content`` is a string, or a list of text parts);
- ``assistant``: tool-calling models give ``tool_calls`` (``function.name == "bash"``,
  ``function.arguments`` a JSON string with ``command``); text-based models give the commands they
  parsed in ``extra.actions`` (``[{"command": ...}]``) and no ``tool_calls``;
- ``tool`` (``tool_call_id``): a tool-calling observation; text-based observations come back as a
  ``user`` message right after the assistant message that had actions;
- ``exit``: the end (``extra.exit_status``, ``extra.submission``), kept in ``meta``.

Either way the record has one tool, ``bash(command)``, mini-swe-agent's ``BASH_TOOL``; the
assistant's ``content`` keeps its text (for text-based models, the text that held the command).
"""

from __future__ import annotations

import json
from pathlib import Path

from rollouts.record import Message, Param, RecordError, Tool, ToolCall, Trajectory

__all__ = ["BASH", "import_mini_swe_agent"]

BASH = Tool("bash", "Execute a bash command", (Param("command", "string", "The bash command to execute"),))


def _text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    raise RecordError(f"unreadable message content of type {type(content).__name__}")


def import_mini_swe_agent(source: str | Path | dict, instance_id: str = "") -> Trajectory:
    """The record of one mini-swe-agent run (a ``.traj.json`` path or its parsed content)."""
    data = source if isinstance(source, dict) else json.loads(Path(source).read_text())
    fmt = data.get("trajectory_format", "")
    if not str(fmt).startswith("mini-swe-agent"):
        raise RecordError(f"{source if not isinstance(source, dict) else 'data'}: not a mini-swe-agent trajectory "
                          f"(trajectory_format {fmt!r})")
    msgs: list[Message] = []
    pending: list[str] = []  # tool_call ids (or "" for text-based actions) waiting for a result
    text_based_waiting = 0
    info = data.get("info") or {}
    meta = {"source": "mini-swe-agent", "variant": "imported", "instance_id": instance_id or data.get("instance_id", ""),
            "exit_status": info.get("exit_status", ""), "mini_version": info.get("mini_version", "")}
    for i, m in enumerate(data.get("messages") or []):
        role = m.get("role")
        extra = m.get("extra") or {}
        if role == "exit":
            meta["exit_status"] = extra.get("exit_status", meta["exit_status"])
            meta["submission"] = extra.get("submission", "")
            continue
        if role in ("system", "user") and not (role == "user" and text_based_waiting):
            if pending:  # an observation never came (format error, limits): the calls stay unanswered
                msgs += [Message("tool", "(no output: the action was not executed)", name="bash") for _ in pending]
                pending = []
            msgs.append(Message(role if msgs or role == "system" else "system", _text(m.get("content"))))
            continue
        if role == "assistant":
            calls = []
            if m.get("tool_calls"):
                for tc in m["tool_calls"]:
                    f = tc.get("function") or {}
                    args = f.get("arguments") or "{}"
                    args = json.loads(args) if isinstance(args, str) else dict(args)
                    if f.get("name") != "bash" or "command" not in args:
                        raise RecordError(f"message {i}: a call of {f.get('name')!r} without a command")
                    calls.append(ToolCall("bash", {"command": str(args["command"])}))
                    pending.append(tc.get("id", ""))
            else:
                for a in extra.get("actions") or []:
                    calls.append(ToolCall("bash", {"command": str(a["command"])}))
                text_based_waiting = len(calls)
            msgs.append(Message("assistant", _text(m.get("content")), tuple(calls)))
            continue
        if role == "tool":
            if not pending:
                raise RecordError(f"message {i}: a tool result that answers no call")
            pending.pop(0)
            msgs.append(Message("tool", _text(m.get("content")), name="bash"))
            continue
        if role == "user" and text_based_waiting:
            # text-based: one user message carries the observation of the step's action(s)
            msgs.append(Message("tool", _text(m.get("content")), name="bash"))
            msgs += [Message("tool", "", name="bash") for _ in range(text_based_waiting - 1)]
            text_based_waiting = 0
            continue
        raise RecordError(f"message {i}: unknown role {role!r}")
    if pending or text_based_waiting:
        msgs += [Message("tool", "(no output: the action was not executed)", name="bash")
                 for _ in range(len(pending) + text_based_waiting)]
    if not msgs or msgs[0].role != "system":
        msgs.insert(0, Message("system", ""))
    return Trajectory((BASH,), tuple(msgs), meta).check()
