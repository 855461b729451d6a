"""Parse and apply unified diffs (git's `diff --git` output) to in-memory file contents.

For turning a task's start-state files plus its gold patch into the fixed files, and for
locating the repaired line ranges (FIM middles). Not a general `patch(1)`: no fuzz, no offsets
beyond exact context matching; a hunk that does not match is a `PatchError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["FilePatch", "Hunk", "PatchError", "apply_file_patch", "parse_patch"]

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    """A patch that cannot be parsed or does not apply (a per-sample drop reason, not fatal)."""


@dataclass(frozen=True)
class Hunk:
    old_start: int              # 1-based
    new_start: int              # 1-based
    lines: tuple[str, ...]      # each starts with ' ', '-' or '+'; no trailing newline

    def new_changed_range(self) -> tuple[int, int]:
        """0-based [start, end) line range of the new file this hunk rewrote ('+' lines),
        or the hunk's whole new-side range when it only deletes."""
        pos = self.new_start - 1 if self.new_start > 0 else 0
        first = last = None
        for ln in self.lines:
            if ln.startswith("+"):
                first = pos if first is None else first
                last = pos + 1
                pos += 1
            elif ln.startswith(" "):
                pos += 1
        if first is None:
            n_new = sum(1 for ln in self.lines if not ln.startswith("-"))
            start = self.new_start - 1 if self.new_start > 0 else 0
            return start, start + n_new
        return first, last


@dataclass(frozen=True)
class FilePatch:
    old_path: str | None        # None: file created
    new_path: str | None        # None: file deleted
    hunks: tuple[Hunk, ...] = field(default_factory=tuple)
    new_no_newline_at_end: bool = False

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


def _strip_prefix(p: str) -> str | None:
    p = p.split("\t")[0].strip()
    if p == "/dev/null":
        return None
    return p[2:] if p[:2] in ("a/", "b/") else p


def parse_patch(text: str) -> list[FilePatch]:
    files: list[FilePatch] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("--- ") or i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
            i += 1
            continue
        old, new = _strip_prefix(lines[i][4:]), _strip_prefix(lines[i + 1][4:])
        i += 2
        hunks: list[Hunk] = []
        no_nl_new = False
        while i < len(lines) and lines[i].startswith("@@"):
            m = _HUNK.match(lines[i])
            if m is None:
                raise PatchError(f"malformed hunk header {lines[i]!r}")
            o_start, o_len = int(m.group(1)), int(m.group(2) or 1)
            n_start, n_len = int(m.group(3)), int(m.group(4) or 1)
            i += 1
            body: list[str] = []
            o_seen = n_seen = 0
            while i < len(lines) and (o_seen < o_len or n_seen < n_len or lines[i].startswith("\\")):
                ln = lines[i]
                if ln.startswith("\\"):
                    if body and body[-1][0] in " +":
                        no_nl_new = True
                    i += 1
                    continue
                tag = ln[:1] or " "
                if tag not in " +-":
                    raise PatchError(f"unexpected line in hunk: {ln!r}")
                body.append(tag + ln[1:])
                o_seen += tag in " -"
                n_seen += tag in " +"
                i += 1
            hunks.append(Hunk(o_start, n_start, tuple(body)))
        files.append(FilePatch(old, new, tuple(hunks), no_nl_new))
    if not files:
        raise PatchError("patch contains no file diffs")
    return files


def apply_file_patch(old_text: str, fp: FilePatch) -> str:
    """Apply one file's hunks to `old_text` and return the new text (exact context match)."""
    old = old_text.splitlines()
    out: list[str] = []
    pos = 0
    for h in fp.hunks:
        start = h.old_start - 1 if h.old_start > 0 else 0
        if start < pos:
            raise PatchError(f"{fp.path}: overlapping hunks")
        out.extend(old[pos:start])
        pos = start
        for ln in h.lines:
            tag, body = ln[0], ln[1:]
            if tag in " -":
                if pos >= len(old) or old[pos] != body:
                    raise PatchError(f"{fp.path}: hunk at line {h.old_start} does not match the start state")
                pos += 1
            if tag in " +":
                out.append(body)
    tail_untouched = pos < len(old)
    out.extend(old[pos:])
    if not out:
        return ""
    ends_nl = old_text.endswith("\n") if tail_untouched else not fp.new_no_newline_at_end
    return "\n".join(out) + ("\n" if ends_nl else "")
