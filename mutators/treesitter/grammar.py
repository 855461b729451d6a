"""Which tree-sitter grammar parses a file, and the parsers (built once per process).

The grammars are the ``tree-sitter-javascript``, ``tree-sitter-typescript`` and
``tree-sitter-go`` wheels (the ``treesitter`` extra); they are imported where used, so importing
``mutators`` costs nothing when no such file is mutated.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import PurePosixPath

__all__ = ["LANGUAGE_OF_SUFFIX", "language_of_path", "parser"]

# file suffix -> grammar ("tsx" is TypeScript with JSX; "javascript" parses JSX too)
LANGUAGE_OF_SUFFIX = {".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
                      ".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "tsx", ".go": "go"}


def language_of_path(path: str) -> str | None:
    """The grammar of a path, or None (Python and everything else)."""
    name = PurePosixPath(path).name
    if re.search(r"\.d\.[cm]?tsx?$", name) or name.endswith(".min.js"):
        return None  # declarations hold no behaviour; minified bundles are build output
    return LANGUAGE_OF_SUFFIX.get(PurePosixPath(path).suffix)


@cache
def parser(language: str):
    """A tree-sitter parser for ``javascript``, ``typescript``, ``tsx`` or ``go``."""
    import tree_sitter as ts  # noqa: PLC0415

    if language == "javascript":
        import tree_sitter_javascript as grammar  # noqa: PLC0415

        lang = grammar.language()
    elif language in ("typescript", "tsx"):
        import tree_sitter_typescript as grammar  # noqa: PLC0415

        lang = grammar.language_typescript() if language == "typescript" else grammar.language_tsx()
    elif language == "go":
        import tree_sitter_go as grammar  # noqa: PLC0415

        lang = grammar.language()
    else:
        raise ValueError(f"no tree-sitter grammar for {language!r}")
    return ts.Parser(ts.Language(lang))
