"""A second, empty Docker engine on this machine: "a second machine's worth of state".

Pull tests and the registry bench need an engine that holds none of our layers; deleting images
from the shared engine would break other tests (and other people's runs), so this starts its own
``dockerd`` with its own data root, exec root and socket (no bridge, no iptables: graded runs
have no network anyway), and stops it — the process it started, by pid — at the end.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def scratch_engine(wait_s: float = 60.0):
    """Yield ``DOCKER_HOST`` of a fresh, empty engine; everything it stored is removed afterwards."""
    if shutil.which("dockerd") is None or os.geteuid() != 0:
        raise RuntimeError("a scratch engine needs dockerd and root")
    root = Path(tempfile.mkdtemp(prefix="tfd-", dir="/tmp"))  # short: the socket path has a length limit
    host = f"unix://{root}/d.sock"
    log = open(root / "dockerd.log", "ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "d.pid"), "-H", host, "--bridge", "none", "--iptables=false",
         "--ip6tables=false"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        import docker

        deadline = time.monotonic() + wait_s
        while True:
            try:
                docker.DockerClient(base_url=host, timeout=5).ping()
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("scratch dockerd did not start: "
                                       + (root / "dockerd.log").read_text(errors="replace")[-500:]) from None
                time.sleep(0.5)
        yield host
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
