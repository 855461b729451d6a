"""Find a Python suite where the project put it, and what its own pytest configuration asks for.

pytest's defaults (``test_*.py``, ``*_test.py``, recursing from the root) miss suites that live
in ``tests/test.py`` or a top-level ``tests.py``; a project's ``testpaths`` and ``python_files``
say where to look instead. This module reads the configuration pytest would read (the first of
``pytest.ini``, ``.pytest.ini``, ``pyproject.toml``, ``tox.ini``, ``setup.cfg`` that has a pytest
section), lists the test files that configuration finds, and, when it finds none, the extra
``python_files`` patterns that would (``tests.py``, ``test.py``, ``tests/*.py``).

It also reads what the suite needs installed: plugins named by ``addopts`` options (``--cov`` ->
pytest-cov), ``required_plugins``, ``pytest_plugins`` and the imports of ``conftest.py`` and the
test modules (top-level names that are neither the standard library nor the project's own).

Not for: running anything; this reads files only.
"""

from __future__ import annotations

import ast
import configparser
import fnmatch
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from verifiers.failures import PLUGIN_FOR_OPTION

__all__ = ["Suite", "discover_suite", "import_distribution", "is_known_import", "project_modules"]

_DEFAULT_FILES = ("test_*.py", "*_test.py")
_EXTRA_FILES = ("tests.py", "test.py", "test*.py")
_NORECURSE = {".git", ".tox", ".nox", "build", "dist", "node_modules", "venv", ".venv", "__pycache__", ".eggs",
              "site-packages", "docs", "doc"}

# import name -> distribution, where they differ (the common ones in test suites)
_DISTS = {
    "yaml": "PyYAML", "PIL": "Pillow", "dateutil": "python-dateutil", "bs4": "beautifulsoup4", "sklearn": "scikit-learn",
    "cv2": "opencv-python-headless", "attr": "attrs", "Crypto": "pycryptodome", "OpenSSL": "pyOpenSSL", "jwt": "PyJWT",
    "magic": "python-magic", "dotenv": "python-dotenv", "git": "GitPython", "serial": "pyserial", "usb": "pyusb",
    "zmq": "pyzmq", "google.protobuf": "protobuf", "pkg_resources": "setuptools", "setuptools": "setuptools",
    "_pytest": "pytest", "py": "py", "hamcrest": "PyHamcrest", "nose": "nose", "mock": "mock", "toml": "toml",
    "freezegun": "freezegun", "responses": "responses", "pytest_mock": "pytest-mock", "xdist": "pytest-xdist",
    "pytest_asyncio": "pytest-asyncio", "pytest_cov": "pytest-cov", "pytest_benchmark": "pytest-benchmark",
    "pytest_httpserver": "pytest-httpserver", "xprocess": "pytest-xprocess", "pytest_timeout": "pytest-timeout", "pytest_lazyfixture":
    "pytest-lazy-fixture", "pytest_lazy_fixtures": "pytest-lazy-fixtures", "pytest_subtests": "pytest-subtests",
    "typing_extensions": "typing-extensions", "importlib_metadata": "importlib-metadata", "importlib_resources":
    "importlib-resources", "msgpack": "msgpack", "jose": "python-jose", "multipart": "python-multipart",
    "docutils": "docutils", "markdown": "Markdown", "jinja2": "Jinja2", "markupsafe": "MarkupSafe",
    "trio": "trio", "anyio": "anyio", "hypothesis": "hypothesis", "numpy": "numpy", "testpath": "testpath",
    "pexpect": "pexpect", "ptyprocess": "ptyprocess", "flaky": "flaky", "parameterized": "parameterized",
    "ddt": "ddt", "testfixtures": "testfixtures", "sortedcontainers": "sortedcontainers", "dirty_equals": "dirty-equals",
    "inline_snapshot": "inline-snapshot", "syrupy": "syrupy", "pyfakefs": "pyfakefs", "time_machine": "time-machine",
    "coverage": "coverage", "tomli": "tomli", "tomli_w": "tomli-w", "pytz": "pytz", "simplejson": "simplejson",
    "ujson": "ujson", "six": "six", "wcwidth": "wcwidth", "pygments": "Pygments", "click": "click",
    "requests": "requests", "httpx": "httpx", "packaging": "packaging", "pyparsing": "pyparsing",
    "hamcrest_": "PyHamcrest", "lxml": "lxml", "psutil": "psutil", "tzdata": "tzdata", "zoneinfo": "",
    "backports": "", "pytest": "pytest", "test": "", "tests": "", "testing": "", "conftest": "",
    "exceptiongroup": "exceptiongroup", "pytest_randomly": "pytest-randomly", "pytest_django": "pytest-django",
    "aiohttp": "aiohttp", "uvloop": "uvloop", "pympler": "Pympler", "objgraph": "objgraph", "cffi": "cffi",
    "Cython": "Cython", "cython": "Cython", "sphinx": "Sphinx", "virtualenv": "virtualenv",
}
# pytest_plugins entries and `-p` names -> distribution (modules inside pytest itself need nothing)
_PLUGIN_MODULES = {
    "pytester": "", "_pytest.pytester": "", "pytest_mock": "pytest-mock", "xdist": "pytest-xdist",
    "pytest_asyncio": "pytest-asyncio", "anyio": "anyio", "trio": "pytest-trio", "pytest_trio": "pytest-trio",
    "pytest_httpserver": "pytest-httpserver", "pytest_cov": "pytest-cov", "pytest_benchmark": "pytest-benchmark",
    "hypothesis": "hypothesis", "pytest_timeout": "pytest-timeout", "pytest_randomly": "pytest-randomly",
    "pytest_subtests": "pytest-subtests", "pytest_django": "pytest-django", "pytest_lazyfixture": "pytest-lazy-fixture",
}


