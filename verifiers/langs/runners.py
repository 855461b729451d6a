"""Test runners for JavaScript, TypeScript and Go: jest, vitest, mocha, node:test and ``go test``.

Each runs the repository's own runner with its machine-readable reporter (jest's and vitest's
``--json`` files, mocha's ``json`` reporter, our node:test reporter, ``go test -json``), then
``tf_convert.py`` (baked into the image) turns that report into taskfactory's records at
``$TF_REPORT`` and checks the runner's exit code against it. So the sessions of every language
are read by ``verifiers.sandbox.parse_report`` and judged by ``classify``: baseline, validation
and grading need nothing per language. Console text is never parsed.

A selection of tests runs their files (their packages for Go, with ``-run`` on the top-level
names) and keeps only the selected tests in the report; a selected test that did not run counts
as failed. A collect-only session runs the suite (these runners have no listing that gives the
same ids) and prints the ids it reported.

Not for: installing (``verifiers.langs.node`` / ``verifiers.langs.golang``).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from factory.repo import is_test_file
from factory.schema import TestRun
from verifiers.langs.guard import GO_PREFIX, KILL_THE_REST, LangGuard, check
from verifiers.sandbox import SessionReport, classify, parse_report

__all__ = ["GoTestRunner", "NODE_RUNNERS", "NodeRunner", "runner_from_cmd", "protected_config"]

TF_DIR = "/opt/taskfactory"
_NATIVE = "/tmp/tf-native.out"
_SELECT = "/tmp/tf-select"
_COV = "/tmp/tf-cov"
_RUN_PATTERN_BUDGET = 32 * 1024  # bytes of go test's -run pattern; a longer one runs the packages whole
JEST_CACHE = "/testbed/.git/tf-jest-cache"  # inside .git: kept by the worker's reset, warmed by the image build
NODE_RUNNERS = ("jest", "vitest", "mocha", "node-test")

# Files that configure a runner, a transpiler or the package: a patch may not change them.
_CONFIG_RE = re.compile(
    r"^(jest|vitest|vite|vitest\.workspace|babel|karma|ava)\.config\.[cm]?[jt]s(on)?$|^\.mocharc(\.[a-z]+)?$"
    r"|^\.babelrc(\.[a-z]+)?$|^package\.json$|^package-lock\.json$|^npm-shrinkwrap\.json$|^pnpm-lock\.yaml$"
    r"|^pnpm-workspace\.yaml$|^yarn\.lock$|^\.npmrc$|^\.yarnrc(\.yml)?$|^\.nvmrc$|^tsconfig(\..+)?\.json$"
    r"|^go\.mod$|^go\.sum$|^go\.work(\.sum)?$|^modules\.txt$|^\.swcrc$|^setup(Tests|Files)?\.[cm]?[jt]s$")


def protected_config(path: str) -> bool:
    """Runner, package-manager and compiler configuration (and Go's module files, whose ``replace``
    directives could point a package at other code) at any depth."""
    return bool(_CONFIG_RE.match(PurePosixPath(path).name))


def _printf_file(lines: list[str], path: str) -> str:
    return f"printf '%s\\n' {shlex.quote(chr(10).join(lines))} > {path}"


def _wrap(runner: str, native: str, selection, select_ids: list[str] | None, cov_env: str, cov_arg: str,
          guard: LangGuard | None = None) -> str:
    """The session: the native command, then the converter with the native exit code. Graded
    (``guard``): every process the session left is killed first, and grading's own copy of the
    converter carries the guard's records into the report (``verifiers.langs.guard``)."""
    parts = [f"rm -rf {_NATIVE} {_COV}; unset TF_GO_COVER NODE_V8_COVERAGE"]
    select = ""
    if selection.ids_file is not None:  # already in the container (``Selection.ids_file``)
        select = f" --select {shlex.quote(selection.ids_file)}"
    elif select_ids is not None:
        parts.append(_printf_file(select_ids, _SELECT))
        select = f" --select {_SELECT}"
    run = native
    if selection.collect_only:
        run = f"{{ {native}; }} > /tmp/tf-collect.log 2>&1"
    parts.append(f'if [ "$TF_COVERAGE" = 1 ]; then {cov_env}; fi')
    parts.append(f"{run}; tf_rc=$?")
    converter = f"{TF_DIR}/tf_convert.py"
    if guard is not None:
        parts.insert(1, f"rm -f {guard.master}" if runner == "go" else ":")  # Go reads no key: none left
        parts.append(KILL_THE_REST)
        converter = guard.converter
        select += f" --go-guard {GO_PREFIX}" if runner == "go" else f" --guard-dir {guard.streams}"
    cov = f' $( [ "$TF_COVERAGE" = 1 ] && echo "--coverage {cov_arg}" )'
    parts.append(f"python -I {converter} --runner {runner} --native {_NATIVE} --exit $tf_rc"
                 f' --out "$TF_REPORT"{select}{cov}' + (" --collect" if selection.collect_only else ""))
    return "; ".join(parts)


