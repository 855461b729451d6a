"""Work out how a Python repository installs, with its test dependencies, from its files.

The result is a recipe: shell commands run in ``/testbed`` inside the base image, environment
variables set for them, and the files they were read from. Detection reads (in this order):

- ``PKG-INFO`` (an sdist): its version, told to setuptools-scm, hatch-vcs, pdm and friends, which
  would otherwise derive ``0.1.dev1`` from a tag-less snapshot and make pip fetch the package
  from PyPI again to satisfy a dependency's ``>=1``;
- ``pyproject.toml`` (PEP 621 extras, Poetry extras, PEP 735 dependency groups), ``setup.cfg``,
  ``setup.py``: the test-ish extras and groups (any name with "test" in it; else dev-ish ones,
  and ``all``);
- requirement files; ``tox.ini`` (``[testenv]``, its factor-conditional deps and extras evaluated
  for the environment that runs the tests); ``noxfile.py``;
- the suite itself (``verifiers.discover``): where pytest should look, plugins its configuration
  needs (``--cov`` in addopts -> pytest-cov, ``required_plugins``, ``pytest_plugins``), and
  modules its conftest and test modules import, installed if still missing after the rest;
- CI and tox configuration for system packages (``apt-get install ...``) and setup steps
  (``tox`` ``commands_pre``, compile steps before the test command).

When later steps could replace the package under test (a requirement file that pins it, through
a docs dependency, say), the project is re-installed editable, without dependencies, last.
Overrides in the RepoSpec win over all of it.

Not for: running anything. This module only reads files, so it is cheap and fully testable.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from factory.schema import RepoSpec
from verifiers.discover import discover_suite, import_distribution, is_known_import

__all__ = ["InstallRecipe", "detect_install", "DEFAULT_TEST_CMD", "pkg_info_version", "tox_env_deps"]

DEFAULT_TEST_CMD = "python -m pytest"
_TEST_NAMES = ("test", "tests", "testing")
_DEV_NAMES = ("dev", "develop", "development")
_ALL_NAMES = ("all", "full")
_TEST_REQ_FILES = (
    "requirements-test.txt", "requirements_test.txt", "requirements-tests.txt", "test-requirements.txt",
    "test_requirements.txt", "requirements/test.txt", "requirements/tests.txt", "requirements/testing.txt",
    "requirements-testing.txt", "tests/requirements.txt", "test/requirements.txt",
)
# dev requirements (linters, docs, release tools: slow, and where a package pins itself) only without test ones
_DEV_REQ_FILES = ("requirements-dev.txt", "requirements_dev.txt", "dev-requirements.txt", "requirements/dev.txt")
_SCM_ENV = ("SETUPTOOLS_SCM_PRETEND_VERSION", "PDM_BUILD_SCM_VERSION", "HATCH_VCS_PRETEND_VERSION")
_NOT_TEST_ENVS = re.compile(r"(lint|flake|style|type|mypy|pyright|docs?|pep8|format|black|ruff|isort|check|"
                            r"build|release|publish|pre-?commit|cov(erage)?-?report|clean|bench|manifest|readme|"
                            r"spell|pylint|bandit|safety|audit|dev)$|^(docs?|lint|type|typing|mypy|coverage)", re.I)


@dataclass(frozen=True)
class InstallRecipe:
    commands: tuple[str, ...]
    detected_from: tuple[str, ...]
    test_cmd: str
    env: tuple[str, ...] = ()  # "KEY=VALUE" set for the install and the tests
    notes: tuple[str, ...] = field(default=(), compare=False)  # what detection decided, for the log


def detect_install(root: Path, spec: RepoSpec | None = None, *, python: str = "3.11") -> InstallRecipe:
    """The install recipe for the tree at ``root``; ``spec``'s overrides win."""
    spec = spec or RepoSpec(source=str(root))
    suite = discover_suite(root, tuple(spec.test_paths))
    test_cmd = spec.test_cmd or _test_cmd(suite)
    env = _scm_env(root)
    notes: list[str] = []
    if suite.extra_python_files:
        notes.append(f"suite in {', '.join(suite.test_files[:3])}: pytest told python_files "
                     f"{' '.join(suite.extra_python_files)}")
    if suite.missing_testpaths:
        notes.append(f"testpaths names missing folders: {', '.join(suite.missing_testpaths)}")
    if spec.install is not None:
        return InstallRecipe(tuple(spec.pre_install) + tuple(spec.install), ("repo spec",), test_cmd, env, tuple(notes))

    cmds: list[str] = []
    found: list[str] = []
    apt, setup_steps = _system_needs(root, found)
    if apt:
        cmds.append(_apt_soft(apt))
    cmds += list(spec.pre_install)
    extras: list[str] = []
    groups: list[str] = []
    installable = False

    if env:
        found.append(f"PKG-INFO version {env[0].split('=', 1)[1]}")
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
        groups += _pick(list(data.get("dependency-groups", {})), with_all=False)

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

    tox = tox_env_deps(root, python)
    extras += [e for e in tox.extras if installable]
    extras = list(dict.fromkeys(extras))
    if installable:
        target = "." + (f"[{','.join(extras)}]" if extras else "")
        cmds.append(f"python -m pip install -e {shlex.quote(target)}")
    n_project = len(cmds)
    for g in dict.fromkeys(groups):
        cmds.append(f"python -m pip install --group {shlex.quote(g)}")
        found.append(f"pyproject.toml [dependency-groups] {g}")

    tox_reqs = {tox.deps[i + 1] for i, d in enumerate(tox.deps) if d == "-r"}
    reqs = [r for r in _TEST_REQ_FILES if (root / r).is_file()] or [r for r in _DEV_REQ_FILES if (root / r).is_file()]
    for rel in reqs:
        if rel not in tox_reqs:  # tox's own deps install it below
            cmds.append(f"python -m pip install -r {shlex.quote(rel)}")
            found.append(rel)
    if not installable and (root / "requirements.txt").is_file():
        cmds.append("python -m pip install -r requirements.txt")
        found.append("requirements.txt")

    if tox.deps:
        cmds.append("python -m pip install " + " ".join(shlex.quote(d) for d in tox.deps))
        found.append(f"tox.ini [{tox.env}]" if tox.env else "tox.ini")
    notes += tox.notes
    nox_deps = _nox_deps(root)
    if nox_deps:
        cmds.append("python -m pip install " + " ".join(shlex.quote(d) for d in nox_deps))
        found.append("noxfile.py")
    if installable and len(cmds) > n_project:
        # A requirement file or group may have pulled the package itself from PyPI: ours goes last.
        cmds.append("python -m pip install --no-deps -e .")

    if suite.plugins:
        cmds.append(_soft_pip(suite.plugins, "pytest plugin"))
        found.append(f"{suite.config_file or 'conftest'} plugins: {', '.join(suite.plugins)}")
    pairs = [(m, import_distribution(m)) for m in suite.imports]
    # A guessed name is installed only where the project declares it somewhere (a requirement,
    # tox, CI): `import helper` from a helper module the sdist forgot must not fetch PyPI's "helper".
    declared = _declared_names(root)
    unsure = [m for m, d in pairs if d and not is_known_import(m) and _norm(d) not in declared]
    if unsure:
        notes.append(f"test imports not installed (no distribution known or declared): {', '.join(unsure)}")
    pairs = [(m, d) for m, d in pairs if d and d not in suite.plugins and d != "pytest" and m not in unsure]
    if pairs:
        cmds.append(_missing_imports(pairs))
        found.append(f"test imports: {', '.join(m for m, _ in pairs)}")
    for step in setup_steps:
        cmds.append(f"({step}) || echo 'taskfactory: setup step failed: '{shlex.quote(step)}")
    # pytest and coverage come with the base image; a repository's own pins above may change them.
    return InstallRecipe(tuple(cmds), tuple(found), test_cmd, env, tuple(notes))


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared_names(root: Path) -> set[str]:
    """Every distribution-like word in the files where projects declare dependencies."""
    files = [root / n for n in ("pyproject.toml", "setup.cfg", "setup.py", "tox.ini", "noxfile.py", "Pipfile",
                                "environment.yml")]
    files += list(root.glob("*requirements*.txt")) + list(root.glob("requirements/*.txt"))
    files += list(root.glob("*/requirements*.txt")) + list((root / ".github" / "workflows").glob("*.y*ml"))
    words: set[str] = set()
    for f in files:
        if f.is_file():
            words.update(_norm(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", f.read_text(errors="replace")))
    return words


def _test_cmd(suite) -> str:
    opts = suite.pytest_options()
    return f"{DEFAULT_TEST_CMD} {opts}" if opts else DEFAULT_TEST_CMD


def _pick(names: list[str], with_all: bool = True) -> list[str]:
    """The test-ish names (any with "test" in them); else dev-ish ones; else ``all``."""
    tests = [n for n in names if n.lower() in _TEST_NAMES or "test" in n.lower()]
    if tests:
        return tests
    dev = [n for n in names if n.lower() in _DEV_NAMES]
    return dev or ([n for n in names if n.lower() in _ALL_NAMES] if with_all else [])


def pkg_info_version(root: Path) -> str | None:
    """The version an sdist's ``PKG-INFO`` records (the real one, where git tags would give 0.1.dev1)."""
    p = root / "PKG-INFO"
    if not p.is_file():
        return None
    v = HeaderParser().parsestr(p.read_text(encoding="utf-8", errors="replace")).get("Version")
    return v.strip() if v and re.match(r"^[\w.+!-]+$", v.strip()) else None


def _scm_env(root: Path) -> tuple[str, ...]:
    v = pkg_info_version(root)
    if not v:
        return ()
    return tuple(f"{k}={v}" for k in _SCM_ENV) + ("POETRY_DYNAMIC_VERSIONING_BYPASS=" + v,)


# ---------------------------------------------------------------------------------------------
# tox: the environment that runs the tests, its factor-conditional deps and extras
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToxDeps:
    env: str = ""
    deps: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()  # setup commands before the test command (commands_pre and the like)


def _expand(envlist: str) -> list[str]:
    """tox envlist entries, braces expanded (``py{38,39}-{a,b}`` -> four names)."""
    out: list[str] = []
    for item in re.split(r"[\n,](?![^{]*\})", envlist):
        item = item.split("#", 1)[0].strip()
        if not item:
            continue
        parts = re.split(r"(\{[^}]*\})", item)
        choices = [[c.strip() for c in p[1:-1].split(",")] if p.startswith("{") else [p] for p in parts]
        out += ["".join(c) for c in itertools.product(*choices)]
    return out


def _factors_match(expr: str, factors: set[str]) -> bool:
    """tox's factor condition: alternatives by ',', factors within one by '-', '!' negates."""
    for alt in expr.split(","):
        alt = alt.strip()
        if not alt:
            continue
        ok = True
        for f in alt.split("-"):
            f = f.strip()
            neg = f.startswith("!")
            f = f.lstrip("!")
            if (f in factors) == neg:
                ok = False
                break
        if ok:
            return True
    return False


def _py_factors(python: str) -> set[str]:
    major, minor = python.split(".")[:2]
    return {f"py{major}{minor}", f"py{major}.{minor}", f"py{major}", "py", f"python{major}.{minor}"}


def _tox_config(root: Path) -> configparser.ConfigParser | None:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    path = root / "tox.ini"
    text = ""
    if path.is_file():
        text = path.read_text(encoding="utf-8", errors="replace")
    elif (root / "pyproject.toml").is_file():
        try:
            data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8", errors="replace"))
        except tomllib.TOMLDecodeError:
            data = {}
        legacy = data.get("tool", {}).get("tox", {}).get("legacy_tox_ini")
        text = legacy if isinstance(legacy, str) else ""
    if not text:
        return None
    try:
        cp.read_string(text)
    except configparser.Error:
        return None
    return cp


def tox_env_deps(root: Path, python: str = "3.11") -> ToxDeps:
    """Deps and extras of the tox environment that runs the tests, conditions evaluated for it."""
    cp = _tox_config(root)
    if cp is None or not cp.has_section("testenv"):
        return ToxDeps()
    envlist = _expand(cp.get("tox", "envlist", fallback="") if cp.has_section("tox") else "")
    candidates = [e for e in envlist if not _NOT_TEST_ENVS.search(e)]
    pyf = _py_factors(python)
    env = next((e for e in candidates if set(e.split("-")) & pyf), None) or \
        next((e for e in candidates if not any(re.fullmatch(r"py\d+(\.\d+)?t?|pypy\d*", f) for f in e.split("-"))),
             None) or f"py{python.replace('.', '')}"
    factors = set(env.split("-")) | pyf
    section = f"testenv:{env}" if cp.has_section(f"testenv:{env}") else "testenv"

    def value(key: str) -> str:
        if cp.has_option(section, key):
            return cp.get(section, key)
        return cp.get("testenv", key, fallback="")

    deps: list[str] = []
    notes: list[str] = []
    extras: list[str] = []
    for line in _conditional_lines(value("extras"), factors):
        extras += [x.strip() for x in re.split(r"[,\s]+", line) if x.strip() and "{" not in x]
    for line in _conditional_lines(_resolve_refs(cp, value("deps")), factors):
        if line.startswith("-r"):
            ref = line[2:].strip()
            if ref and "{" not in ref and (root / ref).is_file():
                deps.extend(["-r", ref])
            continue
        if line.startswith("-c"):
            ref = line[2:].strip()
            if ref and "{" not in ref and (root / ref).is_file():
                deps.extend(["-c", ref])
            continue
        if m := re.match(r"^(?:-e\s*)?\.(?:\[([^\]]+)\])?$", line):  # the project itself, maybe with extras
            extras += [x.strip() for x in (m.group(1) or "").split(",") if x.strip()]
            continue
        if re.match(r"^(git\+|hg\+|svn\+|https?://)", line) or " @ git+" in line or "@ https://github" in line:
            notes.append(f"tox dep {line[:80]!r} skipped: only PyPI is reachable")
            continue
        if "{" in line or line.startswith("-"):
            continue
        deps.append(line)
    commands = [c for c in _conditional_lines(value("commands_pre"), factors) if "{" not in c]
    return ToxDeps(env=env, deps=tuple(dict.fromkeys(deps)), extras=tuple(dict.fromkeys(extras)),
                   notes=tuple(notes), commands=tuple(commands))


def _resolve_refs(cp: configparser.ConfigParser, text: str) -> str:
    """``{[section]key}`` substitutions (one level), as tox would make them."""
    def sub(m: re.Match[str]) -> str:
        sec, key = m.group(1), m.group(2)
        return cp.get(sec, key, fallback="") if cp.has_section(sec) else ""
    return re.sub(r"\{\[([^\]]+)\]([\w-]+)\}", sub, text)


def _conditional_lines(text: str, factors: set[str]) -> list[str]:
    """Lines of a tox setting, with ``factors: value`` kept only where the condition holds."""
    out = []
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([!\w.,\s-]+):\s+(.*)$", line) or re.match(r"^([!\w.,-]+):(\S.*)$", line)
        if m and not re.match(r"^[A-Za-z0-9_.\-\[\]]+\s*(===|==|!=|>=|<=|~=|<|>)", line) and "://" not in m.group(1):
            if not _factors_match(m.group(1), factors):
                continue
            line = m.group(2).strip()
        out.append(line)
    return out


def _nox_deps(root: Path) -> list[str]:
    """pip arguments from the ``session.install(...)`` calls of the noxfile's test sessions.

    Read with ``ast``, not a regex, and only from sessions whose name says test (all sessions where
    none does): a noxfile also installs for lint, docs, typing and release sessions (jsonschema
    4.23's asks for mypy, twine, ruff, pyperf...), and its arguments are often expressions —
    ``REQUIREMENTS["docs"]``, ``f"{ROOT}[format]"``, a parametrized name — whose string parts are
    not requirements (the word ``docs`` went to pip and failed jsonschema's install). Only plain
    string arguments are taken; ``-r FILE`` is kept where the file exists; the project itself
    (``.``, ``-e .``) is installed elsewhere."""
    path = root / "noxfile.py"
    if not path.is_file():
        return []
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return []

    def _is_session(dec: ast.expr) -> bool:
        target = dec.func if isinstance(dec, ast.Call) else dec
        name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
        return name == "session"

    sessions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and any(map(_is_session, f.decorator_list))]
    chosen = [f for f in sessions if "test" in f.name.lower()] or sessions
    deps: list[tuple[str, ...]] = []  # ("name",) or ("-r", "file")
    for fn in chosen:
        arg0 = fn.args.args[0].arg if fn.args.args else "session"
        for call in ast.walk(fn):
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "install"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == arg0):
                continue
            args = list(call.args)
            for i, a in enumerate(args):
                if not (isinstance(a, ast.Constant) and isinstance(a.value, str)):
                    continue
                lit = a.value
                nxt = args[i + 1] if i + 1 < len(args) else None
                if lit in ("-r", "--requirement") and isinstance(nxt, ast.Constant) and isinstance(nxt.value, str):
                    if (root / nxt.value).is_file():
                        deps.append(("-r", nxt.value))
                    continue
                prev = args[i - 1] if i else None
                if isinstance(prev, ast.Constant) and prev.value in ("-r", "--requirement", "-c", "--constraint", "-e"):
                    continue
                if lit.startswith(("-", ".")) or "{" in lit or "/" in lit:
                    continue
                deps.append((lit,))
    return [arg for dep in dict.fromkeys(deps) for arg in dep]


