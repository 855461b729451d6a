"""Sessions on published tasks: a container per session, tools an agent calls, a reward at the end.

    with Runtime() as rt:
        s = rt.open(row)                       # row: a task's columns (image_name, base_commit, ...)
        s.exec("python -m pytest -x tests")    # -> Observation(output, exit_code, timed_out, seconds)
        s.read("src/pkg/mod.py", 10, 40); s.write(path, text); s.edit(path, old, new)
        s.diff()                               # the patch against base_commit
        sub = s.submit()                       # graded by verifiers.grade.grade_patch; sub.reward

Each session's container comes from the task's ``image_name`` with grading's isolation
(``verifiers.isolation.container_kwargs``: no network, every capability dropped, no new privileges,
memory/process/CPU limits); its root stays writable, as for any agent. ``submit`` grades the patch
in a fresh container by the hardened grader, never in the session's own (where the agent's
processes could still be running).

Cleanup: every container carries ``taskfactory.role=rollout``, this runtime's id and its owner
(``host:pid``). ``Runtime.close`` (also at interpreter exit and on SIGTERM) removes its own;
``sweep_orphans`` — run whenever a runtime starts — removes containers whose owner process on this
host is gone (a crash, a SIGKILL). CLI sessions (``python -m rollouts open``) are owned by ``cli``
and live until ``close`` or ``sweep --all``.

Warm starts: ``Runtime(warm=N)`` keeps N started, unused containers per image that sessions have
opened (``prewarm`` asks for them ahead); ``open`` takes one and refills in the background.
"""

from __future__ import annotations

import atexit
import os
import secrets
import signal
import socket
import threading
import time
import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from factory.errors import FactoryError
from verifiers.isolation import ExecTimeout, Limits, container_kwargs, exec_in, remove_container

__all__ = ["Observation", "Runtime", "Session", "Submission", "ToolError", "sweep_orphans"]

ROLE = "taskfactory.role"
OWNER = "taskfactory.rollout.owner"
RUNTIME = "taskfactory.session"
INSTANCE = "taskfactory.rollout.instance"
DATASET = "taskfactory.rollout.dataset"
MAX_OUTPUT = 16_000
_ENV_CHUNK = 100_000  # below Linux's per-string limit for an exec's environment (128 KiB)


class ToolError(FactoryError):
    """A tool call the session refuses (no such file, an edit that does not match): the agent's
    mistake, given back to it as the observation."""

    reason = "tool_error"


class SessionError(FactoryError):
    """The session's container or engine failed (not the agent's doing)."""

    reason = "session_error"


@dataclass
class Observation:
    output: str
    exit_code: int
    timed_out: bool = False
    seconds: float = 0.0

    def text(self) -> str:
        tail = f"[timed out after {self.seconds:.0f}s]" if self.timed_out else f"[exit code {self.exit_code}]"
        return f"{self.output}{'' if not self.output or self.output.endswith(chr(10)) else chr(10)}{tail}"


@dataclass
class Submission:
    patch: str
    reward: float
    result: object  # verifiers.grade.GradeResult

    def text(self) -> str:
        r = self.result
        if r.error:
            return f"reward {self.reward:g}: {r.error}"
        return (f"reward {self.reward:g} ({'resolved' if r.resolved else 'not resolved'}): FAIL_TO_PASS "
                f"{len(r.f2p_success)}/{len(r.f2p_success) + len(r.f2p_failure)} pass, PASS_TO_PASS "
                f"{len(r.p2p_success)}/{len(r.p2p_success) + len(r.p2p_failure)} pass"
                + (f", tampered: {r.tampered}" if r.tampered else ""))


def _cut(text: str, limit: int = MAX_OUTPUT) -> str:
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]}\n[... {len(text) - 2 * half} characters cut ...]\n{text[-half:]}"


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"




