"""Grade a model's patch on a task, in a way the patch cannot fool.

In a fresh sandboxed container from the task's ``image_name``: check out ``base_commit``, apply
the model's patch, then put back every protected path the patch touched — test files and the
files that configure or hook into pytest (``conftest.py``, ``pytest.ini``, ``tox.ini``,
``setup.cfg``, ``pyproject.toml``, ``sitecustomize.py``, ``*.pth``) — by exact path: tracked ones
are restored from ``base_commit``, new ones deleted. Then apply the task's ``test_patch`` (PR
tasks), run FAIL_TO_PASS and PASS_TO_PASS with no network, read the structured report from our
plugin (installed outside ``/testbed``, where no patch reaches), and check the exit code. A test
missing from the results failed. Resolved means every FAIL_TO_PASS and PASS_TO_PASS test passed.

What it does not cover: a patch that changes the library's own code to tamper with pytest at
import time is judged by what the tests then report; the tests' own assertions are the defence.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from factory.repo import is_test_file
from verifiers.sandbox import SandboxLimits, pytest_command
from verifiers.taskimage import patch_paths
from verifiers.worker import Worker, WorkerFault

__all__ = ["GradeResult", "grade_patch", "PROTECTED_PATTERNS"]

PROTECTED_PATTERNS = (
    "conftest.py", "*/conftest.py", "pytest.ini", "*/pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml",
    "sitecustomize.py", "*/sitecustomize.py", "usercustomize.py", "*/usercustomize.py", "*.pth", ".pytest.ini",
)


@dataclass
class GradeResult:
    instance_id: str
    patch_exists: bool
    patch_applied: bool = False
    resolved: bool = False
    error: str = ""
    f2p_success: list[str] = field(default_factory=list)
    f2p_failure: list[str] = field(default_factory=list)
    p2p_success: list[str] = field(default_factory=list)
    p2p_failure: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    test_output: str = ""

    def report(self) -> dict:
        """SWE-bench's per-instance report shape."""
        return {self.instance_id: {
            "patch_is_None": not self.patch_exists, "patch_exists": self.patch_exists,
            "patch_successfully_applied": self.patch_applied, "resolved": self.resolved,
            "tests_status": {
                "FAIL_TO_PASS": {"success": self.f2p_success, "failure": self.f2p_failure},
                "PASS_TO_PASS": {"success": self.p2p_success, "failure": self.p2p_failure},
                "FAIL_TO_FAIL": {"success": [], "failure": []}, "PASS_TO_FAIL": {"success": [], "failure": []},
            },
        }}


def _protected(path: str, gold_paths: set[str]) -> bool:
    if is_test_file(path):
        return True
    return path not in gold_paths and any(fnmatch.fnmatchcase(path, p) for p in PROTECTED_PATTERNS)


def grade_patch(client, instance: dict, model_patch: str | None, limits: SandboxLimits = SandboxLimits(timeout_s=600),
                test_cmd: str = "python -m pytest") -> GradeResult:
    """Grade one patch; ``instance`` has the TaskInstance columns. Infra faults land in ``error``."""
    iid = instance["instance_id"]
    res = GradeResult(iid, patch_exists=bool(model_patch and model_patch.strip()))
    if not res.patch_exists:
        res.f2p_failure = list(instance["FAIL_TO_PASS"])
        res.p2p_failure = list(instance["PASS_TO_PASS"])
        return res
    f2p, p2p = list(instance["FAIL_TO_PASS"]), list(instance["PASS_TO_PASS"])
    gold_paths = {p for p in patch_paths(instance.get("patch") or "") if not is_test_file(p)}
    worker = Worker(client, instance["image_name"], limits)
    try:
        worker.start()
        base = instance["base_commit"]
        code, out = worker.sh(f"git checkout -q -f {base} && git clean -qfd")
        if code != 0:
            res.error = f"cannot check out base commit: {out.strip()[-200:]}"
            return res
        applied, msg = worker.apply(model_patch)
        if not applied:
            res.test_output = msg
            res.f2p_failure, res.p2p_failure = f2p, p2p
            return res
        res.patch_applied = True
        code, status = worker.sh("git status --porcelain --untracked-files=all -z")
        touched = _porcelain_paths(status)
        tracked_code, tracked = worker.sh(f"git ls-tree -r --name-only -z {base}")
        tracked_set = set(tracked.split("\0"))
        for path in sorted(p for p in touched if _protected(p, gold_paths)):
            q = "'" + path.replace("'", "'\"'\"'") + "'"
            cmd = f"git checkout -q {base} -- {q}" if path in tracked_set else f"rm -rf -- {q}"
            c, o = worker.sh(cmd)
            if c != 0:
                res.error = f"cannot restore {path}: {o.strip()[-200:]}"
                return res
            res.restored.append(path)
        if instance.get("test_patch"):
            ok, msg = worker.apply(instance["test_patch"])
            if not ok:
                res.error = f"test_patch does not apply: {msg[-200:]}"
                return res
        run, _ = worker.run_tests(pytest_command(test_cmd, select=f2p + p2p))
        res.test_output = run.log_tail
        if run.status != "ok":
            res.error = f"test run {run.status}: {run.reason}" if run.status == "infra_error" else ""
        got = {r.nodeid: r.outcome for r in run.results}
        for ids, ok_list, bad_list in ((f2p, res.f2p_success, res.f2p_failure), (p2p, res.p2p_success, res.p2p_failure)):
            for n in ids:
                (ok_list if got.get(n) == "passed" else bad_list).append(n)
        consistent = run.status == "ok" and not (run.exit_code != 0 and not res.f2p_failure and not res.p2p_failure)
        res.resolved = consistent and not res.f2p_failure and not res.p2p_failure
        return res
    except WorkerFault as e:
        res.error = str(e)
        return res
    finally:
        worker.close()


def _porcelain_paths(z: str) -> list[str]:
    """Paths from ``git status --porcelain -z`` (both sides of renames)."""
    out: list[str] = []
    items = [x for x in z.split("\0") if x]
    i = 0
    while i < len(items):
        entry = items[i]
        code, path = entry[:2], entry[3:]
        out.append(path)
        if code[0] in "RC":
            i += 1
            if i < len(items):
                out.append(items[i])
        i += 1
    return out
