"""Turn a test runner's own structured report into taskfactory's report (JSON lines at ``--out``).

Baked into every JavaScript, TypeScript and Go environment image (``/opt/taskfactory``) and run
after the runner exits, under the image's Python with the standard library only. Reads the
runner's machine-readable report — jest's and vitest's ``--json`` files, mocha's JSON reporter,
our node:test reporter's JSON lines, ``go test -json`` — never its console text, and writes the
same records as the pytest plugin (``verifiers/plugin/tf_report.py``), so every runner's
sessions are read by one parser and judged by one exit-code rule:

    {"type": "collected", "nodeids": [...]}
    {"type": "collect_error", "nodeid": FILE_OR_PACKAGE, "message": ...}
    {"type": "test", "nodeid": ..., "outcome": ..., "duration": ..., "message": ...}
    {"type": "coverage", "files": {path: {line: [nodeid, ...]}}}     with --coverage
    {"type": "finish", "exitstatus": 0 or 1}

Canonical ids: ``FILE::Suite > sub-suite > test`` for the Node runners (``FILE`` relative to
the repository root; a repeated title in one file gets `` #2``, ``#3`` in report order), and
``PACKAGE_DIR::TestName/subtest`` for Go (``.`` for the module's root package).

The exit code is checked against the report here, per runner (mocha exits with its failure
count, the others with 1): the process exits 0 when the runner passed and the report agrees, 1
when it failed and the report shows a failure, and the runner's own code otherwise — which the
one rule (``verifiers.sandbox.classify``) then reads as a disagreement or an aborted session.
A runner that left no report at all is a ``collect_error``: the suite could not be loaded.

Coverage (``--coverage DIR``): V8's coverage files (``NODE_V8_COVERAGE``) or a Go cover
profile. Line-level where the script V8 ran is the file on disk (plain JavaScript); a file that
was transformed first (TypeScript through ts-jest or vite) counts every line as covered. Each
line is attributed to the tests of the test files loaded in the same process (node:test runs a
file per process: per-file granularity; mocha and jest in band: the whole suite); Go's profile
is attributed to the whole suite. Where V8 wrote nothing about the repository's files (vitest
ends its workers before they write it), every source file counts, for every test (file level).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import sys
from pathlib import PurePosixPath

ROOT = "/testbed"
_TEST_DIRS = {"test", "tests", "__tests__", "testing", "spec"}


def is_test_path(rel: str) -> bool:
    parts = PurePosixPath(rel).parts
    name = parts[-1] if parts else ""
    return (any(p in _TEST_DIRS for p in parts[:-1]) or ".test." in name or ".spec." in name
            or name.endswith("_test.go"))


def rel_path(path: str, root: str = ROOT) -> str:
    path = re.sub(r"^file://", "", path or "")
    if path.startswith(root.rstrip("/") + "/"):
        path = path[len(root.rstrip("/")) + 1:]
    return PurePosixPath(path).as_posix().lstrip("./") if path.startswith("./") else PurePosixPath(path).as_posix()


class Ids:
    """Canonical ids, unique within a report: a repeated title gets ' #2', ' #3' in report order."""

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}

    def make(self, base: str) -> str:
        n = self.seen.get(base, 0) + 1
        self.seen[base] = n
        return base if n == 1 else f"{base} #{n}"


def _first_line(text: str) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "").strip()
    return text[:2000]


_STATUS = {"passed": "passed", "failed": "failed", "pending": "skipped", "skipped": "skipped", "todo": "skipped",
           "disabled": "skipped", "focused": "passed"}


# -- readers: native report -> (results [(id, outcome, seconds, message)], collect errors) ----------

def read_jest(data: dict, root: str) -> tuple[list, list]:
    """jest's ``--json`` (vitest's JSON reporter writes the same shape)."""
    results, errors = [], []
    ids = Ids()
    for suite in sorted(data.get("testResults", []), key=lambda s: s.get("name", "")):
        path = rel_path(suite.get("name", ""), root)
        asserts = suite.get("assertionResults") or []
        if not asserts and (suite.get("status") == "failed" or suite.get("testExecError")):
            msg = suite.get("message") or json.dumps(suite.get("testExecError") or "")
            errors.append((path, _first_line(msg)))
            continue
        for a in asserts:
            title = " > ".join([*(a.get("ancestorTitles") or []), a.get("title", "")])
            outcome = _STATUS.get(a.get("status", ""), "failed")
            msg = "\n".join(a.get("failureMessages") or [])
            dur = (a.get("duration") or 0) / 1000.0
            results.append((ids.make(f"{path}::{title}"), outcome, dur, _first_line(msg)))
    return results, errors


def read_mocha(data: dict, root: str) -> tuple[list, list]:
    """mocha's ``json`` reporter: ``tests`` holds every test with its ``err`` (empty when passed)."""
    results = []
    ids = Ids()
    failed_titles = {(t.get("file"), t.get("fullTitle")) for t in data.get("failures", [])}
    pending = {(t.get("file"), t.get("fullTitle")) for t in data.get("pending", [])}
    for t in data.get("tests", []):
        key = (t.get("file"), t.get("fullTitle"))
        path = rel_path(t.get("file") or "", root)
        if key in pending:
            outcome = "skipped"
        elif key in failed_titles and t.get("err"):
            outcome = "failed"
        else:
            outcome = "failed" if t.get("err") else "passed"
        err = t.get("err") or {}
        msg = err.get("message", "") if isinstance(err, dict) else str(err)
        results.append((ids.make(f"{path}::{t.get('fullTitle', '')}"), outcome, (t.get("duration") or 0) / 1000.0,
                        _first_line(msg)))
    # A hook that failed ("before all" hook ...) is a failure mocha lists without a test of its own.
    errors = [(rel_path(t.get("file") or "", root), _first_line((t.get("err") or {}).get("message", "")))
              for t in data.get("failures", []) if '"before all" hook' in (t.get("title") or "")
              or '"after all" hook' in (t.get("title") or "")]
    return results, errors