def sweep_orphans(client, everything: bool = False) -> int:
    """Remove rollout containers whose owning process on this host has exited (``everything``:
    every rollout container, CLI sessions included). How many were removed."""
    host = socket.gethostname()
    n = 0
    for c in client.containers.list(all=True, filters={"label": f"{ROLE}=rollout"}):
        owner = (c.labels or {}).get(OWNER, "")
        h, _, pid = owner.rpartition(":")
        if not everything:
            if owner == "cli" or h != host or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
                continue  # alive
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
        remove_container(c)
        n += 1
    return n


class Session:
    """One agent's container on one task. Not thread-safe: one agent drives one session."""

    def __init__(self, runtime: Runtime, instance: dict, container, started_s: float = 0.0) -> None:
        self.runtime = runtime
        self.instance = instance
        self.container = container
        self.started_s = started_s
        self.steps = 0
        self.submission: Submission | None = None

    @property
    def name(self) -> str:
        return self.container.name

    # -- the primitive ---------------------------------------------------------------------------

    def _run(self, argv: list[str], env: dict | None = None, guard_s: float = 120.0) -> tuple[int, str]:
        try:
            code, raw = exec_in(self.runtime.client, self.container.id, argv, timeout_s=guard_s, env=env)
        except ExecTimeout:
            raise SessionError(f"exec in {self.name} did not return within {guard_s:.0f}s") from None
        except Exception as e:
            raise SessionError(f"exec failed in {self.name}: {e}") from e
        if code is None:
            raise SessionError(f"exec in {self.name} ended without an exit code (container gone?)")
        self.steps += 1
        return int(code), raw.decode("utf-8", errors="replace")

    # -- tools -----------------------------------------------------------------------------------

    def exec(self, command: str, timeout: float = 60.0) -> Observation:
        """Run ``command`` with bash in /testbed; the whole process group is killed at ``timeout``."""
        t0 = time.monotonic()
        t = max(1, int(round(timeout)))
        code, out = self._run(["timeout", "-k", "2", str(t), "bash", "-c", command], guard_s=t + 30)
        dt = time.monotonic() - t0
        return Observation(_cut(out), code, timed_out=code in (124, 137) and dt >= t - 0.5, seconds=dt)

    def read(self, path: str, start_line: int | None = None, end_line: int | None = None) -> str:
        """A file's text (lines ``start_line``..``end_line``, 1-based, inclusive, when given)."""
        a, b = start_line or 1, end_line or 0
        script = ('[ -f "$P" ] || { echo "TF-NOFILE"; exit 3; }; '
                  'if [ "$B" -gt 0 ]; then sed -n "${A},${B}p" -- "$P"; elif [ "$A" -gt 1 ]; then '
                  'tail -n "+$A" -- "$P"; else cat -- "$P"; fi')
        code, out = self._run(["bash", "-c", script], env={"P": path, "A": str(a), "B": str(b)})
        if code == 3 and out.startswith("TF-NOFILE"):
            raise ToolError(f"{path}: no such file")
        if code != 0:
            raise ToolError(f"cannot read {path}: {out.strip()[-300:]}")
        return out

    def write(self, path: str, content: str) -> str:
        """Create or overwrite a file (parents made; an existing file keeps its mode)."""
        data = content.encode()
        if len(data) < _ENV_CHUNK and "\0" not in content:
            code, out = self._run(["bash", "-c", 'mkdir -p -- "$(dirname -- "$P")" && printf "%s" "$D" > "$P"'],
                                  env={"P": path, "D": content})
        else:
            from verifiers.sandbox import tar_file  # noqa: PLC0415

            tmp = f"tf-write-{secrets.token_hex(6)}"
            try:
                self.container.put_archive("/tmp", tar_file(tmp, data))
            except Exception as e:
                raise SessionError(f"copy into {self.name} failed: {e}") from e
            code, out = self._run(["bash", "-c", f'mkdir -p -- "$(dirname -- "$P")" && cat /tmp/{tmp} > "$P"; '
                                   f'rc=$?; rm -f /tmp/{tmp}; exit $rc'], env={"P": path})
        if code != 0:
            raise ToolError(f"cannot write {path}: {out.strip()[-300:]}")
        return f"wrote {path} ({len(data)} bytes, {content.count(chr(10))} lines)"

    def edit(self, path: str, old: str, new: str) -> str:
        """Replace the one occurrence of ``old`` in ``path`` by ``new``."""
        if not old:
            raise ToolError("old must not be empty (use write to create a file)")
        text = self.read(path)
        n = text.count(old)
        if n == 0:
            raise ToolError(f"{path}: old text not found (it must match the file exactly, whitespace included)")
        if n > 1:
            raise ToolError(f"{path}: old text found {n} times; include more lines around it so it is unique")
        at = text.index(old)
        result = text[:at] + new + text[at + len(old):]
        self.write(path, result)
        first = text.count("\n", 0, at) + 1
        lines = result.split("\n")
        lo, hi = max(1, first - 2), min(len(lines), first + new.count("\n") + 2)
        snippet = "\n".join(f"{i:6d}\t{lines[i - 1]}" for i in range(lo, hi + 1))
        return f"edited {path}: replaced 1 occurrence at line {first}. Lines {lo}-{hi} now read:\n{snippet}"

    def diff(self) -> str:
        """The patch from ``base_commit`` to the working tree, new files included."""
        base = self.instance["base_commit"]
        code, out = self._run(["bash", "-c", 'git add -A >/dev/null 2>&1 && git -c core.quotepath=false diff --cached '
                               '--binary "$B"; rc=$?; git reset -q >/dev/null 2>&1; exit $rc'], env={"B": base})
        if code != 0:
            raise SessionError(f"git diff failed in {self.name}: {out.strip()[-300:]}")
        return out

    def submit(self) -> Submission:
        """Grade ``diff()`` with the hardened grader (a fresh container); reward 1.0 iff resolved."""
        from verifiers.grade import grade_patch  # noqa: PLC0415

        patch = self.diff()
        res = grade_patch(self.runtime.client, self.instance, patch, self.runtime.grade_limits)
        self.submission = Submission(patch, 1.0 if res.resolved else 0.0, res)
        return self.submission

    # -- calls from a trajectory -----------------------------------------------------------------

    def call(self, name: str, args: dict) -> str:
        """Run one tool call and return its observation text (a refused call's reason included)."""
        try:
            if name == "bash":
                return self.exec(args["command"], args.get("timeout", 60)).text()
            if name == "read":
                return self.read(args["path"], args.get("start_line"), args.get("end_line"))
            if name == "write":
                return self.write(args["path"], args["content"])
            if name == "edit":
                return self.edit(args["path"], args["old"], args["new"])
            if name == "diff":
                return self.diff() or "(no changes)"
            if name == "submit":
                return self.submit().text()
        except ToolError as e:
            return f"error: {e}"
        raise ToolError(f"unknown tool {name!r}")

    def close(self) -> None:
        if self.container is not None:
            remove_container(self.container)
            self.container = None
            self.runtime._forget(self)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_LIVE: weakref.WeakSet = weakref.WeakSet()


