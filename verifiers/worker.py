"""A long-lived sandboxed container that judges many candidates on one environment image.

Starting a container costs more than many small test runs, so validation keeps one per worker:
apply a patch, run tests, read the report, reset the tree, next. The container has the same
limits as ``verifiers.sandbox`` (no network, memory and process caps, no capabilities, read-only
root with a scratch ``/testbed`` volume and ``/tmp`` tmpfs). A run that overstays its wall-clock
limit gets the whole container killed — every process in it — and the worker starts a fresh one.

Faults of the infrastructure (the container died, the image vanished) raise ``WorkerFault`` so
the caller can retry them; they are never reported as a candidate's outcome.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time

from factory.errors import FactoryError
from factory.schema import TestRun
from verifiers.isolation import ExecTimeout, container_kwargs, exec_in, remove_container, remove_labelled
from verifiers.runner import PytestRunner, Selection, TestRunner
from verifiers.sandbox import SandboxLimits, SessionReport, read_file, tar_file

__all__ = ["ARG_BUDGET", "LiveWorkers", "Worker", "WorkerFault", "sweep"]

_OUT = "/tf-out"
_SELECT_FILE = f"{_OUT}/select.txt"
# Bytes that one exec argument or environment variable may carry (a patch, the node ids): Linux
# refuses any single one over 128 KiB (E2BIG), so past half that, the payload goes through a file.
ARG_BUDGET = 64 * 1024


class WorkerFault(FactoryError):
    """The worker's container or engine failed; the candidate is not to blame."""

    reason = "infra_error"


