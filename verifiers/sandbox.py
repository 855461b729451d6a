"""Run a repository's tests inside a locked-down container and read back a structured report.

The sandbox: no network, a memory limit (swap included) and a process limit, every capability
dropped, a read-only root file system with two writable places — ``/testbed`` (a throw-away
volume seeded from the image, removed with the container) and a ``/tmp`` tmpfs — and a
wall-clock timeout after which the whole container, every process in it, is killed.

What it does not cover: CPU time fairness beyond a CPU quota, kernel exploits (containers share
the host kernel), and disk filling inside ``/testbed`` (bounded only by the volume's disk).

Running untrusted code gives a result (``TestRun`` with a ``status``), never an exception: a
timeout, an OOM kill, a missing image or a dead engine are statuses with a reason.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import re
import shlex
import tarfile
import time
from dataclasses import dataclass, field

from factory.schema import TestResult, TestRun
from verifiers.isolation import Limits as SandboxLimits
from verifiers.isolation import container_kwargs, remove_container

__all__ = ["SandboxLimits", "SessionReport", "classify", "parse_report", "pytest_command", "read_file",
           "run_problem", "run_tests", "tar_file"]

_REPORT_DIR = "/tf-out"
_REPORT = f"{_REPORT_DIR}/report.jsonl"
_LOG_TAIL = 6000



@dataclass
class SessionReport:
    """What the report plugin wrote, parsed."""

    collected: list[str] | None = None
    results: dict[str, TestResult] = field(default_factory=dict)
    collect_errors: list[tuple[str, str]] = field(default_factory=list)
    coverage: dict[str, dict[int, list[str]]] | None = None
    tracer: str = ""  # what made the coverage map: "monitoring" (sys.monitoring) or "coverage.py"
    exitstatus: int | None = None
    stdout: str = ""  # the whole console output, only when run_tests(keep_stdout=True)
    guard: list[str] | None = None  # guard mode: what the guard saw (None: no guard record)
    integrity: list[str] = field(default_factory=list)  # guard mode: why the report cannot be trusted


HASH_SEED = 0  # every Python test session runs with this PYTHONHASHSEED (pytest_command)
# pytest's cache, outside /testbed and emptied before every session: plugins that keep state in
# it work (pytest-xprocess: werkzeug's 22 serving tests erred on `config.cache` with the cache
# plugin off), a patch's diff never shows it, and no session reads what an earlier one left.
PYTEST_CACHE_DIR = "/tmp/tf-pytest-cache"


def pytest_command(test_cmd: str, *, select: list[str] | None = None, paths: tuple[str, ...] = (),
                   collect_only: bool = False, plugins: tuple[str, ...] = ("tf_report",),
                   ids_file: str | None = None) -> str:
    """The shell command for one session, always with our report plugin and a fresh cache.

    ``plugins`` are loaded with ``-p`` in order (grading passes its guarded report plugin first,
    then the start state's own pytest plugins, since it turns autoloading off).

    ``ids_file``: the selected node ids are in that file in the container. The command then names
    neither them nor their files (it stays a few hundred bytes however many tests run): the files
    are cut from the ids inside the container, and the report plugin keeps only the listed tests
    (``$TF_SELECT``), in the order the suite defines them.
    """
    # --continue-on-collection-errors: one module that fails to import must not hide every other
    # test; its tests are simply absent (and so count as failed where they were expected).
    parts = [test_cmd, *(a for p in plugins for a in ("-p", p)), "-o", f"cache_dir={PYTEST_CACHE_DIR}", "-q", "-rN", "--tb=short",
             "--color=no", "--continue-on-collection-errors",
             "-W", "ignore::pytest.PytestUnraisableExceptionWarning"]
    if collect_only:
        # --verbosity sets the level outright, after the project's addopts: with Faker's
        # `addopts = --verbose`, -q only cancelled it and collection printed a tree, not node ids.
        parts += ["--collect-only", "--verbosity=-1"]
    # The hash seed is part of the environment: pinned in every session (baseline, validation,
    # grading), so sets and dicts keyed by str iterate the same way each time. networkx showed why:
    # under one mutant a FAIL_TO_PASS test failed for 4 of 12 random seeds, so an unfixed tree
    # could pass grading on a lucky seed, and two validations of one candidate could disagree.
    cmd = f"rm -rf {PYTEST_CACHE_DIR} && export PYTHONHASHSEED={HASH_SEED} && " + " ".join(parts)
    # Node ids can hold spaces, brackets and quotes: arguments go through a file, not argv parsing.
    if ids_file is not None:
        q = shlex.quote(ids_file)
        fill = f"awk -F'::' 'NF && !seen[$1]++ {{print $1}}' {q} > /tmp/tf-args"
        cmd = f"export TF_SELECT={q} && {cmd}"
    elif select or paths:
        fill = f"printf '%s\\n' {shlex.quote(chr(10).join(select or paths))} > /tmp/tf-args"
    else:
        return cmd
    return f"{fill} && mapfile -t TF_ARGS < /tmp/tf-args && {cmd} \"${{TF_ARGS[@]}}\""


def parse_report(text: str, key: bytes | None = None) -> SessionReport:
    """Parse the plugin's JSON lines; with ``key`` (guard mode), check every record's chained MAC
    and the count in ``finish``, and list what fails in ``integrity``."""
    rep = SessionReport()
    mac, count, finish_count = "", 0, None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if key is not None:
                rep.integrity.append("the report holds a line that is not JSON")
            continue  # a truncated last line (the run was killed mid-write)
        if key is not None:
            got = rec.pop("mac", None)
            want = hmac.new(key, (mac + json.dumps(rec, sort_keys=True)).encode(), hashlib.sha256).hexdigest()
            count += 1
            if got is None or not hmac.compare_digest(str(got), want):
                rep.integrity.append(f"record {count} of the report was not written by the grader's plugin")
                continue
            mac = want
        kind = rec.get("type")
        if kind == "guard":
            rep.guard = [str(e) for e in rec.get("events", [])]
            continue
        if kind == "finish" and key is not None:
            finish_count = rec.get("records")
        if kind == "collected":
            rep.collected = list(rec["nodeids"])
        elif kind == "collect_error":
            rep.collect_errors.append((rec.get("nodeid", ""), rec.get("message", "")))
        elif kind == "test":
            rep.results[rec["nodeid"]] = TestResult(
                nodeid=rec["nodeid"], outcome=rec["outcome"], duration_s=float(rec.get("duration", 0.0)),
                message=rec.get("message", "") or "",
            )
        elif kind == "coverage":
            rep.coverage = {f: {int(n): c for n, c in lines.items()} for f, lines in rec["files"].items()}
            rep.tracer = str(rec.get("tracer", ""))
        elif kind == "finish":
            rep.exitstatus = int(rec["exitstatus"])
    if key is not None:
        if rep.exitstatus is None:
            rep.integrity.append("the report has no finish record: the test process ended before pytest did")
        elif finish_count != count:
            rep.integrity.append(f"the report holds {count} records but its finish record counts {finish_count}")
        if rep.guard is None and rep.exitstatus is not None:
            rep.integrity.append("the report has no guard record")
    return rep


def run_tests(client, image: str, command: str, *, limits: SandboxLimits = SandboxLimits(),
              env: dict[str, str] | None = None, network: bool = False,
              keep_stdout: bool = False) -> tuple[TestRun, SessionReport]:
    """One test session in a fresh container from ``image``; never raises for the code's faults."""
    import docker  # noqa: PLC0415

    t0 = time.monotonic()
    container = None
    envs = {"TF_REPORT": _REPORT, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", **(env or {})}
    script = f"mkdir -p {_REPORT_DIR} 2>/dev/null; cd /testbed && {command}"
    try:
        kw = container_kwargs(limits, scratch=("/testbed", _REPORT_DIR))
        if network:  # only for the install checks that need it; never for a candidate's or a model's code
            kw["network_mode"] = None
        container = client.containers.create(image, command=["bash", "-c", script], environment=envs, detach=True, **kw)
        container.start()
    except docker.errors.ImageNotFound:
        remove_container(container)
        return _infra(t0, f"image {image} not found"), SessionReport()
    except docker.errors.APIError as e:
        remove_container(container)
        return _infra(t0, f"container failed to start: {e.explanation or e}"), SessionReport()
    except Exception as e:  # engine unreachable: an infrastructure fault, never the candidate's
        remove_container(container)
        return _infra(t0, f"{e.__class__.__name__}: {e}"), SessionReport()

    timed_out = False
    exit_code: int | None = None
    try:
        try:
            result = container.wait(timeout=limits.timeout_s)
            exit_code = int(result.get("StatusCode", -1))
        except Exception as e:
            if not _is_read_timeout(e):  # the engine went away: never the candidate's timeout
                return _infra(t0, f"waiting for the run failed: {e.__class__.__name__}: {e}"), SessionReport()
            timed_out = True
            try:
                container.kill()
            except docker.errors.APIError:
                pass
            container.wait(timeout=30)
        wall = time.monotonic() - t0
        container.reload()
        oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        log_tail = container.logs(tail=200).decode(errors="replace")[-_LOG_TAIL:]
        raw = read_file(container, _REPORT)
        report = parse_report(raw.decode("utf-8", errors="replace") if raw else "")
        if keep_stdout:
            report.stdout = container.logs(stderr=False).decode(errors="replace")
    except docker.errors.NotFound:
        return _infra(t0, "the container disappeared during the run (removed from outside?)"), SessionReport()
    except Exception as e:
        return _infra(t0, f"reading the run failed: {e.__class__.__name__}: {e}"), SessionReport()
    finally:
        remove_container(container)

    if timed_out:
        return TestRun("timeout", None, wall, tuple(report.results.values()), tuple(report.collected or ()),
                       log_tail, f"killed after the {limits.timeout_s:.0f}s wall-clock limit"), report
    if oom:
        return TestRun("oom", exit_code, wall, tuple(report.results.values()), tuple(report.collected or ()),
                       log_tail, f"killed: out of memory (limit {limits.mem})"), report
    if exit_code == 137:
        return TestRun("infra_error", exit_code, wall, tuple(report.results.values()), tuple(report.collected or ()),
                       log_tail, "the container was killed from outside (exit 137)"), report
    return classify(exit_code, wall, report, log_tail), report


def classify(exit_code: int | None, wall: float, report: SessionReport, log_tail: str) -> TestRun:
    """The TestRun of a session that finished on its own, from its exit code and structured report.

    One rule for every runner (one-shot containers here, long-lived workers in verifiers.worker):
    no report is an infrastructure fault, unless the output says a conftest failed to import (then
    ``collection_error``: the code under test broke the suite's start); nothing collected is
    ``no_tests``; collection errors and no test is ``collection_error``; otherwise ``ok``, with a
    reason when the exit code and the report disagree (the verdict rules reject such runs).
    """
    results = tuple(report.results.values())
    collected = tuple(report.collected or ())
    if report.exitstatus is None and report.collected is None:
        if m := _CONFTEST_BROKEN.search(log_tail):
            # pytest loads conftest.py files before the session starts, so a conftest that cannot
            # import the code under test (a mutant that breaks its import) ends pytest with a usage
            # error before any report: the suite's collection is broken, not the infrastructure.
            return TestRun("collection_error", exit_code, wall, results, collected, log_tail,
                           f"collection failed: {m.group(1).removeprefix('/testbed/')} does not import")
        return TestRun("infra_error", exit_code, wall, results, collected, log_tail,
                       f"no report from the test command (exit {exit_code}); is it pytest?")
    if report.collect_errors and not report.collected:
        where, msg = report.collect_errors[0]
        last = msg.splitlines()[-1][:200] if msg else ""
        return TestRun("collection_error", exit_code, wall, results, collected, log_tail,
                       f"collection failed in {where or 'session'}: {last}")
    if exit_code == 5 or (report.collected is not None and not report.collected):
        return TestRun("no_tests", exit_code, wall, results, collected, log_tail, "no tests collected")
    if exit_code in _ABORTED:
        return TestRun("aborted", exit_code, wall, results, collected, log_tail,
                       f"the session ended early: {_ABORTED[exit_code]} (exit {exit_code})")
    return TestRun("ok", exit_code, wall, results, collected, log_tail,
                   f"exit code {exit_code} disagrees with the report" if _disagrees(exit_code, report) else "")


_CONFTEST_BROKEN = re.compile(r"ImportError while loading conftest '([^']+)'")

# pytest's exit codes for a session that did not run to its end.
_ABORTED = {2: "interrupted", 3: "pytest's internal error", 4: "a usage error (bad option or config)"}


def _disagrees(exit_code: int | None, report: SessionReport) -> bool:
    failing = any(r.outcome in ("failed", "error") for r in report.results.values())
    return (exit_code not in (0, 1) or (exit_code == 0 and failing)
            or (exit_code == 1 and not failing and not report.collect_errors))


def run_problem(run: TestRun) -> str | None:
    """The one rule from a run to "its results can be judged" (None) or the reason they cannot.

    Baseline, validation and grading all ask this: a run that timed out, ran out of memory,
    broke collection, ended early (exit 2-4), failed for the infrastructure, or whose exit code
    contradicts its report says nothing about the code under test.
    """
    if run.status == "ok":
        return "exit_code_disagrees" if run.reason.startswith("exit code") else None
    return {"timeout": "timeout", "oom": "oom", "collection_error": "collection_breaks",
            "no_tests": "collection_breaks", "aborted": "run_aborted"}.get(run.status, "infra_error")


def read_file(container, path: str) -> bytes | None:
    """One file out of a container (running or stopped); None when it does not exist."""
    import docker  # noqa: PLC0415

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tf:
        members = tf.getmembers()
        fh = tf.extractfile(members[0]) if members else None
        return fh.read() if fh else None


def tar_file(name: str, data: bytes) -> bytes:
    """A tar archive holding one file, for ``put_archive``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()




def _is_read_timeout(e: BaseException) -> bool:
    """The wall clock ran out (requests' read timeout), as opposed to a dead or unreachable engine."""
    import requests  # noqa: PLC0415  (the Docker SDK's transport)

    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, requests.exceptions.ReadTimeout) or "Read timed out" in str(e):
            return True
        e = e.__cause__ or e.__context__
    return False


def _infra(t0: float, reason: str) -> TestRun:
    return TestRun("infra_error", None, time.monotonic() - t0, reason=reason)
