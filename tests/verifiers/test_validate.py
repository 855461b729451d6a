"""Validation end to end: real candidates on a real project, judged in worker containers."""

from __future__ import annotations

import pytest

from factory.schema import Candidate
from tests.conftest import NewContainers, bug_patch
from tests.verifiers.sample_repo import SAMPLE_FILES
from verifiers.attribution import CoverageMap
from verifiers.sandbox import SandboxLimits, pytest_command, run_tests
from verifiers.validate import ValidateConfig, validate_candidates

pytestmark = pytest.mark.docker

CLAMP = SAMPLE_FILES["sample/__init__.py"]


def _cand(cid, patch, covering=()):
    return Candidate(cid, "sample", "base", "mutation", patch, operator="test", file="sample/__init__.py",
                     covering_tests=tuple(covering))


def _candidates(root, cov):
    high = cov[("sample/__init__.py", 9)]
    return [
        _cand("wrong_hi", bug_patch(root, "sample/__init__.py", CLAMP.replace("return hi", "return lo")), high),
        _cand("harmless", bug_patch(root, "sample/__init__.py", CLAMP + "\n\ndef unused():\n    return 1\n")),
        _cand("no_apply", "diff --git a/sample/__init__.py b/sample/__init__.py\n--- a/sample/__init__.py\n"
                          "+++ b/sample/__init__.py\n@@ -1,2 +1,2 @@\n-def nothing_here():\n+def x():\n"),
        _cand("hangs", bug_patch(root, "sample/__init__.py", CLAMP.replace(
            "    return a + b", "    while True:\n        pass"))),
        _cand("syntax", bug_patch(root, "sample/__init__.py", CLAMP.replace("def add(a, b):", "def add(a, b)"))),
    ]


@pytest.mark.parametrize("strategy", ["selected", "full"])
def test_verdicts_and_reasons(docker_client, sample, strategy):
    root, co, env, base, cov = sample
    cfg = ValidateConfig(strategy=strategy, workers=2, limits=SandboxLimits(timeout_s=30),
                         build_task_images=False)
    got = {v.candidate_id: v for v in validate_candidates(
        docker_client, env, base.entries, _candidates(root, cov), cfg, coverage=CoverageMap.from_entries(base.coverage),
        source_of=lambda p: (root / p).read_text())}
    assert {k: (v.verdict, v.reason) for k, v in got.items()} == {
        "wrong_hi": ("accepted", "accepted"),
        "harmless": ("rejected", "no_f2p"),
        "no_apply": ("rejected", "patch_does_not_apply"),
        "hangs": ("rejected", "timeout"),
        "syntax": ("rejected", "collection_breaks"),
    }
    assert got["wrong_hi"].FAIL_TO_PASS == ("tests/test_basic.py::TestClamp::test_high",)
    stable = {e.nodeid for e in base.entries if e.outcome == "passed"}
    assert set(got["wrong_hi"].PASS_TO_PASS) == stable - {"tests/test_basic.py::TestClamp::test_high"}
    # Selected: `return hi` is in clamp's body, so only its covering test runs, twice; full: the
    # full run, then a confirmation run of the F2P test.
    assert got["wrong_hi"].num_runs == 2
    assert got["wrong_hi"].lists == strategy
    # "harmless" adds a module-level function and "syntax" breaks a def line: the map cannot
    # attribute either to tests, so even the selected strategy runs the full suite.
    assert (got["harmless"].num_runs, got["harmless"].lists) == (1, "full")
    assert got["harmless"].detail.startswith("full suite")
    assert (got["syntax"].lists, got["hangs"].lists) == ("full", strategy)



def test_an_accepted_task_starts_broken_and_the_gold_patch_fixes_it(docker_client, sample):
    root, co, env, base, cov = sample
    instances = []
    cfg = ValidateConfig(workers=1, limits=SandboxLimits(timeout_s=60))
    cands = _candidates(root, cov)[:1]
    validate_candidates(docker_client, env, base.entries, cands, cfg,
                        on_result=lambda v, i: instances.append(i) if i else None)
    (inst,) = instances
    assert inst.source == "mutation" and inst.FAIL_TO_PASS == ("tests/test_basic.py::TestClamp::test_high",)
    assert "return hi" in inst.patch and inst.patch.startswith("diff --git a/sample/__init__.py")
    assert [f.path for f in inst.start_files] == ["sample/__init__.py"]
    assert inst.start_files[0].content.count("return lo") == 2  # the broken state
    assert "return hi" not in inst.problem_statement and "test_high" in inst.problem_statement

    # Nothing leaks: one commit, no remotes, no reflog, no unreachable objects, a clean tree.
    probe = (f"(ls .git/logs 2>/dev/null | wc -l) > /tmp/logs && git checkout -q -f {inst.base_commit} && "
             "git log --all --oneline | wc -l && git remote | wc -l && cat /tmp/logs && git fsck --unreachable --no-reflogs 2>/dev/null | wc -l && "
             "git status --porcelain | wc -l && git count-objects -v | grep -E '^(count|in-pack):' | "
             "awk '{s+=$2} END {print s}'")
    out = docker_client.containers.run(inst.image_name, ["bash", "-c", probe], remove=True,
                                       network_disabled=True).decode().split()
    assert out[:5] == ["1", "0", "0", "0", "0"], out
    caches = docker_client.containers.run(
        inst.image_name, ["bash", "-c", "find /testbed -name __pycache__ -o -name '*.pyc' | wc -l"],
        remove=True, network_disabled=True).decode().split()
    assert caches == ["0"]  # bytecode of the clean code would reveal the fix
    tree_objects = int(out[5])
    files = docker_client.containers.run(inst.image_name, ["bash", "-c", "git ls-files | wc -l; git ls-tree -r -d HEAD | wc -l"],
                                         remove=True, network_disabled=True).decode().split()
    assert tree_objects == int(files[0]) + int(files[1]) + 2  # blobs + subtrees + root tree + the commit

    # In a fresh container from image_name the F2P tests fail; with the gold patch they and P2P pass.
    select = list(inst.FAIL_TO_PASS) + list(inst.PASS_TO_PASS)
    broken, _ = run_tests(docker_client, inst.image_name, pytest_command("python -m pytest", select=list(inst.FAIL_TO_PASS)))
    assert {r.outcome for r in broken.results} == {"failed"}
    fix = inst.patch.replace("'", "'\"'\"'")
    fixed, _ = run_tests(docker_client, inst.image_name,
                         f"printf '%s' '{fix}' | git apply - && " + pytest_command("python -m pytest", select=select))
    assert fixed.status == "ok", fixed.log_tail
    assert {r.nodeid: r.outcome for r in fixed.results} == {n: "passed" for n in select}