# pytest ini keys that only a plugin knows (pytest warns and ignores them, and the suite then runs
# without what it configured) -> the distribution
_PLUGIN_FOR_INI = {
    "asyncio_mode": "pytest-asyncio", "asyncio_default_fixture_loop_scope": "pytest-asyncio",
    "trio_mode": "pytest-trio", "trio_run": "pytest-trio", "timeout": "pytest-timeout",
    "timeout_method": "pytest-timeout", "DJANGO_SETTINGS_MODULE": "pytest-django",
    "django_find_project": "pytest-django", "mock_use_standalone_module": "pytest-mock", "env": "pytest-env",
    "mypy-": "pytest-mypy", "flake8-ignore": "pytest-flake8", "doctest_plus": "pytest-doctestplus",
    "doctest_rst": "pytest-doctestplus", "mpl-baseline-path": "pytest-mpl", "httpserver_listen_address":
    "pytest-httpserver", "reruns": "pytest-rerunfailures", "xfail_strict_plugin": "",
    "benchmark_disable": "pytest-benchmark", "faulthandler_timeout": "", "datadir": "pytest-datadir",
    "randomly_seed": "pytest-randomly", "console_output_style": "", "subtests": "pytest-subtests",
}


@dataclass(frozen=True)
class Suite:
    """Where the suite is and what its configuration needs."""

    config_file: str | None  # the file pytest reads its configuration from
    testpaths: tuple[str, ...]  # as configured (may name folders that do not exist)
    python_files: tuple[str, ...]  # the patterns pytest will use
    test_files: tuple[str, ...]  # the files those patterns find (posix, relative)
    extra_python_files: tuple[str, ...] = ()  # patterns to add so pytest finds a suite it would miss
    missing_testpaths: tuple[str, ...] = ()
    plugins: tuple[str, ...] = ()  # distributions the configuration needs (addopts, required_plugins, ...)
    imports: tuple[str, ...] = ()  # top-level modules the test code imports (not stdlib, not the project)

    @property
    def found(self) -> bool:
        return bool(self.test_files)

    def pytest_options(self) -> str:
        """Options that make pytest find the suite ("" when its own configuration does)."""
        if not self.extra_python_files:
            return ""
        return "-o " + shlex.quote("python_files=" + " ".join((*self.python_files, *self.extra_python_files)))


def pytest_ini(root: Path) -> tuple[str | None, dict[str, str]]:
    """(file, options) of the pytest configuration pytest itself would pick."""
    for name in ("pytest.ini", ".pytest.ini"):
        p = root / name
        if p.is_file():
            return name, _ini_section(p, "pytest")
    p = root / "pyproject.toml"
    if p.is_file():
        try:
            tool = tomllib.loads(p.read_text(encoding="utf-8", errors="replace")).get("tool", {})
        except tomllib.TOMLDecodeError:
            tool = {}
        section = tool.get("pytest", {})
        opts = section.get("ini_options", section) if isinstance(section, dict) else {}
        if isinstance(opts, dict) and opts:
            return "pyproject.toml", {k: " ".join(map(str, v)) if isinstance(v, list) else str(v) for k, v in opts.items()
                                      if not isinstance(v, dict)}
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        p = root / name
        if p.is_file():
            opts = _ini_section(p, section)
            if opts is not None and (opts or _has_section(p, section)):
                return name, opts
    return None, {}


def _has_section(path: Path, section: str) -> bool:
    return re.search(rf"^\[{re.escape(section)}\]", path.read_text(encoding="utf-8", errors="replace"), re.M) is not None