def _files_of(ids) -> list[str]:
    return sorted({i.split("::", 1)[0] for i in ids})


@dataclass(frozen=True)
class NodeRunner:
    """jest, vitest, mocha or node:test, started as the repository starts it (``test_cmd``)."""

    __test__ = False
    name: str
    test_cmd: str
    test_file_patterns: tuple[str, ...] = ()
    language: str = "javascript"

    def native(self, files: list[str]) -> str:
        cmd, args = _split_spec(self.test_cmd, self.name)
        if files:
            args = [shlex.quote(f) for f in files]
        if self.name == "jest":
            paths = " --runTestsByPath " + " ".join(args) if files else (" " + " ".join(args) if args else "")
            return (f"{cmd} --ci --json --outputFile={_NATIVE} --coverage=false --colors=false --watchAll=false"
                    f" --runInBand --cacheDirectory={JEST_CACHE}{paths}")
        if self.name == "vitest":
            return (f"{cmd} --reporter=json --outputFile={_NATIVE} --coverage.enabled=false --color=false"
                    + (" " + " ".join(args) if args else ""))
        if self.name == "mocha":
            return (f"{cmd} --reporter json --reporter-option output={_NATIVE} --no-colors"
                    + (" " + " ".join(args) if args else ""))
        return (f"{cmd} --test-reporter={TF_DIR}/tf_node_reporter.mjs --test-reporter-destination={_NATIVE}"
                + (" " + " ".join(args) if args else ""))

    def command(self, selection, *, plugins: tuple[str, ...] | None = None, guard: LangGuard | None = None) -> str:
        ids = None if selection.tests is None else list(selection.tests)
        files = _files_of(ids) if ids else list(selection.paths)
        # "localhost" resolves to the IPv4 loopback, whatever /etc/hosts holds: tf_localhost.cjs.
        # Graded, grading's guard is preloaded before it (and before anything else).
        shim = f"{TF_DIR}/tf_localhost.cjs"
        first = f"--require {guard.preload} " if guard is not None else ""
        env = guard.node_env(_NATIVE) + " " if guard is not None else ""
        native = f'{env}NODE_OPTIONS="{first}$([ -f {shim} ] && echo --require {shim})" {self.native(files)}'
        return _wrap(self.name, native, selection, ids, f"export NODE_V8_COVERAGE={_COV}", _COV, guard)

    def read(self, exit_code: int | None, wall_s: float, report_text: str, log_tail: str,
             key: bytes | None = None) -> tuple[TestRun, SessionReport]:
        return _read(self.name, exit_code, wall_s, report_text, log_tail, key)

    def protected(self, path: str) -> bool:
        return is_test_file(path, self.test_file_patterns) or protected_config(path)


