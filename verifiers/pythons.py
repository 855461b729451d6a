"""Which Python an environment gets: the one asked for, unless the project's ``requires-python``
rules it out and another Python we can build does not.

Without a container registry, base images come from Debian's packages, so the Pythons on offer
are Debian's: 3.9.2 (bullseye), 3.11.2 (bookworm), 3.13.5 (trixie). There is no newer 3.11.x
from Debian (bookworm's security updates keep 3.11.2's version) and only PyPI and Debian are
reachable here, so a project that needs ``>=3.11.5`` gets 3.13 instead, and one that no Python on
offer satisfies fails with ``python_unsatisfiable`` naming what is on offer.

Not for: building the base image (``verifiers.images``).
"""

from __future__ import annotations

import configparser
import re
import tomllib
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet

__all__ = ["DEBIAN_PYTHONS", "PythonChoice", "choose_python", "requires_python"]

# series -> (Debian suite, the exact version it ships)
DEBIAN_PYTHONS = {"3.9": ("bullseye", "3.9.2"), "3.11": ("bookworm", "3.11.2"), "3.13": ("trixie", "3.13.5")}


@dataclass(frozen=True)
class PythonChoice:
    series: str  # "3.11"
    note: str = ""  # why it is not the one asked for ("" when it is)
    unsatisfiable: str = ""  # set when no Python on offer satisfies requires-python: the reason


def requires_python(root: Path) -> tuple[str, str] | None:
    """(specifier, where it was read) from PKG-INFO, pyproject.toml, setup.cfg or setup.py."""
    pkg = root / "PKG-INFO"
    if pkg.is_file():
        value = HeaderParser().parsestr(pkg.read_text(encoding="utf-8", errors="replace")).get("Requires-Python")
        if value:
            return value.strip(), "PKG-INFO"
    pp = root / "pyproject.toml"
    if pp.is_file():
        try:
            value = tomllib.loads(pp.read_text(encoding="utf-8", errors="replace")).get("project", {}).get("requires-python")
        except tomllib.TOMLDecodeError:
            value = None
        if isinstance(value, str) and value.strip():
            return value.strip(), "pyproject.toml"
        try:
            poetry = tomllib.loads(pp.read_text(encoding="utf-8", errors="replace")).get("tool", {}).get("poetry", {})
            value = poetry.get("dependencies", {}).get("python")
        except tomllib.TOMLDecodeError:
            value = None
        if isinstance(value, str) and value.strip() and not value.startswith(("^", "~")) and value != "*":
            return value.strip(), "pyproject.toml [tool.poetry]"
    cfg = root / "setup.cfg"
    if cfg.is_file():
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        try:
            cp.read_string(cfg.read_text(encoding="utf-8", errors="replace"))
            value = cp.get("options", "python_requires", fallback="").strip()
        except configparser.Error:
            value = ""
        if value:
            return value, "setup.cfg"
    sp = root / "setup.py"
    if sp.is_file():
        m = re.search(r"python_requires\s*=\s*['\"]([^'\"]+)['\"]", sp.read_text(encoding="utf-8", errors="replace"))
        if m:
            return m.group(1).strip(), "setup.py"
    return None


def choose_python(asked: str, requires: str | None, offered: dict[str, str] | None = None) -> PythonChoice:
    """``asked`` if its version satisfies ``requires``; else the nearest offered series that does
    (newer first: projects drop old Pythons more often than they forbid new ones)."""
    offered = offered if offered is not None else {s: v for s, (_suite, v) in DEBIAN_PYTHONS.items()}
    if not requires:
        return PythonChoice(asked)
    try:
        spec = SpecifierSet(requires)
    except InvalidSpecifier:
        return PythonChoice(asked, note=f"requires-python {requires!r} is not a valid specifier; ignored")
    version = offered.get(asked, asked)
    if asked not in offered or spec.contains(version, prereleases=True):
        return PythonChoice(asked)

    def key(s: str) -> tuple[int, float]:
        d = float(s.split(".")[1]) - float(asked.split(".")[1])
        return (0 if d > 0 else 1, abs(d))

    for series in sorted((s for s in offered if s != asked), key=key):
        if spec.contains(offered[series], prereleases=True):
            return PythonChoice(series, note=f"requires-python {requires} excludes {version}: using Python "
                                             f"{offered[series]}")
    on_offer = ", ".join(offered[s] for s in sorted(offered, key=lambda s: int(s.split('.')[1])))
    return PythonChoice(asked, unsatisfiable=f"requires-python {requires} is satisfied by no Python on offer "
                                             f"({on_offer}, from Debian; only PyPI and Debian are reachable)")