def _ini_section(path: Path, section: str) -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        cp.read_string(path.read_text(encoding="utf-8", errors="replace"))
    except configparser.Error:
        return {}
    return dict(cp[section]) if cp.has_section(section) else {}


def _walk(root: Path, start: Path):
    if start.is_file():
        yield start
        return
    if not start.is_dir():
        return
    for p in sorted(start.iterdir()):
        if p.is_dir():
            if p.name in _NORECURSE or p.name.startswith(".") or p.name.endswith(".egg-info"):
                continue
            yield from _walk(root, p)
        elif p.suffix == ".py":
            yield p


def _matching(root: Path, starts: list[Path], patterns: tuple[str, ...]) -> list[str]:
    out = []
    for s in starts:
        for p in _walk(root, s):
            if any(_matches(p, pat) for pat in patterns):
                out.append(p.relative_to(root).as_posix())
    return sorted(set(out))


def _matches(path: Path, pattern: str) -> bool:
    """pytest's rule for ``python_files``: a pattern with a path separator matches the end of the
    whole path (PyGithub 2.5.0: `python_files = "tests/*.py"`), any other the file name."""
    if "/" not in pattern:
        return fnmatch.fnmatch(path.name, pattern)
    return fnmatch.fnmatch(path.as_posix(), pattern if pattern.startswith("/") else f"*/{pattern}")


def project_modules(root: Path) -> set[str]:
    """Top-level import names the tree itself provides (packages and modules at the root or in src/),
    tests and helpers included: an import of one of them needs no distribution."""
    names: set[str] = set()
    for base in (root, root / "src", root / "lib"):
        if not base.is_dir():
            continue
        for p in base.iterdir():
            if p.is_dir() and (p / "__init__.py").is_file():
                names.add(p.name)
            elif p.suffix in (".py", ".pyx") and p.stem.isidentifier():
                names.add(p.stem)
            elif p.is_dir() and p.name.isidentifier() and any(p.glob("*.py")):
                names.add(p.name)  # namespace packages, test helper folders on rootdir's path
    for p in root.rglob("*"):  # modules and folders next to tests are importable as top-level names (rootdir insertion)
        if any(part in _NORECURSE for part in p.relative_to(root).parts):
            continue
        if p.is_dir() or p.suffix in (".py", ".pyx", ".c", ".pyi"):
            names.add(p.stem if p.is_file() else p.name)
    return names


# Python 2 module names that suites still import behind a version check
_PY2 = {"StringIO", "cStringIO", "UserDict", "UserList", "UserString", "Tkinter", "ConfigParser", "urllib2", "httplib",
        "cPickle", "Queue", "__builtin__", "copy_reg", "HTMLParser", "gdbm", "dbm", "anydbm", "whichdb", "dumbdbm",
        "cookielib", "Cookie", "urlparse", "thread", "commands", "sets", "exceptions", "htmlentitydefs", "repr",
        "SocketServer", "SimpleHTTPServer", "BaseHTTPServer", "xmlrpclib", "md5", "sha", "new", "imp", "asynchat",
        "asyncore", "distutils", "tkMessageBox", "ttk", "unittest2", "mock_py2"}