@dataclass(frozen=True)
class GoTestRunner:
    """``go test -json`` over the module's packages (``./...``), off the network."""

    __test__ = False
    test_cmd: str = "go test ./..."
    test_file_patterns: tuple[str, ...] = ()
    name: str = "go"
    language: str = "go"

    def command(self, selection, *, plugins: tuple[str, ...] | None = None, guard: LangGuard | None = None) -> str:
        ids = None if selection.tests is None else list(selection.tests)
        base = self.test_cmd.split(" ./")[0].strip() if " ./" in self.test_cmd else self.test_cmd
        prep = ""
        if ids:
            pkgs = " ".join(shlex.quote("./" + d if d != "." else ".") for d in _files_of(ids))
            tops = sorted({re.escape(i.split("::", 1)[1].split("/", 1)[0]) for i in ids})
            if guard is not None:  # the guard test, by a pattern that does not spell its name
                tops.append(GO_PREFIX + "[0-9a-f]{16}")
                prep = f"{guard.go_place(_files_of(ids))} && "
            run = shlex.quote("^(" + "|".join(tops) + ")$")
            # The pattern only spares the packages' other tests (the converter keeps the selected
            # ones): past what a command line holds, the packages run whole. Graded, the guard
            # test runs either way.
            target = f"{pkgs} -run {run}" if len(run) <= _RUN_PATTERN_BUDGET else pkgs
        elif selection.paths:
            target = " ".join(shlex.quote(p) for p in selection.paths)
        else:
            target = self.test_cmd[len(base):].strip() or "./..."
        native = f"{prep}{base} -json -count=1 $TF_GO_COVER {target} > {_NATIVE} 2>/tmp/tf-go-stderr"
        return _wrap("go", native, selection, ids, f"export TF_GO_COVER=-coverprofile={_COV}", _COV, guard)

    def read(self, exit_code: int | None, wall_s: float, report_text: str, log_tail: str,
             key: bytes | None = None) -> tuple[TestRun, SessionReport]:
        return _read("go", exit_code, wall_s, report_text, log_tail, key)

    def protected(self, path: str) -> bool:
        return is_test_file(path, self.test_file_patterns) or protected_config(path) or path.startswith("vendor/")


def _read(runner: str, exit_code: int | None, wall_s: float, report_text: str, log_tail: str,
          key: bytes | None) -> tuple[TestRun, SessionReport]:
    """The session's report; graded (``key``), with what the guard's records say in ``integrity``."""
    report = parse_report(report_text)
    if key is not None:
        packages = _files_of([*(report.collected or []), *report.results]) if runner == "go" else None
        report.integrity += check(report_text, key, runner, packages)
    return classify(exit_code, wall_s, report, log_tail), report


# Options whose next word is their value (so that word is not a test path).
_VALUED = {"--env", "--config", "-c", "--testEnvironment", "--timeout", "-t", "--require", "-r", "--ui", "-u",
           "--extension", "--file", "--spec", "--ignore", "--slow", "-s", "--grep", "-g", "--test-name-pattern",
           "--import", "--loader", "--experimental-loader", "--project", "--dir", "--root", "--pool",
           "--environment", "--testTimeout", "--maxWorkers", "-w", "--selectProjects"}
_DROPPED = {"--reporter", "-R", "--outputFile", "--test-reporter", "--test-reporter-destination", "--reporter-option",
            "--reporter-options", "-O"}


def _split_spec(test_cmd: str, runner: str) -> tuple[str, list[str]]:
    """The command without its reporter and coverage options, and its positional test paths."""
    words = shlex.split(test_cmd)
    keep, specs = [], []
    i = 0
    while i < len(words):
        w = words[i]
        if i == 0 or (runner == "vitest" and w == "run") or (runner == "node-test" and w == "--test"):
            keep.append(shlex.quote(w))
        elif w in _DROPPED:
            i += 1
        elif w.startswith(("--reporter", "--outputFile", "--test-reporter", "--coverage", "--json", "--watch",
                           "--colors", "--color", "--no-color")):
            pass
        elif w in _VALUED and i + 1 < len(words):
            keep += [shlex.quote(w), shlex.quote(words[i + 1])]
            i += 1
        elif w.startswith("-"):
            keep.append(shlex.quote(w))
        else:  # a test path or glob (globs stay unquoted: bash expands them, as npm's shell would)
            specs.append(w if "*" in w else shlex.quote(w))
        i += 1
    return " ".join(keep), specs


_TOOL = re.compile(r"^(?:npx\s+(?:--no-install\s+)?|node_modules/\.bin/|\./node_modules/\.bin/)?(jest|vitest|mocha)\b")


def runner_from_cmd(test_cmd: str, test_file_patterns: tuple[str, ...] = ()):
    """The runner a test command names (``npx jest``, ``npx vitest run``, ``npx mocha``,
    ``node --test``, ``go test``), or None for anything else (pytest's)."""
    cmd = (test_cmd or "").strip()
    m = _TOOL.match(cmd)
    if m:
        return NodeRunner(m.group(1), cmd, tuple(test_file_patterns))
    if re.match(r"^node\s+(.*\s)?--test\b", cmd):
        return NodeRunner("node-test", cmd, tuple(test_file_patterns))
    if re.match(r"^go\s+test\b", cmd):
        return GoTestRunner(cmd, tuple(test_file_patterns))
    return None
