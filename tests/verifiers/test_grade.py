"""Grading cannot be fooled: gold resolves, empty and forged patches do not."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from factory.evaluate import evaluate
from factory.schema import Candidate, TaskInstance
from factory.store import RunStore, write_records
from tests.conftest import NewContainers, bug_patch
from tests.verifiers.sample_repo import SAMPLE_FILES
from verifiers.grade import grade_patch
from verifiers.sandbox import SandboxLimits
from verifiers.validate import ValidateConfig, validate_candidates

pytestmark = pytest.mark.docker

CLAMP = SAMPLE_FILES["sample/__init__.py"]

FORGED_CONFTEST = '''\
diff --git a/conftest.py b/conftest.py
new file mode 100644
--- /dev/null
+++ b/conftest.py
@@ -0,0 +1,8 @@
+import pytest
+
+
+@pytest.hookimpl(hookwrapper=True)
+def pytest_runtest_makereport(item, call):
+    outcome = yield
+    rep = outcome.get_result()
+    rep.outcome = "passed"
'''


@pytest.fixture(scope="module")
def task(docker_client, sample) -> TaskInstance:
    root, co, env, base, cov = sample
    cand = Candidate("grade_me", "sample", co.commit, "mutation",
                     bug_patch(root, "sample/__init__.py", CLAMP.replace("return hi", "return lo")),
                     covering_tests=cov[("sample/__init__.py", 9)])
    got = []
    validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1),
                        on_result=lambda v, i: got.append(i))
    assert got[0] is not None
    return got[0]


def _weaken_test(root) -> str:
    """A patch that edits the judging test itself so it cannot fail."""
    text = SAMPLE_FILES["tests/test_basic.py"].replace("assert clamp(50, 0, 10) == 10", "assert True")
    return bug_patch(root, "tests/test_basic.py", text)


def test_gold_resolves_and_forgeries_do_not(docker_client, sample, task):
    inst = asdict(task)
    limits = SandboxLimits(timeout_s=60)
    gold = grade_patch(docker_client, inst, task.patch, limits)
    assert gold.resolved and gold.patch_applied, gold
    assert gold.f2p_success == list(task.FAIL_TO_PASS) and not gold.p2p_failure

    empty = grade_patch(docker_client, inst, "", limits)
    assert not empty.resolved and not empty.patch_exists

    forged = grade_patch(docker_client, inst, FORGED_CONFTEST, limits)
    assert forged.patch_applied and not forged.resolved
    assert forged.restored == ["conftest.py"] and forged.removed == ["conftest.py"]  # new: deleted

    edited = grade_patch(docker_client, inst, _weaken_test(sample[0]), limits)
    assert edited.patch_applied and not edited.resolved
    assert edited.restored == ["tests/test_basic.py"]

    both = grade_patch(docker_client, inst, task.patch + FORGED_CONFTEST, limits)
    assert both.resolved  # the real fix still counts once the forgery is removed


def test_evaluate_caches_by_patch_names_unknown_ids_and_errors_on_bad_patches(docker_client, task, tmp_path):
    store = RunStore(tmp_path / "run")
    write_records(store.instances, [task], TaskInstance)
    iid = task.instance_id
    preds = tmp_path / "preds.json"  # SWE-agent / mini-swe-agent: an object keyed by instance id
    preds.write_text(json.dumps({iid: {"model_patch": "", "model_name_or_path": "m"},
                                 "no-such-task": {"model_patch": task.patch, "model_name_or_path": "m"}}))
    said: list[str] = []
    first = evaluate(str(store.instances), preds, store, workers=1, log=said.append)["m"]
    assert first["empty_patch_ids"] == [iid] and first["unknown_ids"] == ["no-such-task"]
    assert "no-such-task" in first["error_ids"] and any("no-such-task" in m for m in said)
    # The same model name with another patch: graded anew, not served from the cache.
    preds.write_text(json.dumps({iid: {"model_patch": task.patch, "model_name_or_path": "m"}}))
    second = evaluate(str(store.instances), preds, store, workers=1)["m"]
    assert second["resolved_ids"] == [iid]
    # A patch that does not apply is an error with git's message, as SWE-bench counts it.
    lines = task.patch.splitlines(keepends=True)
    first_removed = next(i for i, ln in enumerate(lines) if ln.startswith("-") and not ln.startswith("---"))
    lines[first_removed] = "-this line is not in the file\n"
    broken = "".join(lines)
    preds.write_text(json.dumps({iid: {"model_patch": broken, "model_name_or_path": "m"}}))
    third = evaluate(str(store.instances), preds, store, workers=1)["m"]
    assert third["error_ids"] == [iid] and third["resolved_instances"] == 0
    report = json.loads((store.root / "evaluation" / "m" / iid / "report.json").read_text())[iid]
    assert report["error"].startswith("patch does not apply") and not report["patch_successfully_applied"]


def test_evaluate_writes_swebench_reports(docker_client, sample, task, tmp_path):
    store = RunStore(tmp_path / "run")
    write_records(store.instances, [task], TaskInstance)
    preds = tmp_path / "preds.jsonl"
    rows = [{"instance_id": task.instance_id, "model_patch": task.patch, "model_name_or_path": "gold"},
            {"instance_id": task.instance_id, "model_patch": "", "model_name_or_path": "empty"},
            {"instance_id": task.instance_id, "model_patch": FORGED_CONFTEST, "model_name_or_path": "org/forger"}]
    preds.write_text("\n".join(json.dumps(r) for r in rows))
    summaries = evaluate(str(store.instances), preds, store, workers=2)
    assert summaries["gold"]["resolved_ids"] == [task.instance_id]
    assert summaries["empty"]["empty_patch_ids"] == [task.instance_id]
    assert summaries["empty"]["resolved_instances"] == 0
    assert summaries["org/forger"]["resolved_instances"] == 0
    assert summaries["org/forger"]["unresolved_ids"] == [task.instance_id]
    on_disk = json.loads((store.root / "evaluation" / "gold.json").read_text())
    assert on_disk == summaries["gold"]
    report = json.loads((store.root / "evaluation" / "gold" / task.instance_id / "report.json").read_text())
    assert report[task.instance_id]["resolved"] is True
    assert (store.root / "evaluation" / "org__forger.json").exists()


ODD_FILES = {  # a suite whose test files match none of the usual names (rope's ropetest/*test.py)
    "pyproject.toml": ('[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
                       '[project]\nname = "calc"\nversion = "0.1"\n\n[tool.setuptools]\npackages = ["calc"]\n\n'
                       '[tool.pytest.ini_options]\ntestpaths = ["checks"]\npython_files = ["*check.py"]\n'),
    "calc/__init__.py": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n",
    "checks/__init__.py": "",
    "checks/helpers.py": "def expect(got, want):\n    assert got == want, (got, want)\n",
    "checks/clampcheck.py": ("from calc import clamp\nfrom checks.helpers import expect\n\n\n"
                             "def test_high():\n    expect(clamp(50, 0, 10), 10)\n\n\n"
                             "def test_low():\n    expect(clamp(-5, 0, 10), 0)\n"),
    # 2,500 PASS_TO_PASS ids of ~90 bytes: 225 KB, over the 128 KiB one variable or argument may hold
    "checks/manycheck.py": ("import pytest\n\nfrom calc import clamp\n\n\n"
                            "@pytest.mark.parametrize('n', range(2500), ids=lambda n: "
                            "f'a-case-whose-name-is-long-enough-to-fill-a-command-line-{n:05d}')\n"
                            "def test_in_range(n):\n    assert clamp(5, 0, 10) == 5\n"),
}


def test_test_files_of_any_name_and_their_helpers_cannot_be_edited(docker_client, base_image, tmp_path_factory):
    """The tests' own files and the modules beside them go back to the start state, whatever
    their names: with `python_files = *check.py`, editing the check or its helper resolves nothing.
    The gold patch resolves with 2,501 PASS_TO_PASS ids, more than one variable may hold."""
    from factory.repo import checkout
    from factory.schema import RepoSpec
    from tests.conftest import make_repo
    from verifiers.baseline import run_baseline
    from verifiers.images import build_env_image

    root = tmp_path_factory.mktemp("oddnames")
    make_repo(root, ODD_FILES)
    co = checkout(RepoSpec(source=str(root)))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1)
    cand = Candidate("odd_names", "calc", co.commit, "mutation",
                     bug_patch(root, "calc/__init__.py", "def clamp(x, lo, hi):\n    return max(lo, x)\n"))
    got = []
    validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1, strategy="full"),
                        on_result=lambda v, i: got.append(i))
    task = got[0]
    assert task is not None and list(task.FAIL_TO_PASS) == ["checks/clampcheck.py::test_high"]
    assert len(task.PASS_TO_PASS) == 2501
    inst, limits = asdict(task), SandboxLimits(timeout_s=60)
    gold = grade_patch(docker_client, inst, task.patch, limits)
    assert gold.resolved and not gold.tampered and len(gold.p2p_success) == 2501, gold.test_output[-500:]
    weakened = bug_patch(root, "checks/clampcheck.py", ODD_FILES["checks/clampcheck.py"].replace(
        "expect(clamp(50, 0, 10), 10)", "pass"))
    hollow = bug_patch(root, "checks/helpers.py", "def expect(got, want):\n    pass\n")
    for forged, path in ((weakened, "checks/clampcheck.py"), (hollow, "checks/helpers.py")):
        res = grade_patch(docker_client, inst, forged, limits)
        assert res.patch_applied and not res.resolved, (path, res)
        assert res.restored == [path]


def test_sigterm_stops_evaluate_without_grading_the_rest(docker_client, sample, task, tmp_path):
    """``factory evaluate`` stopped by SIGTERM (as Ctrl-C): the grade under way is cut short, the
    queued ones never start, no grading container is left and nothing is cached, so a re-run
    grades all three. Before, leaving the thread pool's block graded every queued prediction
    first: three slow patches kept the process alive for minutes after the signal."""
    import signal
    import subprocess
    import sys
    import time

    root = sample[0]
    store = RunStore(tmp_path / "run")
    ids = [f"{task.instance_id}-{k}" for k in range(3)]
    write_records(store.instances, [TaskInstance(**{**asdict(task), "instance_id": i}) for i in ids], TaskInstance)
    slow = bug_patch(root, "sample/__init__.py", CLAMP.replace("def clamp(x, lo, hi):\n",
                                                              "def clamp(x, lo, hi):\n    import time\n    time.sleep(30)\n"))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"instance_id": i, "model_patch": slow, "model_name_or_path": "m"}) + "\n"
                             for i in ids))
    graders = NewContainers(docker_client, {"label": "taskfactory.role=worker", "ancestor": task.image_name})
    proc = subprocess.Popen([sys.executable, "-m", "factory.cli", "evaluate", str(store.instances), str(preds),
                             "--run-dir", str(store.root), "--workers", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None and not graders.running():
            time.sleep(0.2)
        time.sleep(5)  # the first grade's test session is under way (clamp sleeps 30 s a call)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        stopped_in = time.monotonic() - t0
        time.sleep(2)
        left = graders.left()
        assert proc.returncode != 0, out[-2000:]
        # Not the three grades' minutes, nor the 15 s that wait() sat out on futures the shutdown had
        # cancelled (they never notify it): 15.6 s before, 0.6 s now.
        assert stopped_in < 10, (stopped_in, out[-2000:])
        assert left == [], [(c.name, c.status) for c in left]
        assert not list((store.root / "evaluation").rglob("report.json")), out[-2000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        graders.remove()