def _optional_nodes(tree: ast.AST) -> set[int]:
    """Import nodes a module can live without: inside ``try:`` blocks that catch ImportError (or
    anything), under ``if sys.version_info``/``PY2``-style tests, and in functions."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try):
            catches = [h.type for h in node.handlers]
            if any(t is None or "Error" in ast.unparse(t) or "Exception" in ast.unparse(t) for t in catches):
                optional.update(id(n) for b in node.body for n in ast.walk(b))
        elif isinstance(node, ast.If) and re.search(r"version|PY2|PY3|platform|sys\.", ast.unparse(node.test)):
            optional.update(id(n) for b in (*node.body, *node.orelse) for n in ast.walk(b))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            optional.update(id(n) for b in node.body for n in ast.walk(b) if isinstance(n, ast.Import | ast.ImportFrom))
    return optional


def _imports(paths: list[Path]) -> tuple[set[str], set[str]]:
    """(top-level names the files cannot do without, pytest_plugins entries). Imports that are
    optional (guarded, or in a function where ``pytest.importorskip`` usually sits) are left out:
    a suite skips those tests in a plain venv too."""
    names: set[str] = set()
    plugins: set[str] = set()
    for p in paths:
        try:
            tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        optional = _optional_nodes(tree)
        for node in ast.walk(tree):
            if id(node) in optional and isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytest_plugins"
                                                      for t in node.targets):
                val = node.value
                elts = val.elts if isinstance(val, ast.List | ast.Tuple) else [val]
                plugins.update(e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    return names, plugins


def _coverage_plugins(root: Path) -> list[str]:
    """Distributions of coverage.py plugins the coverage config loads (``Cython.Coverage`` -> Cython):
    with pytest-cov active, a missing one stops the session."""
    mods: list[str] = []
    for name, section in ((".coveragerc", "run"), ("setup.cfg", "coverage:run"), ("tox.ini", "coverage:run")):
        mods += _ini_section(root / name, section).get("plugins", "").split() if (root / name).is_file() else []
    pp = root / "pyproject.toml"
    if pp.is_file():
        try:
            run = tomllib.loads(pp.read_text(encoding="utf-8", errors="replace")).get("tool", {}).get("coverage", {})
            mods += list(run.get("run", {}).get("plugins", []))
        except (tomllib.TOMLDecodeError, AttributeError):
            pass
    return [import_distribution(m.split(".")[0]) for m in mods if m.split(".")[0]]


def _mentions_trio_backend(paths: list[Path]) -> bool:
    for p in paths:
        try:
            text = p.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "anyio_backend" in text and "trio" in text:
            return True
    return False


def is_known_import(name: str) -> bool:
    """Whether our table names the distribution of module ``name`` (else it is a guess)."""
    return name in _DISTS


def import_distribution(name: str) -> str:
    """The distribution that provides top-level module ``name`` (our table, else the same name);
    "" for names that need nothing."""
    return _DISTS.get(name, name.replace("_", "-"))


def _option_plugins(addopts: str) -> list[str]:
    try:
        args = shlex.split(addopts)
    except ValueError:
        args = addopts.split()
    out = []
    for i, a in enumerate(args):
        key = a.split("=", 1)[0]
        if a == "-p" and i + 1 < len(args):
            out.append(_PLUGIN_MODULES.get(args[i + 1], ""))
        elif key in PLUGIN_FOR_OPTION:
            out.append(PLUGIN_FOR_OPTION[key])
        elif key.startswith("--cov"):
            out.append("pytest-cov")
        elif key.startswith("--benchmark"):
            out.append("pytest-benchmark")
    return out


def discover_suite(root: Path, test_paths: tuple[str, ...] = ()) -> Suite:
    """The suite under ``root`` as pytest would see it, and how to make pytest see it when it would not."""
    cfg_file, ini = pytest_ini(root)
    testpaths = tuple(test_paths) or tuple(ini.get("testpaths", "").split())
    python_files = tuple(ini.get("python_files", "").split()) or _DEFAULT_FILES
    existing = [t for t in testpaths if any(root.glob(t))]
    missing = tuple(t for t in testpaths if t not in existing)
    starts = [p for t in existing for p in sorted(root.glob(t))] or [root]
    files = _matching(root, starts, python_files)
    extra: tuple[str, ...] = ()
    if not files:
        for pats in (("tests.py", "test.py"), ("test*.py",)):
            found = _matching(root, starts, pats)
            if found:
                files, extra = found, pats
                break
        if not files:
            tests_dirs = [s / d for s in starts for d in ("tests", "test") if (s / d).is_dir()] + \
                [s for s in starts if s.name in ("tests", "test")]
            found = sorted({p.relative_to(root).as_posix() for d in tests_dirs for p in _walk(root, d)
                            if p.name not in ("__init__.py", "conftest.py")})
            if found:
                files, extra = found, ("*.py",)

    plugins = _option_plugins(ini.get("addopts", ""))
    plugins += [r for r in ini.get("required_plugins", "").split() if r]
    plugins += [_PLUGIN_FOR_INI[k] for k in ini if _PLUGIN_FOR_INI.get(k)]
    if "pytest-cov" in plugins:
        plugins += _coverage_plugins(root)
    conftests = [p for p in root.rglob("conftest.py") if not any(part in _NORECURSE for part in p.relative_to(root).parts)]
    names, plugin_mods = _imports(conftests + [root / f for f in files])
    if _mentions_trio_backend(conftests + [root / f for f in files]):
        names.add("trio")  # anyio's backend parametrisation runs each test under trio too
    plugins += [_PLUGIN_MODULES.get(m, "") for m in plugin_mods if m.split(".")[0] not in project_modules(root)]
    own = project_modules(root)
    std = set(sys.stdlib_module_names) | {"__future__"} | _PY2
    imports = sorted(n for n in names if n not in std and n not in own and import_distribution(n))
    return Suite(config_file=cfg_file, testpaths=testpaths, python_files=python_files, test_files=tuple(files),
                 extra_python_files=extra, missing_testpaths=missing,
                 plugins=tuple(dict.fromkeys(p for p in plugins if p)), imports=tuple(imports))