def _close_all() -> None:
    for rt in list(_LIVE):
        rt.close()


atexit.register(_close_all)


def _on_sigterm(signum, frame):  # pragma: no cover - exercised by a subprocess test
    _close_all()
    raise SystemExit(128 + signum)


@dataclass
class Runtime:
    """Opens sessions; owns their containers. Thread-safe: many sessions may be opened in parallel."""

    client: object = None
    limits: Limits = field(default_factory=lambda: Limits(timeout_s=900))
    grade_limits: Limits = field(default_factory=lambda: Limits(timeout_s=600))
    warm: int = 0
    owner: str = ""
    dataset: str = ""

    def __post_init__(self) -> None:
        if self.client is None:
            from verifiers.engine import ensure_engine  # noqa: PLC0415

            self.client = ensure_engine(quiet=True)
        self.id = f"rollout-{secrets.token_hex(6)}"
        self.owner = self.owner or _owner()
        self._lock = threading.Lock()
        self._sessions: set[Session] = set()
        self._spares: dict[str, list] = defaultdict(list)
        self._filling: dict[str, int] = defaultdict(int)
        self._closed = False
        self.orphans_swept = sweep_orphans(self.client)
        _LIVE.add(self)
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) in (
                signal.SIG_DFL, None):
            signal.signal(signal.SIGTERM, _on_sigterm)

    # -- containers ----------------------------------------------------------------------------------

    def _start(self, image: str, iid: str = ""):
        import docker  # noqa: PLC0415

        labels = {ROLE: "rollout", RUNTIME: self.id, OWNER: self.owner, INSTANCE: iid}
        if self.dataset:
            labels[DATASET] = self.dataset
        try:
            return self.client.containers.run(
                image, command=["sleep", "infinity"], detach=True, labels=labels,
                environment={"PYTHONDONTWRITEBYTECODE": "1", "PYTEST_ADDOPTS": "-p no:cacheprovider", "HOME": "/tmp"},
                name=f"tf-{self.id}-{secrets.token_hex(4)}", **container_kwargs(self.limits, read_only=False))
        except docker.errors.ImageNotFound as e:
            raise SessionError(f"task image {image} is not here (factory pull DATASET fetches it)") from e
        except docker.errors.APIError as e:
            raise SessionError(f"session container failed to start: {e.explanation or e}") from e

    def prewarm(self, image: str, n: int | None = None, wait: bool = False) -> None:
        """Start containers of ``image`` ahead so ``open`` finds them ready (up to ``warm`` or ``n``)."""
        want = self.warm if n is None else n
        threads = []
        with self._lock:
            need = want - len(self._spares[image]) - self._filling[image]
            self._filling[image] += max(0, need)
        for _ in range(max(0, need)):
            th = threading.Thread(target=self._fill, args=(image,), daemon=True)
            th.start()
            threads.append(th)
        if wait:
            for th in threads:
                th.join()

    def _fill(self, image: str) -> None:
        try:
            c = self._start(image)
        except SessionError:
            c = None
        with self._lock:
            self._filling[image] -= 1
            if c is not None and not self._closed:
                self._spares[image].append(c)
                return
        if c is not None:
            remove_container(c)

    def open(self, instance: dict) -> Session:
        """A session on ``instance`` (a row with the TaskInstance columns)."""
        if self._closed:
            raise SessionError("this runtime is closed")
        t0 = time.monotonic()
        image = instance["image_name"]
        with self._lock:
            c = self._spares[image].pop() if self._spares[image] else None
        if c is None:
            c = self._start(image, instance["instance_id"])
        if self.warm:
            self.prewarm(image)
        s = Session(self, instance, c, time.monotonic() - t0)
        with self._lock:
            self._sessions.add(s)
        return s

    def _forget(self, s: Session) -> None:
        with self._lock:
            self._sessions.discard(s)

    def close(self) -> None:
        """Remove every container of this runtime (sessions and spares), then sweep its label."""
        with self._lock:
            self._closed = True
            sessions, self._sessions = list(self._sessions), set()
            spares = [c for cs in self._spares.values() for c in cs]
            self._spares.clear()
        for s in sessions:
            if s.container is not None:
                remove_container(s.container)
                s.container = None
        for c in spares:
            remove_container(c)
        try:
            for c in self.client.containers.list(all=True, filters={"label": f"{RUNTIME}={self.id}"}):
                remove_container(c)
        except Exception:
            pass
        _LIVE.discard(self)

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __hash__(self) -> int:
        return hash(self.id)

    def __eq__(self, other) -> bool:
        return self is other


def attach(client, name: str, instance: dict) -> Session:
    """A CLI session by its container name (``python -m rollouts open`` printed it)."""
    import docker  # noqa: PLC0415

    try:
        c = client.containers.get(name)
    except docker.errors.NotFound as e:
        raise SessionError(f"no session {name!r} (closed, or swept)") from e
    rt = Runtime.__new__(Runtime)
    rt.client, rt.grade_limits, rt.id = client, Limits(timeout_s=600), (c.labels or {}).get(RUNTIME, "")
    rt._lock, rt._sessions = threading.Lock(), set()
    return Session(rt, instance, c)