@pytest.mark.parametrize("how", ["kill", "remove"])
def test_a_worker_killed_from_outside_is_retried_never_blamed(docker_client, sample, how):
    """``docker kill`` or ``docker rm -f`` of a worker mid-run: the candidate is judged again on a
    fresh worker (a removed container once crashed the whole run with docker's NotFound)."""
    import threading
    import time

    root, co, env, base, cov = sample
    slow_bug = CLAMP.replace("def clamp(x, lo, hi):\n", "def clamp(x, lo, hi):\n    import time\n    time.sleep(1.5)\n")
    slow_bug = slow_bug.replace("return hi", "return lo")
    cand = _cand("slow_wrong_hi", bug_patch(root, "sample/__init__.py", slow_bug), cov[("sample/__init__.py", 9)])
    killed = []

    def _killer():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not killed:
            for c in docker_client.containers.list(filters={"label": "taskfactory.role=worker", "ancestor": env.tag}):
                time.sleep(0.8)  # let the test run start inside it
                c.kill() if how == "kill" else c.remove(force=True)
                killed.append(c.id)
                return
            time.sleep(0.05)

    th = threading.Thread(target=_killer)
    th.start()
    cfg = ValidateConfig(workers=1, limits=SandboxLimits(timeout_s=60), build_task_images=False)
    (val,) = validate_candidates(docker_client, env, base.entries, [cand], cfg)
    th.join()
    assert killed, "the killer never found a worker container"
    assert (val.verdict, val.reason) == ("accepted", "accepted"), val
    assert val.FAIL_TO_PASS == ("tests/test_basic.py::TestClamp::test_high",)
    assert not docker_client.containers.list(all=True, filters={"label": "taskfactory.role=worker",
                                                                "ancestor": env.tag})


_STOPPABLE = """
import pickle, sys
import docker
from factory.interrupt import terminate_as_interrupt
from verifiers.sandbox import SandboxLimits
from verifiers.validate import ValidateConfig, validate_candidates

env, entries, cands = pickle.load(open(sys.argv[1], "rb"))
if sys.argv[2] == "handled":
    terminate_as_interrupt()
cfg = ValidateConfig(workers=2, limits=SandboxLimits(timeout_s=120), build_task_images=False)
validate_candidates(docker.from_env(), env, entries, cands, cfg, on_result=lambda v, i: print("VERDICT", v.candidate_id))
"""


@pytest.mark.parametrize("mode", ["handled", "default"])
def test_sigterm_removes_the_worker_containers(docker_client, sample, tmp_path, mode):
    """SIGTERM to a validating process (``timeout``, ``kill``, a scheduler): with the handler the
    ``factory`` CLI and bench/validate.py install, it unwinds like Ctrl-C, its worker containers are
    removed and no verdict is recorded for the judgements it cut short; with Python's default it
    dies at once and the containers stay, still running the suite (the control: what the handler
    exists for). Two workers: on babel, a worker whose run the sweep cut short started a new
    container after it (left "Created"), before validation shut its workers."""
    import pickle
    import signal
    import subprocess
    import sys
    import time

    root, co, env, base, cov = sample
    slow = CLAMP.replace("def clamp(x, lo, hi):\n", "def clamp(x, lo, hi):\n    import time\n    time.sleep(60)\n")
    cands = [_cand(f"slow_{mode}_{k}", bug_patch(root, "sample/__init__.py", slow), cov[("sample/__init__.py", 9)])
             for k in range(3)]
    blob = tmp_path / "args.pkl"
    blob.write_bytes(pickle.dumps((env, base.entries, cands)))
    script = tmp_path / "stoppable.py"
    script.write_text(_STOPPABLE)
    workers = NewContainers(docker_client, {"label": "taskfactory.role=worker", "ancestor": env.tag})
    proc = subprocess.Popen([sys.executable, str(script), str(blob), mode], cwd=str(root.parent),
                            stdout=subprocess.PIPE, text=True)
    try:
        started = []
        deadline = time.monotonic() + 90
        while len(started) < 2 and time.monotonic() < deadline and proc.poll() is None:
            started = workers.running()
            time.sleep(0.2)
        assert len(started) == 2, "the two worker containers did not start"
        time.sleep(2)  # the candidates' test runs are under way inside them
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        time.sleep(2)  # anything a dying thread was still starting
        left = workers.left()
        if mode == "handled":
            assert proc.returncode != 0  # interrupted, not a finished run
            assert left == [], [(c.name, c.status) for c in left]
            assert "VERDICT" not in out  # the cut-short judgements are not verdicts
        else:
            assert proc.returncode == -signal.SIGTERM
            assert {c.id for c in started} <= {c.id for c in left}
    finally:
        if proc.poll() is None:
            proc.kill()
        workers.remove()
