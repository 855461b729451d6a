"""Unified diffs of one change: parse them per file, classify the files, decide what to keep.

Pure functions over the bytes that ``git diff-tree -p`` prints: no git, no I/O. ``local``,
``github`` and ``mirror`` feed them; the rules that say why a change is skipped live here, so a
skip reason means the same thing whichever way a change was found.

Not for: producing diffs (``gitio``) or deciding whether a patch applies (``git apply``).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from factory.repo import is_test_file

__all__ = [
    "FileDiff",
    "Limits",
    "SplitChange",
    "file_kind",
    "is_test_path",
    "parse_diff",
    "python_change_is_cosmetic",
    "python_semantics_equal",
    "split_change",
]

_NULL_SHA = "0" * 40


@dataclass(frozen=True)
class FileDiff:
    """One file's section of a ``git diff`` (header lines included, so sections concatenate)."""

    old_path: str | None  # None for an added file
    new_path: str | None  # None for a deleted file
    text: str  # the section, exactly as git printed it
    old_blob: str = _NULL_SHA
    new_blob: str = _NULL_SHA
    binary: bool = False
    submodule: bool = False
    num_added: int = 0
    num_removed: int = 0
    num_hunks: int = 0
    added_lines: tuple[str, ...] = ()
    removed_lines: tuple[str, ...] = ()
    added_linenos: tuple[int, ...] = ()  # new-side line number of each added line
    removed_linenos: tuple[int, ...] = ()  # old-side line number of each removed line

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p for p in dict.fromkeys((self.old_path, self.new_path)) if p)


class NonUtf8Diff(ValueError):
    """The diff has a path or content that is not UTF-8: a Candidate holds text, so skip it."""


_HEADER_RE = re.compile(rb"^diff --git (?P<rest>.*)$")
_HUNK_RE = re.compile(rb"^@@ -(?P<old>\d+)(?:,\d+)? \+(?P<new>\d+)(?:,\d+)? @@")
_INDEX_RE = re.compile(rb"^index (?P<old>[0-9a-f]+)\.\.(?P<new>[0-9a-f]+)(?: (?P<mode>\d+))?$")


def _unquote(raw: bytes) -> bytes:
    """A path as git prints it: plain, or C-quoted ("a/t\\303\\251st") when it has odd bytes."""
    if not raw.startswith(b'"'):
        return raw
    body = raw[1:-1]
    out = bytearray()
    i = 0
    escapes = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b",
               b"f": b"\f", b"r": b"\r", b"v": b"\v"}
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\" and i + 1 < len(body):
            nxt = body[i + 1 : i + 2]
            if nxt.isdigit():
                out.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            out += escapes.get(nxt, nxt)
            i += 2
            continue
        out += c
        i += 1
    return bytes(out)


def _path(raw: bytes, prefix: bytes) -> str | None:
    raw = raw.rstrip(b"\t")  # git appends a tab after paths that contain spaces, on ---/+++ lines
    if raw == b"/dev/null":
        return None
    p = _unquote(raw)
    if p.startswith(prefix):
        p = p[len(prefix) :]
    try:
        return p.decode("utf-8")
    except UnicodeDecodeError as e:
        raise NonUtf8Diff(f"non-UTF-8 path {p!r}") from e


def _split_header_paths(rest: bytes) -> tuple[bytes, bytes]:
    """``a/x b/y`` from a ``diff --git`` line; only used when no ---/+++ or rename lines say it."""
    if rest.startswith(b'"'):
        end = rest.index(b'"', 1)
        while rest[end - 1 : end] == b"\\":
            end = rest.index(b'"', end + 1)
        return rest[: end + 1], rest[end + 2 :]
    # unquoted: the two halves are equal-length when the path is unchanged (mode changes, binary)
    half = (len(rest) - 1) // 2
    if rest[half : half + 1] == b" " and rest[2:half] == rest[half + 3 :]:
        return rest[:half], rest[half + 1 :]
    idx = rest.find(b" b/")
    return rest[:idx], rest[idx + 1 :]


def parse_diff(raw: bytes) -> list[FileDiff]:
    """Split ``git diff`` output into per-file sections and read what each one does.

    Raises ``NonUtf8Diff`` when a path or a changed line is not UTF-8.
    """
    sections: list[list[bytes]] = []
    for line in raw.splitlines(keepends=True):
        if line.startswith(b"diff --git "):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    return [_parse_section(s) for s in sections]