def read_node_test(text: str, root: str) -> tuple[list, list]:
    """Our node:test reporter's JSON lines (``tf_node_reporter.mjs``): one per finished test."""
    results, errors = [], []
    ids = Ids()
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        path = rel_path(rec.get("file") or "", root)
        if rec.get("kind") == "file_error":
            errors.append((path, _first_line(rec.get("message", ""))))
            continue
        title = " > ".join(rec.get("names") or [])
        outcome = {"pass": "passed", "fail": "failed", "skip": "skipped", "todo": "skipped"}.get(rec.get("outcome"),
                                                                                                "failed")
        results.append((ids.make(f"{path}::{title}"), outcome, (rec.get("duration_ms") or 0) / 1000.0,
                        _first_line(rec.get("message", ""))))
    return results, errors


def read_go(text: str, root: str) -> tuple[list, list]:
    """``go test -json`` events: a test's last pass/fail/skip is its outcome; a package that fails
    with no test failing (a build failure) is a collect error."""
    module = _go_module(root)
    outcome: dict[tuple[str, str], tuple[str, float]] = {}
    output: dict[tuple[str, str], list[str]] = {}
    pkg_fail: dict[str, list[str]] = {}
    order: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        pkg, test, action = ev.get("Package", ""), ev.get("Test"), ev.get("Action")
        if test is None:
            if action == "output":
                pkg_fail.setdefault(pkg, []).append(ev.get("Output", ""))
            elif action == "fail":
                pkg_fail.setdefault(pkg, []).append("\0FAILED")
            continue
        key = (pkg, test)
        if action == "run" and key not in outcome:
            order.append(key)
            outcome[key] = ("failed", 0.0)  # a test that started and never finished: failed
        elif action in ("pass", "fail", "skip"):
            if key not in outcome:
                order.append(key)
            outcome[key] = ({"pass": "passed", "fail": "failed", "skip": "skipped"}[action],
                            float(ev.get("Elapsed") or 0.0))
        elif action == "output":
            output.setdefault(key, []).append(ev.get("Output", ""))
    results = []
    for key in order:
        pkg, test = key
        out, dur = outcome[key]
        msg = "".join(line for line in output.get(key, []) if not line.startswith(("=== RUN", "--- ", "=== PAUSE",
                                                                                      "=== CONT")))
        results.append((f"{_go_dir(pkg, module)}::{test}", out, dur, _first_line(msg)))
    errors = []
    tested = {pkg for pkg, _ in order}
    for pkg, lines in pkg_fail.items():
        if "\0FAILED" in lines and pkg not in tested:
            errors.append((_go_dir(pkg, module), _first_line("".join(x for x in lines if x != "\0FAILED"))))
    return results, errors