# ---------------------------------------------------------------------------------------------
# System packages and setup steps from CI and tox; soft installs
# ---------------------------------------------------------------------------------------------

_APT = re.compile(r"apt(?:-get)?[ \t]+install[ \t]+((?:-\S+[ \t]+)*)((?:[\w.+\-]+|[ \t]+|\\\n)+)")
# (build_ext --inplace is not one: the editable install builds extensions in place already)
_SETUP = re.compile(r"(compile_catalog|compilemessages|msgfmt|pybabel\s+compile|make\s+(translations|locale|mo)\b)")


def _system_needs(root: Path, found: list[str]) -> tuple[list[str], list[str]]:
    """(Debian packages, setup commands) that CI workflows and tox declare."""
    apt: list[str] = []
    steps: list[str] = []
    for wf in sorted((root / ".github" / "workflows").glob("*.y*ml")) if (root / ".github").is_dir() else []:
        text = wf.read_text(encoding="utf-8", errors="replace")
        for m in _APT.finditer(text):
            pkgs = [p for p in re.split(r"[\s\\]+", m.group(2)) if re.fullmatch(r"[a-z0-9][a-z0-9.+-]+", p)]
            apt += pkgs
        for line in text.splitlines():
            line = line.strip().removeprefix("- ").removeprefix("run:").strip()
            if _SETUP.search(line) and "pytest" not in line:
                steps.append(line)
            elif m := _MAKE_RUN.match(line):
                steps += _make_steps_before_pytest(root, m.group(1))
    tox = tox_env_deps(root)
    steps += [c for c in tox.commands if _SETUP.search(c) or c.startswith(("python setup.py", "make"))]
    cp = _tox_config(root)
    if cp is not None and cp.has_section("testenv"):
        for c in _conditional_lines(cp.get("testenv", "commands", fallback=""), set()):
            if "pytest" in c or "{" in c:
                break
            if _SETUP.search(c):
                steps.append(c)
    if apt:
        found.append(f"CI apt packages: {' '.join(dict.fromkeys(apt))}")
    if steps:
        found.append(f"setup steps: {'; '.join(dict.fromkeys(steps))}")
    return list(dict.fromkeys(apt)), list(dict.fromkeys(steps))


