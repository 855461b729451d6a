"""The one container policy: how every container that runs a task's code is started.

Grading, validation, the baseline and an agent's session all start containers from task or
environment images, and all of them get the same isolation: no network (an agent could download
the original sdist or clone upstream and read the fix), every capability dropped, no new
privileges, a memory limit with swap included, a process limit, a CPU quota. Test runs add a
read-only root with throw-away ``/testbed`` and scratch volumes; an agent's interactive session
keeps its root writable (agents install tools) but nothing else changes.

``container_kwargs`` is the policy for the Docker SDK; ``docker_run_flags`` is the same policy as
``docker run`` flags, which the dataset card and ``docs/grading.md`` print for users.

Every container started for a ``factory run`` carries the run's label (``taskfactory.run``, from
``TASKFACTORY_RUN``, which the run's executor sets in each process that works for it), so
``sweep_run`` can remove whatever a killed worker or node left on an engine — by run, not only by
the validation session that a killed process never got to sweep.
"""

from __future__ import annotations

import os
import shlex
import threading
import time
from dataclasses import dataclass

from factory import defaults

__all__ = ["RUN_ENV", "RUN_LABEL", "ExecTimeout", "Limits", "agent_command", "container_kwargs", "docker_run_flags",
           "exec_in", "remove_container", "run_labels", "sweep_run"]

RUN_ENV = "TASKFACTORY_RUN"  # the id of the run this process works for (set by the executor)
RUN_LABEL = "taskfactory.run"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one container (``verifiers.sandbox.SandboxLimits`` is this)."""

    timeout_s: float = defaults.TEST_TIMEOUT_S
    mem: str = defaults.MEM
    pids: int = defaults.PIDS
    cpus: float = defaults.CPUS
    tmpfs_size: str = defaults.TMPFS_SIZE


def run_labels() -> dict[str, str]:
    """The labels of this process's run (none outside a ``factory run``)."""
    run = os.environ.get(RUN_ENV, "")
    return {RUN_LABEL: run} if run else {}


def container_kwargs(limits: Limits, *, read_only: bool = True, scratch: tuple[str, ...] = ("/testbed",),
                     labels: dict[str, str] | None = None) -> dict:
    """Keyword arguments for ``client.containers.create/run``: isolation plus limits.

    ``read_only``: a read-only root, with each path of ``scratch`` as a fresh volume and ``/tmp``
    a tmpfs (test runs). Agents' sessions pass ``read_only=False``. ``labels``: the caller's own;
    the run's label (``run_labels``) is added to them (a caller that passes its labels to
    ``containers.run`` itself gets none added unless it is inside a run).
    """
    # No network but the loopback: network_mode "none". Not also network_disabled: with it Docker
    # writes an empty /etc/hosts, "localhost" does not resolve, and suites that talk to themselves
    # over it hang or fail (rope's object analysis waited forever on its child's socket).
    kw = {
        "network_mode": "none",
        "mem_limit": limits.mem, "memswap_limit": limits.mem, "pids_limit": limits.pids,
        "nano_cpus": int(limits.cpus * 1e9),
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"], "working_dir": "/testbed",
    }
    if read_only:
        from docker.types import Mount  # noqa: PLC0415

        kw["read_only"] = True
        kw["tmpfs"] = {"/tmp": f"rw,exec,size={limits.tmpfs_size}"}
        kw["mounts"] = [Mount(target=p, source=None, type="volume") for p in scratch]
    if labels is not None or run_labels():
        kw["labels"] = {**run_labels(), **(labels or {})}
    return kw


def docker_run_flags(limits: Limits = Limits()) -> list[str]:
    """The same isolation as ``docker run`` flags (an agent's session: writable root)."""
    return ["--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            "--memory", limits.mem, "--memory-swap", limits.mem, "--pids-limit", str(limits.pids),
            "--cpus", f"{limits.cpus:g}", "-w", "/testbed"]


def agent_command(image: str, limits: Limits = Limits(), command: tuple[str, ...] = ("bash",),
                  interactive: bool = True) -> list[str]:
    """``docker run`` for an agent on a task image, with grading's isolation."""
    return ["docker", "run", "--rm", *(["-it"] if interactive else []), *docker_run_flags(limits), image, *command]


def agent_command_text(image: str = "IMAGE_NAME", limits: Limits = Limits()) -> str:
    return shlex.join(agent_command(image, limits))


def remove_container(container, tries: int = 3, wait_s: float = 1.0) -> None:
    """Kill and remove a container with its volumes; a busy one can need another try (the engine
    was slow to kill it), a gone one needs none. Never raises: cleanup must not hide a result."""
    if container is None:
        return
    import docker  # noqa: PLC0415

    for _ in range(tries):
        try:
            container.remove(force=True, v=True)
            return
        except docker.errors.NotFound:
            return
        except Exception:  # the engine was slow to kill: try again
            time.sleep(wait_s)


def remove_labelled(client, label: str) -> int:
    """Remove every container with ``label`` (``key=value``) on this engine; how many there were.

    The listing is sparse (no inspect per container): a full one inspects each container it lists
    and raised NotFound when another thread removed one in between, which ended a stopped run's
    sweep with its other containers still there. Never raises for one container."""
    left = client.containers.list(all=True, sparse=True, filters={"label": label})
    for c in left:
        remove_container(c)
    return len(left)


def sweep_run(client, run: str) -> int:
    """Remove every container of run ``run`` on this engine (a killed worker's, a killed node's
    leftovers on a shared engine); how many there were. Never raises for one container."""
    return remove_labelled(client, f"{RUN_LABEL}={run}") if run else 0


class ExecTimeout(Exception):
    """An exec did not return within its limit (it may still run: the caller removes the container)."""


def exec_in(client, container_id: str, argv: list[str], *, timeout_s: float, env: dict[str, str] | None = None,
            workdir: str = "/testbed") -> tuple[int | None, bytes]:
    """Run ``argv`` in a running container and wait at most ``timeout_s``: (exit code, output).
    The code is None when the exec ended without one (the container died under it). The engine's
    errors are raised as they come; ``ExecTimeout`` past the limit. Workers and agents' sessions
    both run their commands through this."""
    api = client.api
    exec_id = api.exec_create(container_id, argv, environment=env or {}, workdir=workdir)["Id"]
    box: dict = {}

    def _go() -> None:
        try:
            box["out"] = api.exec_start(exec_id, stream=False, demux=False)
        except Exception as e:  # raised in the caller's thread below
            box["err"] = e

    th = threading.Thread(target=_go, daemon=True)
    th.start()
    th.join(timeout_s)
    if th.is_alive():
        raise ExecTimeout(f"exec did not return within {timeout_s:.0f}s")
    if "err" in box:
        raise box["err"]
    return api.exec_inspect(exec_id).get("ExitCode"), box.get("out") or b""