class Worker:
    """One worker container at a time; every container it ever starts carries ``session``'s label,
    so ``sweep(client, session)`` can remove whatever an interrupted close left behind, and the
    starting process's id (``taskfactory.pid``), so that an operator (or a test) can tell which
    process owned a container a killed worker left."""

    def __init__(self, client, image: str, limits: SandboxLimits = SandboxLimits(), session: str = "",
                 runner: TestRunner | None = None) -> None:
        self.client = client
        self.image = image
        self.limits = limits
        self.session = session or "default"
        self.runner = runner or PytestRunner()
        self.container = None
        self.restarts = 0
        self.stopped = False  # shut(): no container is started again

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        import docker  # noqa: PLC0415

        self.close()
        if self.stopped:
            raise WorkerFault("the worker was shut: the run is stopping")
        try:
            self.container = self.client.containers.run(
                self.image, command=["sleep", "infinity"], detach=True,
                environment={"PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp"},
                **container_kwargs(self.limits, scratch=("/testbed", _OUT),
                                   labels={"taskfactory.role": "worker", "taskfactory.session": self.session,
                                           "taskfactory.pid": str(os.getpid())}),
            )
        except docker.errors.ImageNotFound as e:
            raise WorkerFault(f"environment image {self.image} is missing") from e
        except docker.errors.APIError as e:
            raise WorkerFault(f"worker container failed to start: {e.explanation or e}") from e

    def restart(self) -> None:
        self.restarts += 1
        self.start()

    def close(self) -> None:
        container, self.container = self.container, None
        remove_container(container)  # None: nothing to do

    def shut(self) -> None:
        """Close for good, from any thread: a run that is stopping (Ctrl-C, SIGTERM) shuts its
        workers so that a thread whose test run the close cuts short does not start another."""
        self.stopped = True
        self.close()

    def __enter__(self) -> Worker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- primitives --------------------------------------------------------------------------------

    def sh(self, script: str, timeout_s: float = 120.0, env: dict[str, str] | None = None) -> tuple[int, str]:
        """Run a shell script in the container; (exit code, output). WorkerFault on engine faults."""
        if self.container is None:
            self.start()
        try:
            code, raw = exec_in(self.client, self.container.id, ["bash", "-c", script], timeout_s=timeout_s, env=env)
        except ExecTimeout:
            raise _Timeout(timeout_s) from None
        except Exception as e:
            raise WorkerFault(f"exec failed: {e.__class__.__name__}: {e}") from e
        if code is None:
            raise WorkerFault("exec ended without an exit code (container died?)")
        return int(code), raw.decode(errors="replace")

    def put(self, path: str, data: bytes) -> None:
        """Write one file into the container (a volume path: ``/tf-out`` or ``/testbed``)."""
        if self.container is None:
            self.start()
        directory, name = path.rsplit("/", 1)
        try:
            self.container.put_archive(directory, tar_file(name, data))
        except Exception as e:
            raise WorkerFault(f"copy into container failed: {e}") from e

    def get(self, path: str) -> bytes | None:
        try:
            return read_file(self.container, path)
        except Exception as e:
            raise WorkerFault(f"copy out of container failed: {e}") from e

    # -- the steps of judging a candidate ------------------------------------------------------------

    _RESET = ("git reset -q --hard HEAD && git clean -qfd && { find /tmp -mindepth 1 -delete 2>/dev/null; "
              f"rm -f {_OUT}/*; true; }}")

    def reset(self) -> None:
        """Back to the image's clean tree, with an empty scratch area."""
        code, out = self.sh(self._RESET)
        if code != 0:
            raise WorkerFault(f"reset failed: {out[-300:]}")

    def apply(self, patch: str, reverse: bool = False, reset: bool = False) -> tuple[bool, str]:
        """``git apply`` a patch at /testbed (after a reset, with ``reset``); (applied, git's message).

        One exec does it all: each round trip to the engine costs tens of milliseconds, which is
        most of the sandbox's overhead on a fast suite. Small patches travel in the exec's
        environment; large ones are copied in first.
        """
        flag = "-R " if reverse else ""
        prefix = f"{{ {self._RESET}; }} || exit 97; " if reset else ""  # 97: the reset itself failed
        env = {}
        if len(patch.encode()) < ARG_BUDGET:
            env["TF_PATCH"] = patch
            write = f"printf '%s' \"$TF_PATCH\" > {_OUT}/candidate.diff"
        else:
            write = "true"
        if reset and not env:
            self.reset()
            prefix = ""
        if not env:
            self.put(f"{_OUT}/candidate.diff", patch.encode())
        code, out = self.sh(f"{prefix}{write} && git apply --whitespace=nowarn {flag}{_OUT}/candidate.diff", env=env)
        if code == 97 and prefix:
            raise WorkerFault(f"reset failed: {out[-300:]}")
        if code > 128:  # killed by a signal (git apply itself exits 1, or 128 on a corrupt patch)
            self.restart()
            raise WorkerFault(f"git apply was killed (exit {code}); worker restarted")
        return code == 0, out.strip()

    def diff(self, reverse: bool = False) -> str:
        """The working tree's change against HEAD; ``reverse``: the change that undoes it.

        ``-R`` swaps the a/ and b/ prefixes along with the sides, so they are swapped back here:
        the result reads like any forward patch (``diff --git a/x b/x``).
        """
        flags = "-R --src-prefix=b/ --dst-prefix=a/" if reverse else ""
        code, out = self.sh(f"git add -A -N . && git diff --no-color --no-ext-diff {flags}")
        if code != 0:
            raise WorkerFault(f"git diff failed: {out[-300:]}")
        return out

    def run(self, selection: Selection, timeout_s: float | None = None) -> TestRun:
        """One session of this worker's runner (``timeout_s``: its own wall-clock limit, else the
        worker's); an infrastructure fault raises WorkerFault.

        A selection too long for one command line goes in as a file (``Selection.ids_file``), for
        every runner."""
        tests = selection.tests
        if tests and selection.ids_file is None and sum(len(t) + 1 for t in tests) > ARG_BUDGET:
            self.put(_SELECT_FILE, ("\n".join(tests) + "\n").encode())
            selection = dataclasses.replace(selection, ids_file=_SELECT_FILE)
        run, _ = self.run_tests(self.runner.command(selection), timeout_s=timeout_s)
        if run.status == "infra_error":
            raise WorkerFault(run.reason)
        return run

    def run_tests(self, command: str, timeout_s: float | None = None, *, report: str = f"{_OUT}/report.jsonl",
                  env: dict[str, str] | None = None, key: bytes | None = None) -> tuple[TestRun, SessionReport]:
        """One pytest session; a timeout kills the container (and restarts the worker).

        Grading passes its own ``report`` path, ``env`` and the guard's ``key`` (see
        ``verifiers.grade``); the report is then checked record by record.
        """
        timeout_s = timeout_s or self.limits.timeout_s
        t0 = time.monotonic()
        try:
            code, out = self.sh(f"rm -f {report}; {command}", timeout_s=timeout_s,
                                env={**(env or {}), "TF_REPORT": report})
        except _Timeout:
            # What the session reported before the limit (the verdict tells a hang from a suite
            # slowed down by failures with it), read before the container goes. Not for grading
            # (``key``): a session that hung proves nothing, whatever it wrote before.
            try:
                if key is not None:
                    raise _Timeout(timeout_s)
                raw = self.get(report)
                partial, rep = self.runner.read(None, time.monotonic() - t0,
                                                raw.decode(errors="replace") if raw else "", "", key=key)
            except Exception:  # a dying container: no partial results, still a timeout
                partial, rep = TestRun("timeout", None, 0.0), SessionReport()
            self.restart()
            return TestRun("timeout", None, time.monotonic() - t0, partial.results, partial.collected,
                           reason=f"killed after the {timeout_s:.0f}s wall-clock limit"), rep
        wall = time.monotonic() - t0
        if code == 137:
            # SIGKILL. Inside a live container it is the memory limit's OOM kill of the test
            # process; a container that stopped was killed from outside (or the engine failed),
            # which is no fault of the candidate: the caller retries on a fresh worker.
            if not self._alive():
                try:
                    self.container.reload()
                    oom = bool(self.container.attrs.get("State", {}).get("OOMKilled"))
                except Exception:  # removed from outside (docker rm -f): nothing left to ask
                    oom = False
                self.restart()
                if not oom:
                    raise WorkerFault("the worker container was killed from outside during a test run")
            else:
                # What the killed run left behind (children, memory) must not reach the next one.
                self.restart()
            return TestRun("oom", code, wall, reason=f"killed (exit 137; memory limit {self.limits.mem})"), SessionReport()
        raw = self.get(report)
        return self.runner.read(code, wall, raw.decode(errors="replace") if raw else "", out[-6000:], key=key)

    def _alive(self) -> bool:
        """Whether the container still runs commands (a kill from outside takes its init with it)."""
        time.sleep(0.2)  # let a kill in flight land before probing
        try:
            self.container.reload()
            if self.container.status != "running":
                return False
            code, _ = self.sh("true", timeout_s=10)
            return code == 0
        except (WorkerFault, _Timeout):
            return False
        except Exception:  # the engine no longer knows the container
            return False

    def read_files(self, paths: list[str]) -> dict[str, str | None]:
        """Contents at /testbed of each path now (None for a path that does not exist)."""
        out = {}
        for p in paths:
            data = self.get(f"/testbed/{p}")
            out[p] = data.decode("utf-8", errors="replace") if data is not None else None
        return out




class LiveWorkers:
    """The workers a run's threads hold right now, so that the run's main thread can shut them all
    when it is stopping (Ctrl-C, SIGTERM). A shut worker starts no container again: a thread whose
    test run the shut cuts short gets a WorkerFault at once instead of carrying on in a fresh
    container, so the run lets go in seconds. A worker that joins after ``shut_all`` is shut at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: set[Worker] = set()
        self.shutting = False

    def join(self, worker: Worker) -> None:
        with self._lock:
            self._live.add(worker)
            late = self.shutting
        if late:
            worker.shut()

    def leave(self, worker: Worker) -> None:
        with self._lock:
            self._live.discard(worker)

    def shut_all(self) -> None:
        """Shut every live worker. The lock is held only to take the list: a shut removes its
        container (up to seconds each), and a thread joining or leaving meanwhile must not wait on
        that; one that joins after ``shutting`` is set shuts its own worker."""
        with self._lock:
            self.shutting = True
            live = list(self._live)
        for worker in live:
            worker.shut()


def sweep(client, session: str) -> int:
    """Remove every container left with ``session``'s label; how many there were."""
    return remove_labelled(client, f"taskfactory.session={session}")


class _Timeout(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"exec exceeded {seconds:.0f}s")
