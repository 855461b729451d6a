"""pytest plugin baked into every environment image: a structured report of one test session.

Loaded with ``-p tf_report``. Writes JSON lines to ``$TF_REPORT`` (nothing when unset):

    {"type": "collected", "nodeids": [...]}                 after collection, exact node ids
    {"type": "collect_error", "nodeid": ..., "message": ...}
    {"type": "test", "nodeid": ..., "outcome": ..., "duration": ..., "message": ...}
    {"type": "coverage", "files": {path: {line: [nodeid, ...]}}}   when $TF_COVERAGE is set
    {"type": "finish", "exitstatus": N}

Outcomes merge the setup/call/teardown phases the way a reader expects: a failing setup or
teardown is ``error``, ``xfail``/``xpass`` are reported as such. Console text is never parsed.
This file runs inside the sandbox, under the repository's own Python: it imports only the
standard library, pytest, and (for coverage) coverage.py.
"""

from __future__ import annotations

import json
import os

import pytest

_OUT = os.environ.get("TF_REPORT")
_state: dict = {"fh": None, "tests": {}, "cov": None, "root": None}


def _emit(record: dict) -> None:
    fh = _state["fh"]
    if fh is not None:
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
    _state["fh"] = open(_OUT, "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
    _state["root"] = str(config.rootpath)
    if os.environ.get("TF_COVERAGE"):
        import coverage

        cov = coverage.Coverage(data_file=None, source=[_state["root"]], branch=False, config_file=False)
        cov.start()
        _state["cov"] = cov


def pytest_collectreport(report):
    if report.failed:
        _emit({"type": "collect_error", "nodeid": report.nodeid, "message": _message(report)})


def pytest_collection_finish(session):
    _emit({"type": "collected", "nodeids": [item.nodeid for item in session.items]})


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cov = _state["cov"]
    if cov is not None:
        cov.switch_context(item.nodeid)
    yield
    if cov is not None:
        cov.switch_context("")
    rec = _state["tests"].pop(item.nodeid, None)
    if rec is not None:
        _emit({"type": "test", **rec})


def pytest_runtest_logreport(report):
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
        if report.failed:
            rec["message"] = _message(report)
    elif report.failed:  # setup or teardown broke
        rec["outcome"] = "error"
        rec["message"] = _message(report)
    elif report.skipped and report.when == "setup":
        rec["outcome"] = "xfail" if wasxfail else "skipped"


def pytest_sessionfinish(session, exitstatus):
    # Results of tests whose protocol never completed (interrupted sessions) still count.
    for rec in list(_state["tests"].values()):
        _emit({"type": "test", **rec})
    _state["tests"].clear()
    cov = _state["cov"]
    if cov is not None:
        cov.stop()
        data = cov.get_data()
        root = _state["root"].rstrip("/") + "/"
        files = {}
        for path in data.measured_files():
            if not path.startswith(root):
                continue
            by_line = data.contexts_by_lineno(path)
            lines = {str(n): sorted(c for c in ctxs if c) for n, ctxs in by_line.items()}
            lines = {n: c for n, c in lines.items() if c}
            if lines:
                files[path[len(root):]] = lines
        _emit({"type": "coverage", "files": files})
        _state["cov"] = None
    _emit({"type": "finish", "exitstatus": int(exitstatus)})


def pytest_unconfigure(config):
    fh = _state["fh"]
    if fh is not None:
        fh.close()
        _state["fh"] = None