def _parse_section(lines: list[bytes]) -> FileDiff:
    m = _HEADER_RE.match(lines[0].rstrip(b"\n"))
    assert m, lines[0]
    a_raw, b_raw = _split_header_paths(m["rest"])
    old: str | None = _path(a_raw, b"a/")
    new: str | None = _path(b_raw, b"b/")
    old_blob = new_blob = _NULL_SHA
    binary = submodule = False
    added: list[str] = []
    removed: list[str] = []
    added_ln: list[int] = []
    removed_ln: list[int] = []
    old_ln = new_ln = 0
    hunks = 0
    in_hunk = False
    for line in lines[1:]:
        s = line.rstrip(b"\n")
        if in_hunk and s[:1] in (b" ", b"+", b"-", b"\\"):
            mark = s[:1]
            if mark in (b"+", b"-"):
                try:
                    text = s[1:].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise NonUtf8Diff(f"non-UTF-8 content in {new or old}") from e
                if mark == b"+":
                    added.append(text)
                    added_ln.append(new_ln)
                    new_ln += 1
                else:
                    removed.append(text)
                    removed_ln.append(old_ln)
                    old_ln += 1
            elif mark == b" ":
                old_ln += 1
                new_ln += 1
            continue
        in_hunk = False
        if s.startswith(b"@@"):
            hunks += 1
            in_hunk = True
            if (hm := _HUNK_RE.match(s)) is not None:
                old_ln, new_ln = int(hm["old"]), int(hm["new"])
        elif s.startswith(b"new file mode"):
            old = None
            submodule |= s.endswith(b"160000")
        elif s.startswith(b"deleted file mode"):
            new = None
            submodule |= s.endswith(b"160000")
        elif s.startswith((b"old mode", b"new mode")):
            submodule |= s.endswith(b"160000")
        elif s.startswith(b"rename from "):
            old = _path(s[len(b"rename from ") :], b"")
        elif s.startswith(b"rename to "):
            new = _path(s[len(b"rename to ") :], b"")
        elif s.startswith(b"--- "):
            p = _path(s[4:], b"a/")
            old = p if p is not None else None
        elif s.startswith(b"+++ "):
            p = _path(s[4:], b"b/")
            new = p if p is not None else None
        elif s.startswith(b"Binary files ") or s == b"GIT binary patch":
            binary = True
        elif (im := _INDEX_RE.match(s)) is not None:
            old_blob, new_blob = im["old"].decode(), im["new"].decode()
            submodule |= im["mode"] == b"160000"
    if any(a.startswith("Subproject commit ") for a in added + removed) and hunks == 1:
        submodule = True
    text = b"".join(lines).decode("utf-8", errors="surrogateescape")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise NonUtf8Diff(f"non-UTF-8 bytes in the diff of {new or old}") from e
    return FileDiff(
        old_path=old, new_path=new, text=text, old_blob=old_blob, new_blob=new_blob,
        binary=binary, submodule=submodule, num_added=len(added), num_removed=len(removed),
        num_hunks=hunks, added_lines=tuple(added), removed_lines=tuple(removed),
        added_linenos=tuple(added_ln), removed_linenos=tuple(removed_ln),
    )


# ---------------------------------------------------------------------------------------------
# What a file is
# ---------------------------------------------------------------------------------------------

_DOC_NAMES = {"license", "licence", "authors", "contributors", "changelog", "changes", "history",
              "news", "readme", "copying", "notice", "code_of_conduct", "contributing", "security",
              "codeowners", "mailmap", ".mailmap"}
_DOC_EXTS = {".md", ".rst", ".txt", ".adoc", ".png", ".jpg", ".jpeg", ".svg", ".gif", ".ipynb"}
_DOC_DIRS = {"docs", "doc", "documentation", "changelog.d", "changes", "newsfragments", "news",
             "examples", "example", "releasenotes", "release-notes", "release_notes", "changes.d",
             "changelog", ".changes", ".changeset", "unreleased"}
# Message catalogs: part of a fix (they ship with the code), but one edit of a message touches
# every language, so they do not count against the code limits.
_CATALOG_EXTS = (".po", ".pot")
_CI_DIRS = {".github", ".circleci", ".azure-pipelines", ".buildkite", ".gitlab", ".ci", "ci"}
_CI_FILES = {".travis.yml", ".gitlab-ci.yml", "appveyor.yml", ".appveyor.yml", "azure-pipelines.yml",
             ".pre-commit-config.yaml", ".readthedocs.yml", ".readthedocs.yaml", "codecov.yml",
             ".codecov.yml", ".coveragerc", ".gitignore", ".gitattributes", ".git-blame-ignore-revs",
             ".editorconfig", "renovate.json", ".flake8", ".pylintrc", "jenkinsfile",
             "dependabot.yml", ".cirrus.yml", ".mergify.yml", ".mergify.yaml", "mergify.yml",
             ".pre-commit-hooks.yaml"}