# A CI line or recipe line that runs one target of the Makefile: `make X`, `$(MAKE) X`, `${MAKE} X`.
_MAKE_RUN = re.compile(r"^(?:make|\$\(MAKE\)|\$\{MAKE\})\s+([\w.-]+)\s*$")
# Recipe lines that are not set-up: checks, installs (detection has its own), cleaning, echo, and
# lines with make variables left after expansion.
_NOT_SETUP = re.compile(r"\b(pip|uv|poetry|pre-commit|ruff|flake8|black|isort|mypy|pylint|echo|rm|make|tox|nox)\b|"
                        r"\s-delete\b|\bgit\s+clean\b|\$[({]")
# A project's own environment runner before a command (holidays: `UV_RUN_CMD = uv run --no-sync`):
# the image's environment is the project's, so the command runs without it.
_RUNNER = re.compile(r"^(?:uv|poetry|pdm|hatch|pipenv|rye)\s+run(?:\s+--?[\w-]+(?:=\S+)?)*\s+")
_MAKE_VAR = re.compile(r"^([A-Za-z_][\w]*)\s*(?::=|::=|\?=|=)\s*(.*)$")
_MAKE_DEPTH = 4  # prerequisites and sub-makes followed this deep (and never in a cycle)


def _make_rules(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines) of a Makefile: explicit rules only (no patterns);
    blank and comment lines among a recipe's lines do not end it (GNU make). Simple variables the
    Makefile sets (``NAME = value``) are expanded in recipe lines, once, and a leading environment
    runner (``uv run``, ``poetry run``...) is dropped."""
    rules: dict[str, tuple[list[str], list[str]]] = {}
    variables: dict[str, str] = {}
    current: list[str] = []
    for raw in text.splitlines():
        if raw.startswith("\t"):
            for t in current:
                rules[t][1].append(raw.strip().lstrip("@-").strip())
            continue
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        if v := _MAKE_VAR.match(raw):
            variables.setdefault(v.group(1), v.group(2).strip())  # the first setting; ?= keeps it too
            current = []
            continue
        m = re.match(r"^([\w.\- /]+?)\s*::?(?!=)(.*)$", raw)
        if m is None or "%" in m.group(1) or m.group(1).startswith("."):
            current = []  # a variable, a directive, a pattern or special target
            continue
        current = m.group(1).split()
        prereqs = [p for p in m.group(2).split(";")[0].split("|")[0].split() if "$" not in p]
        for t in current:
            rules.setdefault(t, ([], []))[0].extend(prereqs)

    def expand(line: str) -> str:
        line = re.sub(r"\$[({](\w+)[)}]", lambda m: variables.get(m.group(1), m.group(0)), line)
        return _RUNNER.sub("", line)

    return {t: (prereqs, [expand(line) for line in recipe]) for t, (prereqs, recipe) in rules.items()}


def _make_steps_before_pytest(root: Path, target: str) -> list[str]:
    """What CI's ``make TARGET`` runs before pytest, when that target (or one it runs) runs pytest.

    holidays' CI runs ``make test``, whose recipe compiles the translation files
    (``scripts/l10n/generate_mo_files.py``) and then runs pytest: without that step, 193 of its
    tests fail on a clean tree. The walk goes in make's order: a target's prerequisites first, then
    its recipe, where ``make X`` / ``$(MAKE) X`` runs X's the same way, until the first pytest line.
    Lines that check, install, clean or print are left out, as are lines with make variables (their
    values are the Makefile's, not the shell's). A target that never reaches pytest gives nothing."""
    makefile = root / "Makefile"
    if not makefile.is_file():
        return []
    rules = _make_rules(makefile.read_text(encoding="utf-8", errors="replace"))
    steps: list[str] = []
    done: set[str] = set()

    def walk(t: str, depth: int) -> bool:
        """Collect t's set-up lines into steps; True once a pytest line is reached."""
        if t in done or t not in rules or depth > _MAKE_DEPTH:
            return False
        done.add(t)  # make runs a target once per invocation; this also ends cycles
        prereqs, recipe = rules[t]
        for p in prereqs:
            if walk(p, depth + 1):
                return True
        for line in recipe:
            if re.search(r"\bpytest\b", line):
                return True
            if m := _MAKE_RUN.match(line):
                if walk(m.group(1), depth + 1):
                    return True
            elif line and not line.startswith("#") and not _NOT_SETUP.search(line):
                steps.append(line)
        return False

    return steps if walk(target, 0) else []


def _apt_soft(pkgs: list[str]) -> str:
    names = " ".join(shlex.quote(p) for p in pkgs)
    return ("apt-get update -qq && for p in " + names + "; do apt-get install -y -qq --no-install-recommends \"$p\" "
            ">/dev/null || echo \"taskfactory: no Debian package $p\"; done; rm -rf /var/lib/apt/lists/*")


def _soft_pip(dists: tuple[str, ...], what: str) -> str:
    names = " ".join(shlex.quote(d) for d in dists)
    return (f"for d in {names}; do python -m pip install \"$d\" || echo \"taskfactory: could not install {what} $d\"; "
            "done")


def _missing_imports(pairs: list[tuple[str, str]]) -> str:
    """Install the distribution of each module the tests import that is still missing."""
    table = ",".join(f"{m!r}:{d!r}" for m, d in pairs)
    probe = (f"import importlib.util as u; t={{{table}}}; "
             "print(' '.join(sorted({d for m, d in t.items() if u.find_spec(m) is None})))")
    return (f"missing=$(python -c {shlex.quote(probe)}); for d in $missing; do python -m pip install \"$d\" "
            "|| echo \"taskfactory: could not install test import $d\"; done")
