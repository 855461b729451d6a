"""Sandboxed test runs against a real engine, on a real project with awkward tests."""

from __future__ import annotations

import shlex

import pytest

from factory.repo import checkout
from factory.schema import RepoSpec
from tests.conftest import make_repo
from tests.verifiers.sample_repo import EXPECTED, SAMPLE_FILES
from verifiers.images import build_env_image
from verifiers.sandbox import SandboxLimits, pytest_command, run_tests

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sample_env(docker_client, base_image, tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    make_repo(root, SAMPLE_FILES)
    co = checkout(RepoSpec(source=str(root)))
    return build_env_image(docker_client, co, log=lambda _m: None)


def test_every_outcome_and_node_id_is_read_exactly(docker_client, sample_env):
    run, report = run_tests(docker_client, sample_env.tag, pytest_command(sample_env.spec.test_cmd))
    assert run.status == "ok", run.reason
    assert run.exit_code == 1
    assert set(run.collected) == set(EXPECTED)
    assert {r.nodeid: r.outcome for r in run.results} == EXPECTED
    assert "one and one make three" in run.by_nodeid()["tests/test_basic.py::test_wrong"].message


def test_network_is_disabled_inside_the_sandbox(docker_client, sample_env):
    nodeid = "tests/test_net.py::test_network_is_reachable"
    run, _ = run_tests(docker_client, sample_env.tag, pytest_command("python -m pytest", select=[nodeid]))
    assert run.status == "ok"
    assert run.by_nodeid()[nodeid].outcome == "failed"
    # The same test with the network allowed shows the failure above is the sandbox's doing,
    # unless this machine itself is offline (then both fail and the check is vacuous: skip).
    open_run, _ = run_tests(docker_client, sample_env.tag, pytest_command("python -m pytest", select=[nodeid]),
                            network=True)
    if open_run.by_nodeid()[nodeid].outcome != "passed":
        pytest.skip("this host cannot reach 1.1.1.1:53 even outside the sandbox")


def test_selected_node_ids_with_spaces_and_brackets_run_alone(docker_client, sample_env):
    ids = ["tests/test_basic.py::test_ids[three [four]]", "tests/test_basic.py::test_strings[a b]"]
    run, _ = run_tests(docker_client, sample_env.tag, pytest_command("python -m pytest", select=ids))
    assert run.status == "ok", run.reason
    assert sorted(run.collected) == sorted(ids)
    assert all(r.outcome == "passed" for r in run.results)


def test_a_hanging_test_is_killed_and_reported_as_timeout(docker_client, sample_env):
    limits = SandboxLimits(timeout_s=4)
    run, _ = run_tests(docker_client, sample_env.tag,
                       pytest_command("python -m pytest", select=["slow/test_sleep.py"]), limits=limits)
    assert run.status == "timeout"
    assert run.wall_s < 40
    assert "wall-clock" in run.reason
    leftover = docker_client.containers.list(all=True, filters={"ancestor": sample_env.tag})
    assert leftover == []


def test_a_test_that_eats_memory_is_killed_as_oom(docker_client, sample_env):
    limits = SandboxLimits(timeout_s=60, mem="256m")
    run, _ = run_tests(docker_client, sample_env.tag,
                       pytest_command("python -m pytest", select=["slow/test_memory.py"]), limits=limits)
    assert run.status == "oom", (run.status, run.reason)


def test_a_missing_image_is_an_infrastructure_failure(docker_client):
    run, _ = run_tests(docker_client, "taskfactory/env:does-not-exist", "python -m pytest")
    assert run.status == "infra_error"
    assert "not found" in run.reason


def test_the_root_file_system_is_read_only_and_testbed_is_scratch(docker_client, sample_env):
    cmd = ("touch /opt/x 2>/dev/null && echo ROOT_WRITABLE; echo hi > /testbed/scratch.txt && "
           "python -m pytest -p tf_report -q tests/test_basic.py::test_add")
    run, _ = run_tests(docker_client, sample_env.tag, cmd)
    assert run.status == "ok"
    assert "ROOT_WRITABLE" not in run.log_tail
    # The write to /testbed went to a throw-away volume: a new container does not see it.
    again, _ = run_tests(docker_client, sample_env.tag, "test ! -e /testbed/scratch.txt && " + pytest_command(
        "python -m pytest", select=["tests/test_basic.py::test_add"]))
    assert again.status == "ok", again.log_tail


def test_every_session_runs_with_the_pinned_hash_seed(docker_client, sample_env):
    """A set of strings iterates the same way in every session (validation and grading alike): a
    test whose outcome hangs on the hash seed cannot pass grading on a lucky draw."""
    probe = ("import os, sys\n\n"
             "def test_seed():\n"
             "    assert os.environ.get('PYTHONHASHSEED') == '0'\n"
             "    assert sys.flags.hash_randomization == 0\n"
             "    print('ORDER', ''.join(sorted(set('abcdefgh'), key=hash)))\n")
    write = f"printf '%s' {shlex.quote(probe)} > tests/test_seed_probe.py && "
    orders = set()
    for _ in range(3):
        run, _ = run_tests(docker_client, sample_env.tag, write + pytest_command(
            "python -m pytest -s", select=["tests/test_seed_probe.py::test_seed"]))
        assert run.status == "ok", run.log_tail
        assert run.by_nodeid()["tests/test_seed_probe.py::test_seed"].outcome == "passed", run.log_tail
        orders |= {ln for ln in run.log_tail.splitlines() if ln.startswith("ORDER")}
    assert len(orders) == 1, orders


def test_localhost_resolves_to_the_loopback_and_nothing_else_is_reachable(docker_client, sample_env):
    """Suites that talk to themselves over "localhost" (rope's object analysis, dev servers) run;
    the network beyond the loopback stays shut (test_network_is_disabled_inside_the_sandbox)."""
    probe = ("import socket, threading\n\n"
             "def test_loopback():\n"
             "    assert socket.gethostbyname('localhost') == '127.0.0.1'\n"
             "    server = socket.create_server(('localhost', 0))\n"
             "    port = server.getsockname()[1]\n"
             "    threading.Thread(target=lambda: server.accept()[0].sendall(b'hi'), daemon=True).start()\n"
             "    with socket.create_connection(('localhost', port), timeout=5) as c:\n"
             "        assert c.recv(2) == b'hi'\n")
    write = f"printf '%s' {shlex.quote(probe)} > tests/test_loopback_probe.py && "
    run, _ = run_tests(docker_client, sample_env.tag, write + pytest_command(
        "python -m pytest", select=["tests/test_loopback_probe.py::test_loopback"]), limits=SandboxLimits(timeout_s=60))
    assert run.status == "ok", run.log_tail
    assert run.by_nodeid()["tests/test_loopback_probe.py::test_loopback"].outcome == "passed", run.log_tail


def test_pytest_cache_works_and_every_session_starts_with_an_empty_one(docker_client, sample_env):
    """Plugins that keep state in pytest's cache run (pytest-xprocess); the cache lives outside
    /testbed, so a candidate's diff never shows it, and one session never reads another's."""
    from verifiers.worker import Worker

    probe = ("def test_cache(request):\n"
             "    assert request.config.cache.get('tf/probe', None) is None\n"
             "    request.config.cache.set('tf/probe', 1)\n")
    worker = Worker(docker_client, sample_env.tag)
    try:
        code, out = worker.sh(f"printf '%s' {shlex.quote(probe)} > /testbed/tests/test_cache_probe.py")
        assert code == 0, out
        for _ in range(2):  # the second session passes only if the first one's value is gone
            run, _ = worker.run_tests(pytest_command("python -m pytest", select=["tests/test_cache_probe.py::test_cache"]))
            assert run.by_nodeid()["tests/test_cache_probe.py::test_cache"].outcome == "passed", run.log_tail
        code, out = worker.sh("find /testbed -name .pytest_cache; ls /tmp/tf-pytest-cache/v/tf")
        assert out.split() == ["probe"], out
    finally:
        worker.close()
