"""The runtime on a real task image: tools, isolation, grading, parallel sessions, cleanup, and the
oracle's trajectories replaying to reward 1. The task is built here (tests/verifiers/sample_repo.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import pytest

from factory.schema import Candidate
from rollouts.oracle import replay, solve
from rollouts.runtime import ROLE, Runtime, sweep_orphans
from rollouts.templates import FORMATS, parse, render
from tests.conftest import bug_patch
from tests.verifiers.sample_repo import SAMPLE_FILES
from verifiers.validate import ValidateConfig, validate_candidates

pytestmark = pytest.mark.docker
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def task(docker_client, sample) -> dict:
    root, co, env, base, cov = sample
    clamp = SAMPLE_FILES["sample/__init__.py"]
    cand = Candidate("rollout_me", "sample", co.commit, "mutation",
                     bug_patch(root, "sample/__init__.py", clamp.replace("return hi", "return lo")),
                     covering_tests=cov[("sample/__init__.py", 9)])
    got = []
    validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1),
                        on_result=lambda v, i: got.append(i))
    assert got[0] is not None
    return asdict(got[0])


@pytest.fixture(scope="module")
def rt(docker_client):
    with Runtime(docker_client) as r:
        yield r


def test_tools_isolation_and_graded_submit(rt, task):
    with rt.open(task) as s:
        obs = s.exec("echo out; echo err >&2; exit 3")
        assert (obs.exit_code, obs.timed_out) == (3, False) and "out" in obs.output and "err" in obs.output
        t0 = time.monotonic()
        obs = s.exec("sleep 30 & sleep 30; echo never", timeout=2)
        assert obs.timed_out and "never" not in obs.output and time.monotonic() - t0 < 10
        assert "sleep 30" not in s.exec("ps -eo args").output  # the whole group was killed
        assert "no-network" in s.exec("python -c \"import socket; socket.create_connection(('1.1.1.1', 80), 2)\" "
                                      "|| echo no-network").output
        assert "CapEff:\t0000000000000000" in s.exec("grep CapEff /proc/self/status").output
        src = s.read("sample/__init__.py")
        assert "return lo\n    return x" in src
        assert s.read("sample/__init__.py", 5, 6) == "".join(src.splitlines(keepends=True)[4:6])
        assert s.call("read", {"path": "nope.py"}) == "error: nope.py: no such file"
        assert "found 2 times" in s.call("edit", {"path": "sample/__init__.py", "old": "return lo", "new": "x"})
        assert "not found" in s.call("edit", {"path": "sample/__init__.py", "old": "zzz", "new": "x"})
        wrong = s.submit()  # nothing changed yet
        assert wrong.reward == 0.0 and not wrong.result.resolved
        fixed = src.replace("    if x > hi:\n        return lo", "    if x > hi:\n        return hi")
        assert fixed != src
        s.write("sample/__init__.py", fixed)
        s.write("notes/new.txt", "a new file\n")
        patch = s.diff()
        assert "+        return hi" in patch and "notes/new.txt" in patch
        sub = s.submit()
        assert sub.reward == 1.0 and sub.result.resolved and sub.patch == patch
        assert "reward 1 (resolved)" in sub.text()


def test_parallel_sessions_are_separate(rt, task):
    sessions = [None] * 3

    def go(i):
        sessions[i] = rt.open(task)
        sessions[i].write("who.txt", f"session {i}\n")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(3)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len({s.name for s in sessions}) == 3
    assert [s.read("who.txt") for s in sessions] == [f"session {i}\n" for i in range(3)]
    for s in sessions:
        s.close()


def test_warm_spares_start_fast_and_are_removed_on_close(docker_client, task):
    with Runtime(docker_client, warm=2) as warm:
        warm.prewarm(task["image_name"], wait=True)
        s = warm.open(task)
        assert s.started_s < 0.2 and s.exec("true").exit_code == 0
        ids = {c.id for c in docker_client.containers.list(all=True, filters={"label": f"taskfactory.session={warm.id}"})}
        assert len(ids) >= 2
    left = docker_client.containers.list(all=True, filters={"label": f"taskfactory.session={warm.id}"})
    assert left == []


_CHILD = """
import json, os, signal, sys, time
sys.path.insert(0, {root!r})
from rollouts.runtime import Runtime
task = json.loads(sys.stdin.read())
rt = Runtime()
s = rt.open(task)
print(s.name, flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_sessions_of_a_dead_process_are_cleaned_up(docker_client, task, sig):
    child = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=str(ROOT))], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    child.stdin.write(json.dumps(task, default=str))
    child.stdin.close()
    name = child.stdout.readline().strip()
    assert name and docker_client.containers.get(name).status == "running"
    os.kill(child.pid, sig)
    child.wait(30)
    names = lambda: {c.name for c in docker_client.containers.list(all=True, filters={"label": f"{ROLE}=rollout"})}  # noqa: E731
    if sig == signal.SIGTERM:  # the process's own handler removed it
        assert name not in names()
    else:  # SIGKILL: nothing ran; the next runtime (or sweep) removes what the dead process owned
        assert name in names()
        assert sweep_orphans(docker_client) >= 1
        assert name not in names()


def test_oracle_trajectories_reward_1_replay_and_round_trip(rt, task):
    for variant in ("direct", "recovery"):
        with rt.open(task) as s:
            t = solve(s, task, variant)
        assert t.meta["reward"] == 1.0
        calls = [c.name for m in t.messages for c in m.calls]
        assert calls[0] == "bash" and calls[-1] == "submit" and "edit" in calls and "read" in calls
        results = [m.content for m in t.messages if m.role == "tool"]
        assert "[exit code 1]" in results[0] and "failed" in results[0]  # the real failing run
        if variant == "recovery":
            assert calls.count("edit") == 2
            i = [m.calls[0].name if m.calls else "" for m in t.messages].index("edit")
            assert "[exit code 1]" in t.messages[i + 3].content  # the wrong edit's failing run
        assert results[-1].startswith("reward 1 (resolved)")
        reward, diffs = replay(rt, task, t)
        assert reward == 1.0 and diffs == []
        for f in FORMATS:
            assert parse(f, render(f, t)) == t
