"""Languages other than Python: JavaScript, TypeScript and Go environments and test runners.

``language_of(files)`` says which language a repository's tree is tested in; the environment
hooks in ``verifiers.images`` call ``lang_env_spec`` / ``build_lang_env_image`` for anything
that is not Python, and ``verifiers.runner.runner_for`` maps a test command to its runner
(``runner_from_cmd``). ``docs/languages.md`` says what each language supports.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["language_of"]

_PYTHON_MARKERS = {"pyproject.toml", "setup.py", "setup.cfg"}


def language_of(files: Iterable[str]) -> str:
    """``python``, ``javascript`` (or ``typescript``, decided by the Node detection) or ``go``, from
    the files at the repository's root: a Python project file wins; then ``go.mod``; then
    ``package.json``."""
    top = {f for f in files if "/" not in f}
    if top & _PYTHON_MARKERS:
        return "python"
    if "go.mod" in top:
        return "go"
    if "package.json" in top:
        return "javascript"
    return "python"