def _go_module(root: str) -> str:
    try:
        with open(os.path.join(root, "go.mod"), encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("module "):
                    return line.split()[1].strip('"')
    except OSError:
        pass
    return ""


def _go_dir(pkg: str, module: str) -> str:
    if module and pkg == module:
        return "."
    if module and pkg.startswith(module + "/"):
        return pkg[len(module) + 1:]
    return pkg


# -- coverage --------------------------------------------------------------------------------

def v8_coverage(cov_dir: str, root: str, tests_by_file: dict[str, list[str]], all_tests: list[str]) -> dict:
    """file -> line -> test ids, from V8's per-process coverage files."""
    out: dict[str, dict[int, set[str]]] = {}
    for path in sorted(glob.glob(os.path.join(cov_dir, "*.json"))):
        try:
            with open(path, encoding="utf-8") as fh:
                scripts = json.load(fh).get("result", [])
        except (OSError, json.JSONDecodeError):
            continue
        files = {}
        for s in scripts:
            url = s.get("url", "")
            if not url.startswith(("file://" + root + "/", root + "/")) or "/node_modules/" in url:
                continue
            files[rel_path(url, root)] = s
        loaded_tests = [t for f in files if f in tests_by_file for t in tests_by_file[f]]
        owners = set(loaded_tests or all_tests)
        for rel, s in files.items():
            if is_test_path(rel) or rel in tests_by_file:
                continue
            lines = _covered_lines(os.path.join(root, rel), s.get("functions", []))
            for line in lines:
                out.setdefault(rel, {}).setdefault(line, set()).update(owners)
    return {f: {str(n): sorted(t) for n, t in sorted(lines.items())} for f, lines in sorted(out.items())}


_SOURCE = re.compile(r"\.(js|jsx|mjs|cjs|ts|tsx|mts|cts)$")
_NOT_SOURCE_DIRS = {"node_modules", "dist", "build", "coverage", ".git", "out", "vendor", "fixtures", "bench",
                    "benchmark", "benchmarks", "examples", "example", "docs", "scripts"}


def source_files(root: str, all_tests: list[str]) -> dict:
    """File-level coverage when V8 wrote none that names the repository's files (vitest ends its
    worker processes before they write it): every non-blank line of every tracked-looking source
    file (not tests, declarations, configs or build output) counts, for every test."""
    tests = sorted(all_tests)
    out: dict[str, dict[str, list[str]]] = {}
    for dirpath, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _NOT_SOURCE_DIRS and not d.startswith("."))
        for name in sorted(names):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if (not _SOURCE.search(name) or re.search(r"\.d\.[cm]?ts$", name) or ".config." in name or name.endswith(".min.js")
                    or is_test_path(rel)):
                continue
            try:
                with open(os.path.join(root, rel), encoding="utf-8") as fh:
                    lines = fh.read().splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            out[rel] = {str(i + 1): tests for i, line in enumerate(lines) if line.strip()}
    return out


def _covered_lines(path: str, functions: list) -> list[int]:
    try:
        with open(path, encoding="utf-8") as fh:
            src = fh.read()
    except (OSError, UnicodeDecodeError):
        return []
    ranges = [r for f in functions for r in f.get("ranges", [])]
    if not ranges:
        return []
    script_len = max(r["endOffset"] for r in ranges)
    starts = [0]
    for i, ch in enumerate(src):
        if ch == "\n":
            starts.append(i + 1)
    if script_len != len(src):  # V8 ran a transformed script: line numbers would lie, take the file
        return [i + 1 for i, s in enumerate(starts) if src[s:].split("\n", 1)[0].strip()]
    counts = [0] * len(src)
    for r in sorted(ranges, key=lambda r: (r["startOffset"], -r["endOffset"])):
        a, b = max(0, r["startOffset"]), min(len(src), r["endOffset"])
        counts[a:b] = [r["count"]] * (b - a)
    lines = []
    for i, s in enumerate(starts):
        e = starts[i + 1] - 1 if i + 1 < len(starts) else len(src)
        if any(counts[j] > 0 and not src[j].isspace() for j in range(s, e)):
            lines.append(i + 1)
    return lines


def go_coverage(profile: str, root: str, all_tests: list[str]) -> dict:
    """file -> line -> tests, from ``go test -coverprofile`` (blocks run at least once)."""
    module = _go_module(root)
    out: dict[str, set[int]] = {}
    try:
        with open(profile, encoding="utf-8") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return {}
    for line in lines:
        m = re.match(r"^(.+):(\d+)\.\d+,(\d+)\.\d+ \d+ (\d+)$", line)
        if not m or int(m.group(4)) == 0:
            continue
        f = m.group(1)
        rel = f[len(module) + 1:] if module and f.startswith(module + "/") else f
        out.setdefault(rel, set()).update(range(int(m.group(2)), int(m.group(3)) + 1))
    tests = sorted(all_tests)
    return {f: {str(n): tests for n in sorted(ls)} for f, ls in sorted(out.items())}


# -- grading's guard (verifiers/langs/guard.py checks these records with the key) -------------------

