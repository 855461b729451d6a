"""pytest plugin baked into every environment image: a structured report of one test session.

Loaded with ``-p tf_report``. Writes JSON lines to ``$TF_REPORT`` (nothing when unset):

    {"type": "collected", "nodeids": [...]}                 after collection, exact node ids
    {"type": "collect_error", "nodeid": ..., "message": ...}
    {"type": "test", "nodeid": ..., "outcome": ..., "duration": ..., "message": ...}
    {"type": "coverage", "files": {path: {line: [nodeid, ...]}}, "tracer": ...}   when $TF_COVERAGE is set
                                 (node id "<outside tests>": the line ran at import, collection
                                 or between tests; test files are not measured)
    {"type": "finish", "exitstatus": N}

Outcomes merge the setup/call/teardown phases the way a reader expects: a failing setup or
teardown is ``error``, ``xfail``/``xpass`` are reported as such. Console text is never parsed.
This file runs inside the sandbox, under the repository's own Python: it imports only the
standard library, pytest, and (for coverage) coverage.py.

**Guard mode** (grading; ``$TF_GUARD_KEY`` names a file holding a one-time key). The grader
copies this file under a random module name, so nothing in ``/testbed`` can shadow it, and hands
it a key that it reads and deletes at import, before any project code runs. Then:

- every record carries ``mac``, an HMAC chained over all records before it, and ``finish``
  carries the record count: a line written by anyone else, or a line dropped, breaks the chain;
- the objects that collect, run and report tests (``_pytest``, ``pluggy``, ``unittest``'s
  ``TestCase``, ``pytest``'s namespace, this plugin) are snapshotted by identity at import and
  compared at every phase of every test and at the end; plugins registered later must be
  start-state conftests (``$TF_GUARD_CONFTESTS``: their SHA-256) or come from outside
  ``/testbed``; hook implementations are compared too;
- the test body's own exception is recorded by a hook wrapper, so a report that says "passed"
  for a call that raised is caught even if the forger restores what it replaced;
- a Python audit hook (which cannot be removed) records ``__code__`` swaps on pytest, unittest
  or test functions, writes to bytecode, conftest, config or ``.py`` files under ``/testbed``,
  and any touch of the report's directory;
- ``{"type": "guard", "events": [...]}`` precedes ``finish``: empty means nothing was seen.

What it cannot stop is code that reads this module's memory to forge a signed report (ctypes,
``gc``): the static screen (``verifiers.screen``) flags such patches for a person to look at.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import sys
import types

import pytest

_OUT = os.environ.pop("TF_REPORT", None) if os.environ.get("TF_GUARD_KEY") else os.environ.get("TF_REPORT")
_state: dict = {"fh": None, "tests": {}, "cov": None, "root": None}


def _emit(record: dict) -> None:
    fh = _state["fh"]
    if fh is None:
        return
    guard = _GUARD
    if guard is not None:
        guard.count += 1
        body = json.dumps(record, sort_keys=True)
        guard.mac = hmac.new(guard.key, (guard.mac + body).encode(), hashlib.sha256).hexdigest()
        record = {**record, "mac": guard.mac}
    fh.write(json.dumps(record) + "\n")
    fh.flush()


def _message(report) -> str:
    rep = getattr(report, "longrepr", None)
    if rep is None:
        return ""
    crash = getattr(rep, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:2000]
    text = str(rep)
    return text[-2000:]


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if not _OUT:
        return
    if _state["fh"] is None:
        _state["fh"] = open(_OUT, "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
    _state["root"] = str(config.rootpath)
    if os.environ.get("TF_COVERAGE"):
        _state["cov"] = _start_coverage(_state["root"])


# -- the coverage map ------------------------------------------------------------------------------
# Which tests execute which lines of the package, for the mutators and for test selection. What
# keeps it cheap (docs/validation.md; measured in bench/RESULTS.md, #21): coverage.py's C tracer;
# test files are not measured (nothing reads their lines, and tracing them costs time); one context
# switch per test; and the tracer's line sets kept per test in plain dicts (``_LinesByContext``)
# instead of coverage.py's SQLite data, which writes a row per test and file at every switch (on
# python-dateutil that alone took the run from 1.9x to 2.3x a plain run's CPU time).

_OUTSIDE_TESTS = "<outside tests>"  # verifiers.attribution.OUTSIDE_TESTS: import, collection, between tests
_TEST_GLOBS = ("*/tests/*", "*/test/*", "*/testing/*", "*/test_*.py", "*_test.py", "*/conftest.py")  # factory.repo


class _LinesByContext:
    """Stands in for coverage.py's ``CoverageData`` as its collector's sink: at each context switch
    the collector hands over the lines run since the last one, which are kept per context here.

    The collector calls three methods of its data object while it runs (``set_context``,
    ``add_lines``, ``add_file_tracers``); anything else it asks for is a coverage.py this sink
    does not know, and raises, so the plugin's fallback (coverage's own data) is what a future
    version would need."""

    def __init__(self):
        self.context = ""
        self.lines: dict = {}  # context -> measured file -> set of line numbers

    def set_context(self, context):
        self.context = context or ""

    def add_lines(self, line_data):
        per_file = self.lines.setdefault(self.context, {})
        for path, linenos in line_data.items():
            per_file.setdefault(path, set()).update(linenos)

    def add_file_tracers(self, _file_tracers):
        pass  # no coverage plugins (config_file=False): every file is Python source

    def __getattr__(self, name):
        raise AttributeError(f"coverage.py asked its data for {name!r}, which the map's sink does not keep")


class _MonitoringLines:
    """Python 3.12+: the per-test line sets from ``sys.monitoring`` (PEP 669), not a trace function.

    A map needs each line once per test, not every time it runs. Each LINE event is disabled at its
    location once it has fired (``DISABLE``) and everything is re-armed at each test switch
    (``restart_events``), so a test pays once per distinct line it runs, where a tracer (coverage's
    C tracer; on 3.12+ ``sys.settrace`` itself runs on this machinery) pays on every execution of
    every line: loops in the package cost nothing after their first pass. coverage.py's own
    ``sysmon`` core does the disabling but never re-arms, so it cannot keep per-test contexts (a
    line run by two tests is credited to the first).

    Which files: those under the rootdir and outside the test globs, as coverage.py is told
    (``source=[root]``, ``omit=_TEST_GLOBS``), decided once per file at a code object's first
    start. Threads are measured too (monitoring is per interpreter). Uses a free tool id (4 or 3:
    never coverage.py's 1, which a suite's own pytest-cov may want); ``available()`` says whether
    one is free."""

    _TOOLS = (4, 3)

    @classmethod
    def available(cls) -> bool:
        mon = getattr(sys, "monitoring", None)
        return mon is not None and any(mon.get_tool(t) is None for t in cls._TOOLS)

    def __init__(self, root: str):
        import fnmatch

        mon = sys.monitoring
        self._mon = mon
        self._tool = next(t for t in self._TOOLS if mon.get_tool(t) is None)
        self._prefix = root.rstrip("/") + "/"
        self._omit = lambda path: any(fnmatch.fnmatch(path, g) for g in _TEST_GLOBS)
        self.context = ""
        self.lines: dict = {}  # context -> measured file -> set of line numbers (as _LinesByContext)
        self._now: dict = {}  # this context's lines so far: file -> set
        self._measured: dict = {}  # file -> whether it is measured
        self._codes: set = set()  # code objects given LINE events (cleared at stop)
        self._stopped = False
        mon.use_tool_id(self._tool, "taskfactory map")
        mon.register_callback(self._tool, mon.events.PY_START, self._on_start)
        mon.register_callback(self._tool, mon.events.LINE, self._on_line)
        mon.set_events(self._tool, mon.events.PY_START)

    def _on_start(self, code, _offset):
        path = code.co_filename
        measured = self._measured.get(path)
        if measured is None:
            measured = self._measured[path] = path.startswith(self._prefix) and not self._omit(path)
        if measured and code not in self._codes:
            self._codes.add(code)
            self._mon.set_local_events(self._tool, code, self._mon.events.LINE)
        return self._mon.DISABLE

    def _on_line(self, code, line):
        got = self._now.get(code.co_filename)
        if got is None:
            got = self._now[code.co_filename] = set()
        got.add(line)
        return self._mon.DISABLE

    def _flush(self) -> None:
        if self._now:
            per_file = self.lines.setdefault(self.context, {})
            for path, nums in self._now.items():
                per_file.setdefault(path, set()).update(nums)
            self._now = {}

    def switch_context(self, context: str) -> None:
        if self._stopped:
            return
        self._flush()
        self.context = context or ""
        self._mon.restart_events()  # every line fires again, once, for the next test

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        mon = self._mon
        mon.set_events(self._tool, 0)
        for code in self._codes:
            mon.set_local_events(self._tool, code, 0)
        mon.register_callback(self._tool, mon.events.PY_START, None)
        mon.register_callback(self._tool, mon.events.LINE, None)
        mon.free_tool_id(self._tool)
        self._flush()


def _start_coverage(root: str):
    # TF_COVERAGE_CORE=coverage keeps coverage.py's tracer on 3.12+ (bench/coverage_run.py compares them).
    if os.environ.get("TF_COVERAGE_CORE", "monitoring") == "monitoring" and _MonitoringLines.available():
        return _MonitoringLines(root)
    return _start_coverage_py(root)


def _start_coverage_py(root: str):
    import tempfile

    import coverage

    data_file = os.path.join(tempfile.mkdtemp(prefix="tf-coverage-"), "coverage.sqlite")
    cov = coverage.Coverage(data_file=data_file, source=[root], omit=list(_TEST_GLOBS), branch=False,
                            config_file=False)
    cov.start()
    collector = getattr(cov, "_collector", None)
    if collector is not None and not collector.branch and hasattr(collector, "covdata"):
        collector.covdata = _LinesByContext()
    return cov


def _coverage_files(cov, root: str) -> dict:
    """path (relative to ``root``) -> line -> sorted node ids that ran it."""
    cov.stop()
    collector = getattr(cov, "_collector", None)
    sink = getattr(collector, "covdata", None)
    if isinstance(cov, _MonitoringLines):
        rows = ((path, ctx, nums) for ctx, files in cov.lines.items() for path, nums in files.items())
    elif isinstance(sink, _LinesByContext):
        collector.flush_data()  # what ran since the last switch
        rows = ((path, ctx, nums) for ctx, files in sink.lines.items() for path, nums in files.items())
    else:
        rows = _coverage_rows(cov)
    prefix = root.rstrip("/") + "/"
    lines: dict = {}
    for path, ctx, nums in rows:
        if not path.startswith(prefix):
            continue
        by_line = lines.setdefault(path[len(prefix):], {})
        for n in nums:
            by_line.setdefault(str(n), set()).add(ctx or _OUTSIDE_TESTS)
    return {f: {n: sorted(ids) for n, ids in ls.items()} for f, ls in lines.items() if ls}


def _coverage_rows(cov):
    """(path, context, lines) from coverage.py's own SQLite data, read in one query (asking
    ``contexts_by_lineno`` file by file scans the context table every time)."""
    import sqlite3

    from coverage.numbits import numbits_to_nums

    cov.save()
    con = sqlite3.connect(cov.get_data().data_filename())
    try:
        rows = con.execute("SELECT file.path, context.context, line_bits.numbits FROM line_bits "
                           "JOIN file ON file.id = line_bits.file_id JOIN context ON context.id = line_bits.context_id")
        return [(path, ctx, numbits_to_nums(bits)) for path, ctx, bits in rows]
    finally:
        con.close()


def pytest_collectreport(report):
    if report.failed:
        _emit({"type": "collect_error", "nodeid": report.nodeid, "message": _message(report)})


_SELECT = os.environ.pop("TF_SELECT", None)
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_id(nodeid: str) -> str:
    """A node id with object addresses masked: parametrized ids built from an object's repr
    (``<Obj object at 0x7f...>``) differ between processes; the test does not."""
    return _ADDRESS.sub(" at 0x?", nodeid)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    """``$TF_SELECT`` (a file of node ids): keep only those tests, in the suite's own order.

    Grading passes the selected tests' files and this list instead of the node ids themselves:
    pytest runs node ids in the order they are given, and a suite whose tests depend on their
    order (one test leaves module state behind that a later-defined test relies on not seeing)
    then fails where the full suite passes."""
    if not _SELECT:
        return
    with open(_SELECT, encoding="utf-8") as fh:
        wanted = {stable_id(line.rstrip("\n")) for line in fh if line.strip()}
    keep = [i for i in items if stable_id(i.nodeid) in wanted]
    drop = [i for i in items if stable_id(i.nodeid) not in wanted]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_collection_finish(session):
    if _GUARD is not None:
        _GUARD.after_collection(session)
    _emit({"type": "collected", "nodeids": [item.nodeid for item in session.items]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = _state["cov"]
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    if cov is not None and nextitem is None:  # nothing runs between one test's protocol and the next's
        cov.switch_context("")
    rec = _state["tests"].pop(item.nodeid, None)
    if rec is not None:
        _emit({"type": "test", **rec})


@pytest.hookimpl(hookwrapper=True, trylast=True)
def pytest_runtestloop(session):
    # Coverage collectors nest: the one started last must stop first. pytest-cov (a suite with
    # --cov in addopts) starts its collector before ours and stops it when the test loop ends,
    # asserting that it is the innermost one; stopping ours here, inside its wrapper, keeps that
    # order (else the session ends in an INTERNALERROR, exit 3: parse 1.22.4, semver 3.2.0).
    yield
    cov = _state["cov"]
    if cov is not None:
        cov.stop()


def pytest_runtest_logreport(report):
    if _GUARD is not None:
        _GUARD.on_report(report)
    rec = _state["tests"].setdefault(
        report.nodeid, {"nodeid": report.nodeid, "outcome": "passed", "duration": 0.0, "message": ""}
    )
    rec["duration"] += float(getattr(report, "duration", 0.0) or 0.0)
    wasxfail = hasattr(report, "wasxfail")
    if report.when == "call":
        if wasxfail:
            rec["outcome"] = "xfail" if report.skipped else "xpass"
        elif report.failed:
            rec["outcome"] = "failed"
        elif report.skipped:
            rec["outcome"] = "skipped"
        if report.failed or report.skipped:  # a skip's reason too: the baseline's truth checks count them
            rec["message"] = _message(report)
    elif report.failed:  # setup or teardown broke
        rec["outcome"] = "error"
        rec["message"] = _message(report)
    elif report.skipped and report.when == "setup":
        rec["outcome"] = "xfail" if wasxfail else "skipped"
        rec["message"] = _message(report)


def pytest_sessionfinish(session, exitstatus):
    # Results of tests whose protocol never completed (interrupted sessions) still count.
    for rec in list(_state["tests"].values()):
        _emit({"type": "test", **rec})
    _state["tests"].clear()
    cov = _state["cov"]
    if cov is not None:
        tracer = "monitoring" if isinstance(cov, _MonitoringLines) else "coverage.py"
        _emit({"type": "coverage", "files": _coverage_files(cov, _state["root"]), "tracer": tracer})
        _state["cov"] = None
    if _GUARD is not None:
        _GUARD.check("at the end of the session", full=True)
        _emit({"type": "guard", "events": _GUARD.events[:200]})
        _emit({"type": "finish", "exitstatus": int(exitstatus), "records": _GUARD.count + 1})
    else:
        _emit({"type": "finish", "exitstatus": int(exitstatus)})


def pytest_unconfigure(config):
    fh = _state["fh"]
    if fh is not None:
        fh.close()
        _state["fh"] = None


# ---------------------------------------------------------------------------------------------
# Guard mode (grading)
# ---------------------------------------------------------------------------------------------

_MISSING = object()
_HOT_HOOKS = ("pytest_runtest_protocol", "pytest_runtest_setup", "pytest_runtest_call", "pytest_runtest_teardown",
              "pytest_runtest_makereport", "pytest_runtest_logreport", "pytest_pyfunc_call",
              "pytest_report_teststatus", "pytest_runtest_logstart", "pytest_runtest_logfinish",
              "pytest_assertrepr_compare", "pytest_fixture_setup", "pytest_runtestloop")
# What decides one test's outcome, checked at every test's deciding report (None: the whole
# module; a tuple: only those names). Everything else under _pytest/pluggy/unittest is checked
# before the session, after collection and at the end.
_HOT = {"_pytest.runner": None, "_pytest.reports": ("BaseReport", "TestReport"), "_pytest.outcomes": None,
        "_pytest.python": ("Function", "pytest_pyfunc_call"), "_pytest.unittest": ("TestCaseFunction",),
        "_pytest.skipping": ("pytest_runtest_makereport", "evaluate_xfail_marks", "evaluate_skip_marks"),
        "pluggy._callers": None, "pluggy._hooks": ("HookCaller", "HookImpl"), "pluggy._result": None,
        "unittest.case": ("TestCase", "_Outcome"),
        "pytest": ("raises", "approx", "fail", "skip", "xfail", "warns", "exit", "importorskip"), __name__: None}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_CONFIG_NAMES = ("conftest.py", "sitecustomize.py", "usercustomize.py", "pytest.ini", ".pytest.ini", "tox.ini",
                 "setup.cfg", "pyproject.toml")
_PATH_EVENTS = ("os.remove", "os.rename", "os.truncate", "os.chmod", "os.link", "os.symlink", "os.utime",
                "os.rmdir", "os.listdir", "os.scandir", "shutil.rmtree", "shutil.move", "shutil.copyfile")
_EXEC_EVENTS = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn")


def _judging(value) -> bool:
    """Functions, classes and descriptors judge; data (counters, caches, per-test slots) does not."""
    return callable(value) or isinstance(value, (property, staticmethod, classmethod))


def _from_pytest(value) -> bool:
    fn = getattr(value, "__func__", value)
    src = getattr(getattr(fn, "__code__", None), "co_filename", "")
    return os.path.dirname(src).startswith(_PYTEST_DIR) and (getattr(fn, "__module__", "") or "").startswith("_pytest")


_PYTEST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(pytest.__file__))) + "/_pytest"


def _watched(name: str) -> bool:
    # unittest.mock judges nothing (and its objects answer every attribute, ``__code__`` too).
    return (name in ("pytest", __name__) or name.startswith(("_pytest", "pluggy", "unittest"))) and not name.startswith(
        "unittest.mock")


def _code_of(value):
    """A real function's code object (None for anything else: never ask an object for ``__code__``,
    which some answer with a fresh object every time)."""
    fn = value.__func__ if isinstance(value, (staticmethod, classmethod, types.MethodType)) else value
    return fn.__code__ if isinstance(fn, types.FunctionType) else None


class _Guard:
    """Snapshots of what judges the tests, compared at every checkpoint; see the module docstring."""

    def __init__(self, key: bytes, report_path: str, conftests: frozenset[str]) -> None:
        self.key, self.mac, self.count = key, "", 0
        self.report_dir = os.path.dirname(os.path.abspath(report_path)) + "/"
        self.conftests = conftests
        self.events: list[str] = []
        self._seen: set[str] = set()
        self.full = self._snapshot(lambda name: _watched(name))
        self.hot = self._snapshot(lambda name: name in _HOT, _HOT)
        self.modules = {n: m for n, m in sys.modules.items() if _watched(n)}
        self.manager = None
        self.impls: dict[int, tuple] = {}
        self.raised: dict[str, str] = {}
        self.codes: dict[str, object] = {}
        self.test_files: set[str] = set()
        self.armed = False

    # -- records -------------------------------------------------------------------------------

    def flag(self, what: str) -> None:
        """Record a finding once: the first checkpoint that saw it says where."""
        key = what.split(" (", 1)[0]
        if key not in self._seen and len(self.events) < 1000:
            self._seen.add(key)
            self.events.append(what)

    # -- identity snapshots ----------------------------------------------------------------------

    @staticmethod
    def _snapshot(want, only: dict | None = None) -> list[tuple]:
        out = []
        for mname, mod in list(sys.modules.items()):
            if mod is None or not want(mname):
                continue
            d = getattr(mod, "__dict__", None)
            if not isinstance(d, dict):
                continue
            names = (only or {}).get(mname)
            for k, v in list(d.items()):
                if (k.startswith("__") and k != "__import__") or not _judging(v) or (names and k not in names):
                    continue
                out.append((d, f"{mname}.{k}", k, v, v, _code_of(v)))
                if isinstance(v, type) and getattr(v, "__module__", "") == mname:
                    cd = v.__dict__
                    for ck, cv in list(cd.items()):
                        if ck in ("__dict__", "__weakref__", "__doc__", "__annotations__", "_abc_impl") or not _judging(cv):
                            continue
                        fn = getattr(cv, "__func__", cv) if isinstance(cv, (staticmethod, classmethod)) else cv
                        out.append((cd, f"{mname}.{k}.{ck}", ck, cv, fn, _code_of(fn)))
        return out

    def _compare(self, snap: list[tuple], where: str, pytest_may_patch: bool = False) -> None:
        missing = _MISSING
        for d, label, k, v, fn, code in snap:
            now = d.get(k, missing)
            if now is not v:
                if pytest_may_patch and _from_pytest(now):
                    continue
                self.flag(f"{label} was {'deleted' if now is missing else 'replaced'} ({where})")
            elif code is not None and _code_of(fn) is not code:
                self.flag(f"{label}'s code was replaced ({where})")

    def _record_impls(self, plugin=None) -> None:
        """Remember hook implementations by identity: all of them, or one accepted plugin's."""
        hook = self.manager.hook
        for name in dir(hook):
            caller = getattr(hook, name, None)
            if not name.startswith("pytest_") or caller is None or not hasattr(caller, "get_hookimpls"):
                continue
            for impl in caller.get_hookimpls():
                if plugin is None or impl.plugin is plugin:
                    self.impls[id(impl)] = (impl, impl.function, getattr(impl.function, "__code__", None))

    def _check_impls(self, names, where: str) -> None:
        hook = self.manager.hook
        for name in names:
            caller = getattr(hook, name, None)
            if caller is None or not hasattr(caller, "get_hookimpls"):
                continue
            for impl in caller.get_hookimpls():
                known = self.impls.get(id(impl))
                if known is None or known[0] is not impl:
                    self.flag(f"hook {name} gained an implementation from plugin {impl.plugin_name} ({where})")
                elif impl.function is not known[1] or getattr(impl.function, "__code__", None) is not known[2]:
                    self.flag(f"the implementation of hook {name} by plugin {impl.plugin_name} was replaced ({where})")

    def rebase(self) -> None:
        """At session start: pytest's own plugins patch each other while configuring (legacypath
        sets ``Config._getini_unknown_type``); what they set is kept, anything else was flagged."""
        self.check("before the session", full=True, pytest_may_patch=True)
        self.full = self._snapshot(lambda name: _watched(name))
        self.hot = self._snapshot(lambda name: name in _HOT, _HOT)

    def check(self, where: str, full: bool = False, pytest_may_patch: bool = False) -> None:
        self._compare(self.full if full else self.hot, where, pytest_may_patch)
        for name, mod in self.modules.items():
            if sys.modules.get(name, mod) is not mod:
                self.flag(f"sys.modules[{name!r}] was replaced ({where})")
        if self.manager is not None:
            names = [n for n in dir(self.manager.hook) if n.startswith("pytest_")] if full else _HOT_HOOKS
            self._check_impls(names, where)
            if not self.manager.is_registered(sys.modules[__name__]):
                self.flag(f"the grader's report plugin was unregistered ({where})")

    # -- plugins -------------------------------------------------------------------------------

    def on_plugin(self, plugin, name: str) -> None:
        """A plugin registered after this one: a start-state conftest, or code from outside /testbed.
        An accepted plugin's hook implementations join the known ones."""
        if self._plugin_ok(plugin, name):
            self._record_impls(plugin)

    def _plugin_ok(self, plugin, name: str) -> bool:
        if type(plugin).__name__ == "module":
            path = getattr(plugin, "__file__", None) or ""
        else:
            path = getattr(sys.modules.get(type(plugin).__module__), "__file__", None) or ""
        if not path.startswith("/testbed/"):
            return True
        if os.path.basename(path) == "conftest.py":
            try:
                with open(path, "rb") as fh:
                    digest = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                digest = ""
            if digest in self.conftests:
                return True
            self.flag(f"a conftest that is not in the task's start state was registered: {path[9:]}")
            return False
        self.flag(f"code under /testbed registered a pytest plugin: {name} ({path[9:]})")
        return False

    # -- checkpoints -----------------------------------------------------------------------------

    def after_collection(self, session) -> None:
        self.check("after collection", full=True)
        for item in session.items:
            fn = getattr(item, "function", None) or getattr(item, "obj", None)
            code = getattr(fn, "__code__", None)
            if code is not None:
                self.codes[item.nodeid] = code
            path = str(getattr(item, "path", "") or "")
            if path:
                self.test_files.add(path)
            mod = getattr(item, "module", None)
            loader = getattr(mod, "__loader__", None)
            if mod is not None and type(loader).__module__ not in ("_pytest.assertion.rewrite",
                                                                   "importlib._bootstrap_external",
                                                                   "_frozen_importlib_external"):
                self.flag(f"test module {mod.__name__} was loaded by {type(loader).__module__}."
                          f"{type(loader).__name__}, not pytest's importer")

    def on_call(self, item, excinfo) -> None:
        if excinfo is not None:
            exc = excinfo[1]
            if type(exc).__name__ not in ("Skipped", "XFailed"):
                self.raised[item.nodeid] = type(exc).__name__
        code = self.codes.get(item.nodeid)
        fn = getattr(item, "function", None) or getattr(item, "obj", None)
        if code is not None and getattr(fn, "__code__", None) is not code:
            self.flag(f"the code of test {item.nodeid} was replaced")

    def on_report(self, report) -> None:
        """Once per test, at the report that decides it (the call's, or a setup that did not pass):
        a replacement made earlier is still in place; one that restores itself is caught by
        comparing the report with what the test body raised."""
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.check(f"{report.when} of {report.nodeid}")
        if report.when == "call" and report.passed and report.nodeid in self.raised:
            self.flag(f"{report.nodeid} raised {self.raised[report.nodeid]} but was reported as passed")

    # -- the audit hook ------------------------------------------------------------------------

    def audit(self, event: str, args: tuple) -> None:
        if not self.armed:
            return
        if event == "open":
            path, mode, flags = args
            if not isinstance(path, str):
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS)
            if path.startswith(self.report_dir) or os.path.abspath(path).startswith(self.report_dir):
                self.flag(f"opened the report's directory: {path}")
            elif writing and self._guarded_file(path):
                self.flag(f"wrote {path} during the session")
        elif event in _PATH_EVENTS:
            for a in args:
                if isinstance(a, str) and (a.startswith(self.report_dir) or os.path.abspath(a).startswith(self.report_dir)):
                    self.flag(f"{event} on the report's directory")
        elif event == "object.__setattr__":
            obj, name = args[0], args[1]
            if name == "__code__":
                mod = getattr(obj, "__module__", "") or ""
                src = getattr(getattr(obj, "__code__", None), "co_filename", "")
                if _watched(mod) or src in self.test_files or os.path.basename(src) == "conftest.py":
                    self.flag(f"replaced the code of {mod}.{getattr(obj, '__qualname__', '?')}")
        elif event.startswith(_EXEC_EVENTS):
            text = " ".join(str(a) for a in args)
            if self.report_dir.rstrip("/") in text:
                self.flag(f"{event} names the report's directory")
        elif event == "sys.addaudithook":
            self.flag("another audit hook was added")
        elif event == "ctypes.dlsym":
            name = args[1] if len(args) > 1 else ""
            if isinstance(name, str) and name.startswith(("Py", "_Py")):
                self.flag(f"ctypes reached into the interpreter ({name})")

    @staticmethod
    def _guarded_file(path: str) -> bool:
        """Whether writing ``path`` could change what this session imports: bytecode or a .pth
        file where imports look (/testbed, /tf-out, a sys.path folder), or source and
        configuration in /testbed. Bytecode a test writes into a scratch folder of its own (rope
        compiles a sample project under /tmp) changes nothing the session runs."""
        p = os.path.abspath(path)
        base = os.path.basename(p)
        if p.endswith((".pyc", ".pyo", ".pth")) or "/__pycache__/" in p:
            roots = {"/testbed/", "/tf-out/"} | {os.path.join(os.path.abspath(d or "."), "") for d in sys.path}
            return any(p.startswith(r) for r in roots if r != "/")
        if not p.startswith("/testbed/"):
            return False
        return base in _CONFIG_NAMES or p.endswith(".py")


def _start_guard():
    key_file = os.environ.pop("TF_GUARD_KEY", None)
    if not key_file or not _OUT:
        return None
    with open(key_file, "rb") as fh:
        key = fh.read().strip()
    os.unlink(key_file)
    conftests = frozenset(os.environ.pop("TF_GUARD_CONFTESTS", "").split())
    guard = _Guard(key, _OUT, conftests)
    _state["fh"] = open(_OUT, "a", encoding="utf-8")  # noqa: SIM115 (before any hook can watch opens)
    sys.addaudithook(guard.audit)
    guard.armed = True
    return guard


_GUARD = _start_guard()


if _GUARD is not None:

    @pytest.hookimpl(tryfirst=True)
    def pytest_plugin_registered(plugin, plugin_name, manager):
        guard = _GUARD
        if guard.manager is None:
            if plugin is sys.modules[__name__]:
                guard.manager = manager  # every registration before this one is the start state's
                guard._record_impls()
            return
        guard.on_plugin(plugin, plugin_name)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(session):
        _GUARD.rebase()

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_call(item):
        outcome = yield
        _GUARD.on_call(item, outcome.excinfo)
