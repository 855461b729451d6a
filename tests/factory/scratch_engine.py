"""A second, empty Docker engine on this machine: "a second machine's worth of state".

Pull tests and the registry bench need an engine that holds none of our layers; deleting images
from the shared engine would break other tests (and other people's runs), so this starts its own
``dockerd`` with its own data root, exec root, socket and bridge interface, and no iptables rules
(graded runs have no network anyway), and stops it — the process it started, by pid — at the end.

Never ``--bridge none``: a dockerd started so deletes the host's ``docker0``, which the shared
engine's containers need (seen here: "could not find bridge docker0"). The scratch engine gets a
bridge of its own (``tfd<N>``, a /24 of 10.213.0.0/16), removed afterwards.
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
    n = os.getpid() % 250 + 1
    bridge = f"tfd{n}"
    for cmd in (["ip", "link", "add", "name", bridge, "type", "bridge"],
                ["ip", "addr", "add", f"10.213.{n}.1/24", "dev", bridge], ["ip", "link", "set", bridge, "up"]):
        subprocess.run(cmd, capture_output=True, check=True)
    log = open(root / "dockerd.log", "ab")
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "d.pid"), "-H", host, "--bridge", bridge, "--iptables=false",
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
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