def _guard_records(a, results: list) -> list[dict]:
    """Carry what the guard left into the report, unjudged: the Node guard's signed streams and
    the key files no Node process took, the SHA-256 of the runner's report as it is now; for Go,
    every test whose name carries the guard's prefix, with its outcome. Run only after every
    process of the session is gone, so nothing changes these files while they are read."""
    out: list[dict] = []
    if a.guard_dir:
        streams, keys = {}, {}
        for path in sorted(glob.glob(os.path.join(a.guard_dir, "*"))):
            name = os.path.basename(path)
            try:
                with open(path, encoding="utf-8", errors="replace") as fh:
                    body = fh.read()
            except OSError:
                continue
            if name.endswith(".jsonl"):
                streams[name[:-6]] = body
            elif name.endswith(".key"):
                keys[name[:-4]] = body.strip()
        sha = ""
        if os.path.isfile(a.native):
            with open(a.native, "rb") as fh:
                sha = hashlib.sha256(fh.read()).hexdigest()
        out.append({"type": "node_guard", "streams": streams, "unused_keys": keys, "native_sha256": sha})
    if a.go_guard:
        seen = [[r[0], r[1]] for r in results if r[0].split("::", 1)[-1].startswith(a.go_guard)]
        out.append({"type": "go_guard", "seen": seen})
    return out


# -- the exit-code check -----------------------------------------------------------------------

def normalised_exit(runner: str, rc: int, failing: int) -> int:
    """0 or 1 when the runner's code agrees with the report; its own code when it does not."""
    if rc == 0:
        return 0  # with a failing test, classify() flags the disagreement
    agrees = (0 < failing and rc == min(failing, 255)) if runner == "mocha" else (rc == 1)
    return 1 if agrees and failing else rc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runner", required=True, choices=["jest", "vitest", "mocha", "node-test", "go"])
    ap.add_argument("--native", required=True)
    ap.add_argument("--exit", type=int, required=True)
    ap.add_argument("--out", default=os.environ.get("TF_REPORT", ""))
    ap.add_argument("--select", default="")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--coverage", default="")
    ap.add_argument("--root", default=ROOT)
    ap.add_argument("--guard-dir", default="", help="grading: the Node guard's streams and unused key files")
    ap.add_argument("--go-guard", default="", help="grading: the prefix of the Go guard test's name")
    a = ap.parse_args(argv)

    text = ""
    if os.path.isfile(a.native):
        with open(a.native, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
    results, errors = [], []
    if not text.strip():
        errors = [("", f"the {a.runner} runner wrote no report (exit {a.exit}): the suite did not load")]
    elif a.runner in ("jest", "vitest", "mocha"):
        try:
            data = json.loads(text[text.index("{"):])
        except (ValueError, json.JSONDecodeError) as e:
            data, errors = None, [("", f"the {a.runner} report is not JSON: {e}")]
        if data is not None:
            results, errors = (read_mocha if a.runner == "mocha" else read_jest)(data, a.root)
    elif a.runner == "node-test":
        results, errors = read_node_test(text, a.root)
    else:
        results, errors = read_go(text, a.root)

    collected = [r[0] for r in results]
    guard_records = _guard_records(a, results)
    if a.select:
        with open(a.select, encoding="utf-8") as fh:
            wanted = [x for x in fh.read().splitlines() if x]
        keep = set(wanted)
        results = [r for r in results if r[0] in keep]
        collected = wanted if (results or not errors) else []  # asked-for tests missing count as failed
    failing = sum(1 for r in results if r[1] in ("failed", "error"))
    all_failing = failing + len(errors)
    code = normalised_exit(a.runner, a.exit, all_failing if not a.select else max(failing, all_failing))
    records: list[dict] = []
    if collected or not errors:
        records.append({"type": "collected", "nodeids": collected})
    records += [{"type": "collect_error", "nodeid": where, "message": msg} for where, msg in errors]
    records += [{"type": "test", "nodeid": i, "outcome": o, "duration": d, "message": m} for i, o, d, m in results]
    if a.coverage:
        if a.runner == "go":
            files = go_coverage(a.coverage, a.root, collected)
        else:
            by_file: dict[str, list[str]] = {}
            for i in collected:
                by_file.setdefault(i.split("::", 1)[0], []).append(i)
            files = v8_coverage(a.coverage, a.root, by_file, collected) or source_files(a.root, collected)
        records.append({"type": "coverage", "files": files})
    records += guard_records
    records.append({"type": "finish", "exitstatus": 1 if failing or errors else 0})
    if a.out:
        with open(a.out, "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
    if a.collect:
        sys.stdout.write("".join(i + "\n" for i in collected) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
