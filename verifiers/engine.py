"""Reach a Docker engine, starting (and on Debian, installing) one where we are allowed to.

Users, ``make`` and the tests all come through ``ensure_engine``: the same code path that a
fresh machine takes in CI is the one a user takes by hand. Where the engine cannot be started
(not root, no package manager), the error says exactly what to do instead.

Not for: building images or running containers (``verifiers.images``, ``verifiers.sandbox``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from factory.errors import EngineUnavailable

__all__ = ["docker_client", "ensure_engine"]

_DOCKERD_LOG = Path("/var/log/taskfactory-dockerd.log")


def _import_docker():
    try:
        import docker  # noqa: PLC0415  (heavy, imported where used)
    except ImportError as e:  # pragma: no cover - docker is a core dependency
        raise EngineUnavailable("the docker SDK is missing: pip install 'taskfactory'") from e
    return docker


def _ping(timeout: float = 5.0):
    docker = _import_docker()
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except Exception:  # any failure to connect means "not reachable yet"; callers decide
        return None


def docker_client(timeout: float = 600.0):
    """A client for a running engine, or EngineUnavailable with what to do."""
    client = _ping()
    if client is None:
        raise EngineUnavailable(
            "no Docker engine answers at DOCKER_HOST or /var/run/docker.sock; "
            "run `make engine` (root on Debian installs and starts docker.io) or start Docker yourself"
        )
    docker = _import_docker()
    return docker.from_env(timeout=timeout)


def ensure_engine(install: bool = True, wait_s: float = 60.0, quiet: bool = False):
    """Return a client for a running engine, starting or installing ``dockerd`` if needed."""
    client = _ping()
    if client is not None:
        return docker_client()
    if os.environ.get("DOCKER_HOST"):
        raise EngineUnavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer; start that engine")
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if shutil.which("dockerd") is None:
        if not (install and is_root and shutil.which("apt-get")):
            raise EngineUnavailable(
                "Docker is not installed and cannot be installed here (needs root and apt-get); "
                "install Docker Engine (https://docs.docker.com/engine/install/) and start it"
            )
        _log(quiet, "installing docker.io with apt-get (one time)...")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker.io"]):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise EngineUnavailable(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}")
    if not is_root:
        raise EngineUnavailable(
            "dockerd is installed but not running, and starting it needs root: "
            "`sudo systemctl start docker` (or `sudo dockerd &`), then add yourself to the docker group"
        )
    _log(quiet, "starting dockerd in the background...")
    _DOCKERD_LOG.parent.mkdir(parents=True, exist_ok=True)
    with open(_DOCKERD_LOG, "ab") as log:
        subprocess.Popen(
            ["dockerd"], stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
        )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _ping(timeout=2.0) is not None:
            _log(quiet, "dockerd is up")
            return docker_client()
        time.sleep(0.5)
    tail = _DOCKERD_LOG.read_text(errors="replace")[-600:] if _DOCKERD_LOG.exists() else ""
    raise EngineUnavailable(f"dockerd did not answer within {wait_s:.0f}s; its log ends: {tail}")


def _log(quiet: bool, msg: str) -> None:
    if not quiet:
        print(f"[engine] {msg}", file=sys.stderr)


def main() -> int:
    """``python -m verifiers.engine``: make sure an engine runs (what ``make engine`` calls)."""
    try:
        client = ensure_engine()
    except EngineUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"docker engine {client.version().get('Version', '?')} is running")
    return 0


if __name__ == "__main__":
    sys.exit(main())
