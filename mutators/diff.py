"""Unified diffs that ``git apply`` takes, and a small applier for our own diffs.

Lines are split on ``\\n`` only (``str.splitlines`` would also split on form feeds and other
separators that Python source may contain), keep their endings (so CRLF files stay CRLF),
and a last line without a newline gets git's ``\\ No newline at end of file`` marker.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

__all__ = ["Hunk", "PatchError", "apply_patch", "file_diff", "parse_patch", "split_lines"]

_NO_EOL = "\\ No newline at end of file\n"
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(ValueError):
    """A patch that does not parse, or does not apply to the text given."""


def split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    out = [line + "\n" for line in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _range(start: int, stop: int) -> str:
    # The same convention as difflib's unified_diff (and git): "-5,0" means after line 5.
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def _emit(prefix: str, line: str) -> str:
    return prefix + line if line.endswith("\n") else prefix + line + "\n" + _NO_EOL


def file_diff(
    path: str,
    old: list[str],
    new: list[str],
    lo: int = 0,
    hi_old: int | None = None,
    hi_new: int | None = None,
    context: int = 3,
) -> str:
    """A git-style diff of one file, given as line lists.

    ``old[lo:hi_old]`` and ``new[lo:hi_new]`` bound the changed region when the caller knows
    it (everything outside is equal), so a one-function change in a long file is diffed in
    time proportional to the function, not the file.
    """
    hi_old = len(old) if hi_old is None else hi_old
    hi_new = len(new) if hi_new is None else hi_new
    # Trim the common prefix and suffix of the region, then let difflib do the middle.
    while lo < hi_old and lo < hi_new and old[lo] == new[lo]:
        lo += 1
    while hi_old > lo and hi_new > lo and old[hi_old - 1] == new[hi_new - 1]:
        hi_old -= 1
        hi_new -= 1
    if lo == hi_old and lo == hi_new:
        return ""
    matcher = difflib.SequenceMatcher(None, old[lo:hi_old], new[lo:hi_new], autojunk=False)
    ops = [(tag, i1 + lo, i2 + lo, j1 + lo, j2 + lo) for tag, i1, i2, j1, j2 in matcher.get_opcodes()]
    codes = [("equal", 0, lo, 0, lo)] if lo else []
    codes += ops
    if hi_old < len(old):
        codes.append(("equal", hi_old, len(old), hi_new, len(new)))
    groups = _grouped(codes, context)

    out = [f"diff --git a/{path} b/{path}\n", f"--- a/{path}\n", f"+++ b/{path}\n"]
    for group in groups:
        i_start, j_start = group[0][1], group[0][3]
        i_end, j_end = group[-1][2], group[-1][4]
        out.append(f"@@ -{_range(i_start, i_end)} +{_range(j_start, j_end)} @@\n")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                out.extend(_emit(" ", line) for line in old[i1:i2])
                continue
            out.extend(_emit("-", line) for line in old[i1:i2])
            out.extend(_emit("+", line) for line in new[j1:j2])
    return "".join(out)


def _grouped(codes: list[tuple[str, int, int, int, int]], n: int) -> list[list[tuple]]:
    """difflib.SequenceMatcher.get_grouped_opcodes, on opcodes we computed ourselves."""
    codes = list(codes)
    if codes[0][0] == "equal":
        tag, i1, i2, j1, j2 = codes[0]
        codes[0] = tag, max(i1, i2 - n), i2, max(j1, j2 - n), j2
    if codes[-1][0] == "equal":
        tag, i1, i2, j1, j2 = codes[-1]
        codes[-1] = tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)
    groups, group = [], []
    for tag, i1, i2, j1, j2 in codes:
        if tag == "equal" and i2 - i1 > 2 * n:
            group.append((tag, i1, min(i2, i1 + n), j1, min(j2, j1 + n)))
            groups.append(group)
            group = []
            i1, j1 = max(i1, i2 - n), max(j1, j2 - n)
        group.append((tag, i1, i2, j1, j2))
    if group and not (len(group) == 1 and group[0][0] == "equal"):
        groups.append(group)
    return groups


@dataclass(frozen=True)
class Hunk:
    old_start: int  # 1-based, as in the header
    old_len: int
    new_start: int
    new_len: int
    lines: tuple[str, ...]  # each with its ' ', '-' or '+' prefix and its own line ending

    @property
    def old_range(self) -> tuple[int, int]:
        """0-based [start, stop) of the old lines this hunk covers, context included."""
        start = self.old_start - 1 if self.old_len else self.old_start
        return start, start + self.old_len


def parse_patch(patch: str) -> dict[str, list[Hunk]]:
    """File path (the ``b/`` side) to its hunks, for the diffs ``file_diff`` writes."""
    files: dict[str, list[Hunk]] = {}
    lines = patch.split("\n")
    lines = [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    i, path = 0, None
    while i < len(lines):
        line = lines[i]
        if line.startswith("+++ "):
            path = line[4:].rstrip("\n")
            path = path[2:] if path.startswith("b/") else path
            files.setdefault(path, [])
            i += 1
            continue
        m = _HUNK_RE.match(line)
        if m is None:
            i += 1
            continue
        if path is None:
            raise PatchError("a hunk before any +++ header")
        old_start, old_len = int(m[1]), int(m[2] if m[2] is not None else 1)
        new_start, new_len = int(m[3]), int(m[4] if m[4] is not None else 1)
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i][:1] in (" ", "-", "+", "\\"):
            if lines[i].startswith("+++ ") or lines[i].startswith("--- "):
                break
            if lines[i].startswith("\\"):
                if body:
                    body[-1] = body[-1].removesuffix("\n")
            else:
                body.append(lines[i])
            i += 1
        files[path].append(Hunk(old_start, old_len, new_start, new_len, tuple(body)))
    return files


def apply_patch(text: str, hunks: list[Hunk]) -> str:
    """``text`` with the hunks of one file applied; raises PatchError if the context differs."""
    old = split_lines(text)
    out: list[str] = []
    pos = 0
    for h in sorted(hunks, key=lambda h: h.old_start):
        start, stop = h.old_range
        if start < pos:
            raise PatchError(f"overlapping hunks at line {h.old_start}")
        out.extend(old[pos:start])
        expect = [line[1:] for line in h.lines if line[0] in " -"]
        if old[start:stop] != expect:
            raise PatchError(f"hunk at line {h.old_start} does not match the text")
        out.extend(line[1:] for line in h.lines if line[0] in " +")
        pos = stop
    out.extend(old[pos:])
    return "".join(out)
