"""Work out how a Python repository installs, with its test dependencies, from its files.

The result is a recipe: shell commands run in ``/testbed`` inside the base image, and the files
they were read from. Detection reads (in this order) ``pyproject.toml`` (PEP 621 extras and PEP
735 dependency groups), ``setup.cfg``, ``setup.py``, requirement files, ``tox.ini`` and
``noxfile.py``. Overrides in the RepoSpec win over all of it.

Not for: running anything. This module only reads files, so it is cheap and fully testable.
"""

from __future__ import annotations

import configparser
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from factory.schema import RepoSpec

__all__ = ["InstallRecipe", "detect_install", "DEFAULT_TEST_CMD"]

DEFAULT_TEST_CMD = "python -m pytest"
_TEST_NAMES = ("test", "tests", "testing")
_DEV_NAMES = ("dev", "develop", "development")
_REQ_FILES = (
    "requirements-test.txt", "requirements_test.txt", "requirements-tests.txt", "test-requirements.txt",
    "test_requirements.txt", "requirements/test.txt", "requirements/tests.txt", "requirements/testing.txt",
    "requirements-dev.txt", "requirements_dev.txt", "dev-requirements.txt", "requirements/dev.txt",
)


@dataclass(frozen=True)
class InstallRecipe:
    commands: tuple[str, ...]
    detected_from: tuple[str, ...]
    test_cmd: str


def detect_install(root: Path, spec: RepoSpec | None = None) -> InstallRecipe:
    """The install recipe for the tree at ``root``; ``spec``'s overrides win."""
    spec = spec or RepoSpec(source=str(root))
    test_cmd = spec.test_cmd or DEFAULT_TEST_CMD
    if spec.install is not None:
        return InstallRecipe(tuple(spec.pre_install) + tuple(spec.install), ("repo spec",), test_cmd)

    cmds: list[str] = list(spec.pre_install)
    found: list[str] = []
    extras: list[str] = []
    groups: list[str] = []
    installable = False

    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        try:
            data = tomllib.loads(pyproject.read_text(encoding="utf-8", errors="replace"))
        except tomllib.TOMLDecodeError:
            data = {}
        if "project" in data or "build-system" in data or "tool" in data and "poetry" in data["tool"]:
            installable = True
            found.append("pyproject.toml")
        extras += _pick(list(data.get("project", {}).get("optional-dependencies", {})))
        extras += _pick(list(data.get("tool", {}).get("poetry", {}).get("extras", {})))
        groups += _pick(list(data.get("dependency-groups", {})))

    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        cp = configparser.ConfigParser(interpolation=None)
        try:
            cp.read_string(setup_cfg.read_text(encoding="utf-8", errors="replace"))
            if cp.has_section("metadata") or cp.has_section("options"):
                installable = True
                found.append("setup.cfg")
            if cp.has_section("options.extras_require"):
                extras += _pick(list(cp["options.extras_require"]))
        except configparser.Error:
            pass

    setup_py = root / "setup.py"
    if setup_py.is_file():
        installable = True
        found.append("setup.py")
        text = setup_py.read_text(encoding="utf-8", errors="replace")
        m = re.search(r"extras_require\s*=\s*\{(.*?)\}", text, re.S)
        if m:
            extras += _pick(re.findall(r"['\"]([A-Za-z0-9_.-]+)['\"]\s*:", m.group(1)))

    extras = list(dict.fromkeys(extras))
    if installable:
        target = "." + (f"[{','.join(extras)}]" if extras else "")
        cmds.append(f"python -m pip install -e {shlex.quote(target)}")
    for g in dict.fromkeys(groups):
        cmds.append(f"python -m pip install --group {shlex.quote(g)}")
        found.append(f"pyproject.toml [dependency-groups] {g}")

    for rel in _REQ_FILES:
        if (root / rel).is_file():
            cmds.append(f"python -m pip install -r {shlex.quote(rel)}")
            found.append(rel)
    if not installable and (root / "requirements.txt").is_file():
        cmds.append("python -m pip install -r requirements.txt")
        found.append("requirements.txt")

    tox_deps = _tox_deps(root)
    if tox_deps:
        cmds.append("python -m pip install " + " ".join(shlex.quote(d) for d in tox_deps))
        found.append("tox.ini")
    nox_deps = _nox_deps(root)
    if nox_deps:
        cmds.append("python -m pip install " + " ".join(shlex.quote(d) for d in nox_deps))
        found.append("noxfile.py")

    # pytest and coverage come with the base image; a repository's own pins above may change them.
    return InstallRecipe(tuple(cmds), tuple(found), test_cmd)


def _pick(names: list[str]) -> list[str]:
    """The test-ish names; dev-ish ones only if there are no test-ish ones."""
    tests = [n for n in names if n.lower() in _TEST_NAMES]
    return tests or [n for n in names if n.lower() in _DEV_NAMES]


_SKIP_DEP = re.compile(r"[{}]|^-[^re]|^\.|^-e\s")


def _tox_deps(root: Path) -> list[str]:
    path = root / "tox.ini"
    if not path.is_file():
        return []
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return []
    if not cp.has_section("testenv"):
        return []
    deps: list[str] = []
    for raw in cp["testenv"].get("deps", "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" in line.split(" ")[0] and not re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*[<>=!~]", line):
            line = line.split(":", 1)[1].strip()  # factor-conditional deps ("py38: foo")
        if line.startswith("-r"):
            ref = line[2:].strip()
            if ref and "{" not in ref and (root / ref).is_file():
                deps.extend(["-r", ref])
            continue
        if _SKIP_DEP.search(line):
            continue
        deps.append(line)
    return deps


def _nox_deps(root: Path) -> list[str]:
    path = root / "noxfile.py"
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    deps: list[str] = []
    for call in re.findall(r"session\.install\(([^)]*)\)", text):
        for lit in re.findall(r"['\"]([^'\"]+)['\"]", call):
            if lit.startswith("-") or lit.startswith(".") or "{" in lit:
                continue
            deps.append(lit)
    return list(dict.fromkeys(deps))