_VENDOR_DIRS = {"vendor", "vendored", "_vendor", "third_party", "thirdparty", "third-party",
                "node_modules", "extern", "externals"}
_VERSION_LINE_RE = re.compile(r"""^\s*(__version__|version|VERSION|release)\s*[:=]|^\s*$""")


def is_test_path(path: str, extra_globs: Sequence[str] = ()) -> bool:
    """Whether ``path`` holds tests: ``factory.repo.is_test_file``, the definition every stage shares."""
    return is_test_file(path, extra_globs)


_DEP_NAMES = {"pyproject.toml", "setup.py", "setup.cfg", "tox.ini", "pipfile", "pipfile.lock", "poetry.lock",
              "uv.lock", "pdm.lock", "environment.yml", "environment.yaml", "constraints.txt", "manifest.in"}
_TEXT_EXTS = {"", ".md", ".rst", ".txt", ".adoc", ".markdown"}


def file_kind(path: str) -> str:
    """One of ``doc``, ``ci``, ``vendored``, ``deps``, ``code`` for a non-test file.

    ``deps`` are the files that decide the environment (they also key the install group):
    pyproject.toml, setup.py, setup.cfg, requirements*.txt, lock files, tox.ini.
    """
    parts = path.lower().split("/")
    name = parts[-1]
    stem, dot, ext = name.rpartition(".")
    ext = dot + ext if dot else ""
    if any(p in _VENDOR_DIRS for p in parts[:-1]):
        return "vendored"
    if parts[0] in _CI_DIRS or name in _CI_FILES:
        return "ci"
    if name in _DEP_NAMES or (name.startswith("requirements") and ext in (".txt", ".in")) \
            or (len(parts) > 1 and parts[-2] == "requirements" and ext in (".txt", ".in")):
        return "deps"
    if parts[0] in _DOC_DIRS or name in _DOC_NAMES or ((stem or name) in _DOC_NAMES and ext in _TEXT_EXTS):
        return "doc"
    if ext in _DOC_EXTS:
        return "doc"
    return "code"


# ---------------------------------------------------------------------------------------------
# The split, and the rules that skip a change
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """Size limits on a kept change; a change over any of them is skipped with that reason."""

    max_files: int = 30  # all files, code and tests
    max_code_files: int = 10
    max_code_lines: int = 600  # added + removed lines in the code part
    max_test_lines: int = 2000
    max_hunks: int = 40  # hunks in the code part

    def __post_init__(self) -> None:
        for name in ("max_files", "max_code_files", "max_code_lines", "max_test_lines", "max_hunks"):
            if getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be at least 1")


@dataclass(frozen=True)
class SplitChange:
    """A change cut into its code part (``patch``) and its tests (``test_patch``), or a skip."""

    patch: str = ""
    test_patch: str = ""
    code_files: tuple[FileDiff, ...] = ()
    test_files: tuple[FileDiff, ...] = ()
    dep_files: tuple[FileDiff, ...] = ()  # dependency files the change also touches (env may differ)
    skip: str = ""  # the reason, when the change is not a candidate


# "Release 1.2.0", "Bump version to 2.0", "Prepare release", "v1.2.3" -- not "Release the GIL in f()"
_RELEASE_RE = re.compile(
    r"^\s*(?:(?:release|releasing|releases)\s+(?:version\s+)?v?\d|(?:bump|bumped|bumps)\s+(?:the\s+)?version"
    r"|version\s+bump|prepare(?:d)?\s+(?:for\s+)?(?:the\s+)?(?:release|v?\d)|v?\d+\.\d+(?:\.\d+)*\s*$"
    r"|(?:cut|tag)\s+(?:release\s+)?v?\d)",
    re.IGNORECASE,
)


def split_change(files: Iterable[FileDiff], *, subject: str = "", test_globs: Sequence[str] = (),
                 limits: Limits = Limits(), require_tests: bool = True) -> SplitChange:
    """Cut one change into code and tests, or say why it is skipped (the first rule that fires).

    The patch keeps the change's docs and config beside the code (SWE-bench's gold patches do);
    vendored code, binary and submodule diffs skip the whole change, since a partial fix is no
    fix. ``require_tests=False`` keeps code-only changes (the PR mirror validates on HEAD's tests).
    """
    files = list(files)
    if not files:
        return SplitChange(skip="empty")
    if any(f.submodule for f in files):
        return SplitChange(skip="submodule")
    if any(f.binary for f in files):
        return SplitChange(skip="binary")
    tests = [f for f in files if any(is_test_path(p, test_globs) for p in f.paths)]
    rest = [f for f in files if f not in tests]
    kinds = {f.path: file_kind(f.path) for f in rest}
    code = [f for f in rest if kinds[f.path] == "code"]
    if any(k == "vendored" for k in kinds.values()):
        return SplitChange(skip="vendored")
    if not code and not tests:
        only = set(kinds.values())
        return SplitChange(skip="ci_only" if only == {"ci"} else "deps_only" if "deps" in only else "docs_only")
    if _RELEASE_RE.match(subject) or (code and all(_only_version_lines(f) for f in code)):
        return SplitChange(skip="release_bump")
    if not code:
        return SplitChange(skip="deps_only" if "deps" in kinds.values() else "tests_only")
    if require_tests and not tests:
        return SplitChange(skip="no_tests")
    if len([f for f in files if not f.path.lower().endswith(_CATALOG_EXTS)]) > limits.max_files:
        return SplitChange(skip="too_many_files")
    counted = [f for f in code if not f.path.lower().endswith(_CATALOG_EXTS)] or code
    if len(counted) > limits.max_code_files:
        return SplitChange(skip="too_many_code_files")
    if sum(f.num_added + f.num_removed for f in counted) > limits.max_code_lines:
        return SplitChange(skip="too_many_lines")
    if sum(f.num_added + f.num_removed for f in tests) > limits.max_test_lines:
        return SplitChange(skip="too_many_test_lines")
    if sum(f.num_hunks for f in counted) > limits.max_hunks:
        return SplitChange(skip="too_many_hunks")
    if all(_only_comment_lines(f) for f in code):
        return SplitChange(skip="comments_only")
    return SplitChange(
        patch="".join(f.text for f in rest),
        test_patch="".join(f.text for f in tests),
        code_files=tuple(code),
        test_files=tuple(tests),
        dep_files=tuple(f for f in rest if kinds[f.path] == "deps"),
    )


def _only_version_lines(f: FileDiff) -> bool:
    lines = [x for x in f.added_lines + f.removed_lines if x.strip()]
    return bool(lines) and all(_VERSION_LINE_RE.match(x) for x in lines)


_COMMENT_PREFIXES = ("#", "//", "/*", "*", "*/", "--", ";")


def _only_comment_lines(f: FileDiff) -> bool:
    """A line-level first look (the AST check in ``python_semantics_equal`` is the real one)."""
    if f.old_path != f.new_path:  # added, deleted or renamed: never "only comments"
        return False
    lines = f.added_lines + f.removed_lines
    if not lines:  # a mode change
        return False
    return all(not x.strip() or x.strip().startswith(_COMMENT_PREFIXES) for x in lines)


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers covered by docstrings; walks statements only (expressions are most nodes)."""
    out: set[int] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        body = getattr(node, "body", None)
        if not isinstance(body, list):
            continue
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and body \
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            out.update(range(body[0].lineno, (body[0].end_lineno or body[0].lineno) + 1))
        for field in ("body", "orelse", "finalbody", "handlers"):
            stack.extend(n for n in getattr(node, field, ()) or () if isinstance(n, ast.AST))
    return out


def python_change_is_cosmetic(f: FileDiff, old: str | None, new: str | None) -> bool:
    """Whether one Python file's change touches only comments, docstrings or layout.

    Fast path first: a changed line that is not blank, not a comment and not inside a docstring
    of its side makes it a real change (the common case, decided from two C-speed parses). Only
    changes that pass it get the exact AST comparison.
    """
    if old is None or new is None:
        return False
    try:
        old_tree, new_tree = ast.parse(old), ast.parse(new)
    except (SyntaxError, ValueError):
        return False
    for lines, linenos, tree in ((f.removed_lines, f.removed_linenos, old_tree),
                                 (f.added_lines, f.added_linenos, new_tree)):
        doc: set[int] | None = None
        for text, ln in zip(lines, linenos, strict=False):
            t = text.strip()
            if not t or t.startswith("#"):
                continue
            if doc is None:
                doc = _docstring_lines(tree)
            if ln not in doc:
                return False
    return ast.dump(_strip_docstrings(old_tree)) == ast.dump(_strip_docstrings(new_tree))


def python_semantics_equal(old: str | None, new: str | None) -> bool:
    """Whether two versions of a Python file differ only in comments, docstrings or layout.

    A file that does not parse on either side counts as a real change (we cannot tell).
    """
    if old is None or new is None:
        return False
    try:
        a = _strip_docstrings(ast.parse(old))
        b = _strip_docstrings(ast.parse(new))
    except (SyntaxError, ValueError):
        return False
    return ast.dump(a) == ast.dump(b)
