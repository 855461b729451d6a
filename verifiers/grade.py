"""Grade a model's patch on a task, in a way the patch cannot fool.

A patch is text that lands in ``/testbed``; everything it could use to fool the grade is either
put back before the tests run or watched while they run. In a fresh sandboxed container from the
task's ``image_name`` (no network, no capabilities, read-only root):

1. **Start state, recorded.** Check out ``base_commit``; record every untracked or ignored file
   (what the install left: egg-info, generated versions, built extensions) into a tar, and ask the
   start state's Python, isolated from ``/testbed``, which pytest plugins are installed and which
   top-level module names the standard library and site-packages own.
2. **The patch, applied** with ``git apply``; one that does not apply is an ``error`` carrying
   git's message, as SWE-bench counts it.
3. **Everything that is not the fix, reset.** Test files and every file that configures or hooks
   pytest (``conftest.py``, ``pytest.ini``, ``tox.ini``, ``setup.cfg``, ``pyproject.toml``,
   ``sitecustomize.py``, ``usercustomize.py``, ``*.pth``, at any depth) are restored from
   ``base_commit`` or deleted; a configuration file that the gold patch itself changes gets the
   gold patch's version of that file, never the model's. Symlinks that were not in the start
   state are removed. Every untracked file is deleted unless it is a plain source file the patch
   adds (no bytecode, ``*.egg-info``, ``*.dist-info``, ``*.pth``, shared libraries, caches or
   build folders, and no module that would shadow the standard library or an installed
   package); then the start state's untracked files are put back from the tar, byte for byte.
4. **A pytest nobody else configures.** Plugin autoloading off, the start state's own plugins
   loaded by name, no user site, no ``PYTEST_ADDOPTS``/``PYTEST_PLUGINS``; the report plugin is a
   fresh copy under a random module name in a directory outside ``/testbed`` (so nothing in the
   tree can shadow it), in guard mode with a one-time key (``verifiers/plugin/tf_report.py``).
5. **Tampering detected, not trusted.** The report's records are checked against the key; the
   guard's findings, a missing finish record, or an exit code that differs from what the report
   says make the run ``tampered``: it resolves nothing, and the report says what was seen.

Resolved means the patch applied, the run was clean, and every FAIL_TO_PASS and PASS_TO_PASS
test passed. ``suspicious`` (``verifiers.screen``) only informs. ``docs/grading.md`` lists what
is defended and what is out of scope.
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from factory import defaults
from factory.repo import is_test_file
from factory.schema import TaskInstance
from verifiers.runner import Selection, runner_for
from verifiers.sandbox import SandboxLimits, pytest_command, run_problem
from verifiers.screen import screen_patch
from verifiers.taskimage import patch_paths
from verifiers.worker import ARG_BUDGET, LiveWorkers, Worker, WorkerFault

__all__ = ["GradeResult", "GradingTask", "grade_patch", "PROTECTED_NAMES", "image_test_cmd"]

# Files that configure or hook into pytest or the interpreter, protected at any depth.
PROTECTED_NAMES = frozenset({"conftest.py", "pytest.ini", ".pytest.ini", "tox.ini", "setup.cfg", "pyproject.toml",
                             "sitecustomize.py", "usercustomize.py"})
# Untracked files a patch may not add: what an install, an interpreter or a tool writes, never a fix.
_NOT_SOURCE_PARTS = ("node_modules", "__pycache__", "*.egg-info", "*.dist-info", ".eggs", ".tox", ".nox", ".pytest_cache",
                     ".mypy_cache", ".hypothesis", ".venv", "site-packages", ".git")
_NOT_SOURCE_TOP = ("build", "dist", "venv")  # output folders only at the root (pkg/build/ may be code)
_NOT_SOURCE_SUFFIXES = (".pyc", ".pyo", ".pyd", ".so", ".dylib", ".dll", ".pth", ".egg-link", ".egg", ".whl")
_G = "/tf-out/g"      # grading's scratch: start-state tar, listings, patches (not importable)
_P = "/tf-out/p"      # the report plugin's directory (on PYTHONPATH; nothing else in it)
_R = "/tf-out/r"      # the report's directory (the guard flags any other touch of it)
_DEFAULT_TEST_CMD = "python -m pytest"

# Before the patch, under the start state's Python isolated from /testbed (-I: no cwd, no env).
_PROBE = r"""
import json, os, pkgutil, sys, sysconfig
try:
    from importlib.metadata import entry_points
    eps = entry_points()
    eps = eps.select(group="pytest11") if hasattr(eps, "select") else eps.get("pytest11", [])
    plugins = sorted({e.name for e in eps})
except Exception:
    plugins = []
names = set(sys.builtin_module_names) | set(getattr(sys, "stdlib_module_names", ()))
roots = []
for p in [sysconfig.get_paths()["stdlib"]] + sys.path:
    if p.startswith("/testbed"):
        roots.append(os.path.relpath(p, "/testbed"))
        continue
    try:
        names |= {m.name for m in pkgutil.iter_modules([p])}
    except Exception:
        pass
print(json.dumps({"plugins": plugins, "shadow": sorted(names), "roots": roots}))
"""

# After the patch, with no site at all (-I -S): what changed, as git and the file system see it.
_INSPECT = r"""
import json, os, subprocess
def z(*args):
    out = subprocess.run(["git", *args], capture_output=True, cwd="/testbed").stdout
    return [x for x in out.decode("utf-8", "surrogateescape").split("\0") if x]
links = []
for root, dirs, files in os.walk("/testbed"):
    if root == "/testbed" and ".git" in dirs:
        dirs.remove(".git")
    for n in dirs + files:
        p = os.path.join(root, n)
        if os.path.islink(p):
            links.append(os.path.relpath(p, "/testbed"))
staged = [e.split("\t", 1) for e in z("ls-files", "-s", "-z")]
with open("/tf-out/g/start-untracked", "rb") as fh:
    start = [x for x in fh.read().decode("utf-8", "surrogateescape").split("\0") if x]
print(json.dumps({"start_untracked": start, "status": z("status", "--porcelain", "-z", "--untracked-files=no"),
                  "untracked": z("ls-files", "-z", "--others"), "links": links,
                  "tracked_links": [p for meta, p in staged if meta.startswith("120000")]}))
"""


@dataclass(frozen=True)
class GradingTask:
    """What grading needs of a task: a record, whatever the caller holds (a ``TaskInstance``, a
    dataset row, a SWE-bench JSONL row with its lists as JSON strings)."""

    instance_id: str
    image_name: str
    base_commit: str
    FAIL_TO_PASS: tuple[str, ...]
    PASS_TO_PASS: tuple[str, ...]
    patch: str = ""
    test_patch: str = ""

    @classmethod
    def of(cls, task) -> GradingTask:
        if isinstance(task, GradingTask):
            return task
        get = task.get if isinstance(task, dict) else (lambda k, d=None: getattr(task, k, d))
        missing = [k for k in ("instance_id", "image_name", "base_commit", "FAIL_TO_PASS", "PASS_TO_PASS")
                   if get(k) is None]
        if missing:
            raise ValueError(f"a task to grade needs {missing}")

        def tests(key: str) -> tuple[str, ...]:
            v = get(key)
            return tuple(json.loads(v) if isinstance(v, str) else v)

        return cls(str(get("instance_id")), str(get("image_name")), str(get("base_commit")), tests("FAIL_TO_PASS"),
                   tests("PASS_TO_PASS"), get("patch") or "", get("test_patch") or "")


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
    restored: list[str] = field(default_factory=list)   # protected paths put back to the start state
    removed: list[str] = field(default_factory=list)    # paths deleted: new protected or non-source files
    tampered: list[str] = field(default_factory=list)   # what the guard saw; non-empty: not resolved
    suspicious: list[str] = field(default_factory=list)  # the static screen's notes (inform only)
    test_cmd: str = ""
    seconds: float = 0.0
    test_output: str = ""

    def report(self) -> dict:
        """SWE-bench's per-instance report shape, plus what this grader adds."""
        return {self.instance_id: {
            "patch_is_None": not self.patch_exists, "patch_exists": self.patch_exists,
            "patch_successfully_applied": self.patch_applied, "resolved": self.resolved,
            "tests_status": {
                "FAIL_TO_PASS": {"success": self.f2p_success, "failure": self.f2p_failure},
                "PASS_TO_PASS": {"success": self.p2p_success, "failure": self.p2p_failure},
                "FAIL_TO_FAIL": {"success": [], "failure": []}, "PASS_TO_FAIL": {"success": [], "failure": []},
            },
            "error": self.error, "tampered": self.tampered, "suspicious": self.suspicious,
            "restored_paths": self.restored, "removed_paths": self.removed, "test_cmd": self.test_cmd,
        }}


def image_test_cmd(client, image: str) -> str | None:
    """The repository's own test command, as the environment image recorded it (its label)."""
    return _image_facts(client, image)[0]


def _image_facts(client, image: str) -> tuple[str | None, tuple[str, ...]]:
    """(test command label, the layers below the task's own layer): one engine call."""
    try:
        img = client.images.get(image)
    except Exception:  # a missing image fails later, with its own message
        return None, ()
    layers = tuple((img.attrs.get("RootFS") or {}).get("Layers") or ())
    return (img.labels or {}).get("taskfactory.test_cmd") or None, layers[:-1]


# The probe's answer depends only on the environment below the task's layer (site-packages and
# the install's files): task images of one environment share it, so it is asked once per process.
_PROBES: dict[tuple[str, ...], dict] = {}


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def stable_id(nodeid: str) -> str:
    """A node id with object addresses masked (the report plugin masks them the same way when it
    selects tests): ``test_x[<Obj object at 0x7f...>]`` names the same test in every process."""
    return _ADDRESS.sub(" at 0x?", nodeid)


def protected(path: str) -> bool:
    """A path the patch may not change: tests and whatever configures or hooks pytest."""
    name = PurePosixPath(path).name
    return is_test_file(path) or name in PROTECTED_NAMES or name.endswith(".pth")


def suite_files(task: GradingTask, tests: list[str]) -> Callable[[str], bool]:
    """``protected``, plus the files the task's tests live in and every file beside them that the
    gold patch does not change, whatever their names. A suite's own configuration can name its
    test files anything (rope 1.13.0: `python_files = *test.py` under `ropetest/`, with helpers such
    as `ropetest/testutils.py`); editing them would otherwise pass for a fix."""
    files = {t.split("::", 1)[0] for t in tests}
    folders = {PurePosixPath(f).parent for f in files}
    gold = set(patch_paths(task.patch))

    def guarded(path: str) -> bool:
        return protected(path) or path in files or (PurePosixPath(path).parent in folders and path not in gold)

    return guarded


def not_source(path: str) -> bool:
    """Bytecode, packaging metadata, shared libraries, caches, build output: never a fix."""
    parts = PurePosixPath(path).parts
    return (path.endswith(_NOT_SOURCE_SUFFIXES) or (len(parts) > 1 and parts[0] in _NOT_SOURCE_TOP)
            or any(fnmatch.fnmatchcase(part, pat) for part in parts[:-1] for pat in _NOT_SOURCE_PARTS))


def shadows(path: str, roots: set[str], names: set[str]) -> bool:
    """Whether a new file would be imported in place of a standard or installed module."""
    for root in roots:
        prefix = "" if root in ("", ".") else root.rstrip("/") + "/"
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix):].split("/")
        top = rest[0][:-3] if len(rest) == 1 and rest[0].endswith(".py") else rest[0]
        if len(rest) > 1 or rest[0].endswith(".py"):
            if top in names:
                return True
    return False


def grade_patch(client, instance: GradingTask | TaskInstance | dict, model_patch: str | None,
                limits: SandboxLimits = SandboxLimits(timeout_s=defaults.GRADE_TIMEOUT_S),
                test_cmd: str | None = None, session: str = "", live: LiveWorkers | None = None) -> GradeResult:
    """Grade one patch on a task (any record with the TaskInstance columns it needs: ``GradingTask.of``).
    Infra faults land in ``error``.

    ``test_cmd`` defaults to the repository's own command, read from the image's label.
    ``session``: the label of the grading container (``verifiers.worker.sweep`` removes it, which
    cuts a grade short: how ``factory evaluate`` stops). ``live``: the run's workers, which it shuts
    when it stops, so that a grade cut short does not go on in a fresh container.
    """
    t0 = time.monotonic()
    task = GradingTask.of(instance)
    iid = task.instance_id
    res = GradeResult(iid, patch_exists=bool(model_patch and model_patch.strip()))
    f2p, p2p = list(task.FAIL_TO_PASS), list(task.PASS_TO_PASS)
    if not res.patch_exists:
        res.f2p_failure, res.p2p_failure = f2p, p2p
        return res
    res.suspicious = screen_patch(model_patch)
    label_cmd, env_layers = _image_facts(client, task.image_name)
    res.test_cmd = test_cmd or label_cmd or _DEFAULT_TEST_CMD
    runner = runner_for(res.test_cmd)
    worker = Worker(client, task.image_name, limits, session=session, runner=runner)
    if live is not None:
        live.join(worker)
    try:
        worker.start()
        if runner.language == "python":
            _grade_in(worker, task, model_patch, res, f2p, p2p, env_layers)
        else:
            _grade_other(worker, runner, task, model_patch, res, f2p, p2p)
    except WorkerFault as e:
        res.error = str(e)
    finally:
        worker.close()
        if live is not None:
            live.leave(worker)
        res.seconds = time.monotonic() - t0
    return res


def _grade_in(worker: Worker, task: GradingTask, model_patch: str, res: GradeResult, f2p: list[str],
              p2p: list[str], env_layers: tuple[str, ...] = ()) -> None:
    base = task.base_commit
    # -- 1 and 2: the start state recorded, the patch applied, what changed listed (one exec) -----
    cached_probe = _PROBES.get(env_layers) if env_layers else None
    module, key = f"tfg_{secrets.token_hex(8)}", secrets.token_hex(32)
    write_patch, patch_env = _patch_into(worker, model_patch)
    script = (
        f"set -e; cd /testbed; git checkout -q -f {shlex.quote(base)}; git clean -qfd; mkdir -p {_G} {_P} {_R}; "
        f"git ls-files -z --others > {_G}/start-untracked; "
        f"if [ -s {_G}/start-untracked ]; then tar --null -T {_G}/start-untracked -cf {_G}/start-extra.tar; fi; "
        + (f"printf '%s\\n' \"$TF_PROBED\" > {_G}/probe.json; " if cached_probe else
           f"python -I -c \"$TF_PROBE\" > {_G}/probe.json; ")
        # The guarded plugin under a name nothing in /testbed can know, and its one-time key: written
        # here, by a shell that has exited before any project code runs (an exec's environment is
        # readable through /proc by whatever runs beside it).
        + f"printf '%s' \"$TF_PLUGIN_SRC\" > {_P}/{module}.py; printf '%s' \"$TF_KEY\" > {_G}/key; "
        + write_patch + _APPLY + f"cat {_G}/probe.json; python -I -S -c \"$TF_INSPECT\""
    )
    env = {"TF_INSPECT": _INSPECT, "TF_PLUGIN_SRC": _plugin_source(), "TF_KEY": key, **patch_env,
           **({"TF_PROBED": json.dumps(cached_probe)} if cached_probe else {"TF_PROBE": _PROBE})}
    code, out = worker.sh(script, env=env)
    if not _applied(code, out, res, f2p, p2p):
        return
    lines = out.split("TF-APPLIED", 1)[1].strip().splitlines()
    probe, after = json.loads(lines[0]), json.loads(lines[-1])
    if env_layers:
        _PROBES.setdefault(env_layers, probe)

    # -- 3: everything that is not the fix, reset ------------------------------------------------
    roots = {"", *probe.get("roots", [])}
    for t in f2p + p2p:
        parent = PurePosixPath(t.split("::", 1)[0]).parent
        while str(parent) not in ("", "."):
            roots.add(str(parent))
            parent = parent.parent
    names = set(probe.get("shadow", []))
    reset = _plan_reset(after, task, model_patch, suite_files(task, f2p + p2p),
                        keep=lambda path: not shadows(path, roots, names))
    # Then the conftest files the session will see, by SHA-256: the guard accepts only these.
    conftests = ("find /testbed -path /testbed/.git -prune -o -name conftest.py -type f -print0 "
                 f"| xargs -0 -r sha256sum | cut -d' ' -f1 > {_G}/conftests")

    # -- 4: a pytest nobody else configures ----------------------------------------------------
    report = f"{_R}/{secrets.token_hex(8)}.jsonl"
    plugins = (module, *[p for p in probe.get("plugins", []) if p != module])
    # The selected tests go in as a file (rope's 2,077 ids are 145 KB: over what one argument or
    # variable may hold); the session runs their files, sorted as pytest walks a folder, and the
    # plugin keeps only the selected tests (``$TF_SELECT``) in the order the suite defines them,
    # as in validation.
    worker.put(f"{_G}/select", ("\n".join(sorted(f2p + p2p, key=lambda t: t.split("::", 1)[0])) + "\n").encode())
    # One exec: the reset (its own shell, so its failure is told apart), then the session.
    command = (reset.put(worker, then=conftests)
               + f"export TF_GUARD_CONFTESTS=\"$(tr '\\n' ' ' < {_G}/conftests)\"; rm -f {_G}/conftests; "
               + pytest_command(res.test_cmd, plugins=plugins, ids_file=f"{_G}/select"))
    run_env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTEST_ADDOPTS": "", "PYTEST_PLUGINS": "",
               "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": _P, "PYTHONSTARTUP": "",
               "PYTHONINSPECT": "", "TF_GUARD_KEY": f"{_G}/key"}
    run, rep = worker.run_tests(command, report=report, env=run_env, key=key.encode())
    if not reset.took(run, res):
        return
    if run.status == "infra_error" and not rep.integrity:
        res.error = f"test run {run.status}: {run.reason}"
    # -- 5: tampering, then the verdict --------------------------------------------------------
    res.tampered = _tampering(run, rep)
    got = {stable_id(r.nodeid): r.outcome for r in run.results}
    for ids, ok_list, bad_list in ((f2p, res.f2p_success, res.f2p_failure), (p2p, res.p2p_success, res.p2p_failure)):
        for n in ids:
            (ok_list if got.get(stable_id(n)) == "passed" else bad_list).append(n)
    clean = run_problem(run) is None and not res.tampered and not res.error
    res.resolved = clean and not res.f2p_failure and not res.p2p_failure


def _grade_other(worker: Worker, runner, task: GradingTask, model_patch: str, res: GradeResult, f2p: list[str],
                 p2p: list[str]) -> None:
    """Grading for the runners of other languages (jest, vitest, mocha, node:test, go test).

    The same reset as for pytest — the start state's untracked files (``node_modules``, build
    output) recorded and put back byte for byte, test files and the runner's, package manager's,
    compiler's and Go module configuration restored (``runner.protected``), new symlinks and
    non-source files removed — then the runner's own session on the selected tests, read from its
    structured report with the exit code checked against it, in guard mode
    (``verifiers.langs.guard``: a preloaded guard in every Node process, a guard test in every Go
    package, the session's leftover processes killed before the reports are read).
    """
    from verifiers.langs.guard import LangGuard  # noqa: PLC0415 (this function's alone)

    base = task.base_commit
    guard = LangGuard.new()
    guard_setup, guard_env = guard.setup()
    touched = patch_paths(model_patch)
    write_patch, patch_env = _patch_into(worker, model_patch)
    script = (
        f"set -e; cd /testbed; git checkout -q -f {shlex.quote(base)}; git clean -qfd; mkdir -p {_G} {_R}; "
        + guard_setup
        + f"git ls-files -z --others > {_G}/start-untracked; "
        # Only the untracked files the patch touches are saved (git apply changes nothing else):
        # node_modules holds tens of thousands of them. Put back without their owners (npm keeps the
        # tarballs' uids; the sandbox has no CAP_CHOWN).
        + (f"git ls-files -z --others -- {_quoted(touched)} > {_G}/start-touched; " if touched else
           f": > {_G}/start-touched; ")
        + f"if [ -s {_G}/start-touched ]; then tar --null -T {_G}/start-touched -cf {_G}/start-extra.tar; fi; "
        + write_patch + _APPLY + "python -I -S -c \"$TF_INSPECT\""
    )
    code, out = worker.sh(script, env={"TF_INSPECT": _INSPECT, **guard_env, **patch_env})
    if not _applied(code, out, res, f2p, p2p):
        return
    after = json.loads(out.split("TF-APPLIED", 1)[1].strip().splitlines()[-1])
    reset = _plan_reset(after, task, model_patch, runner.protected)
    worker.put(f"{_G}/select", ("\n".join(f2p + p2p) + "\n").encode())  # the ids: not on the command line
    command = (reset.put(worker) + "rm -rf /tmp/tf-* 2>/dev/null; "
               + runner.command(Selection(tests=tuple(f2p + p2p), ids_file=f"{_G}/select"), guard=guard))
    report = f"{_R}/{secrets.token_hex(8)}.jsonl"
    run, rep = worker.run_tests(command, report=report, env={}, key=guard.key.encode())
    if not reset.took(run, res):
        return
    if run.status == "infra_error":
        res.error = f"test run {run.status}: {run.reason}"
    res.tampered = _tampering(run, rep)
    got = {r.nodeid: r.outcome for r in run.results}
    for ids, ok_list, bad_list in ((f2p, res.f2p_success, res.f2p_failure), (p2p, res.p2p_success, res.p2p_failure)):
        for n in ids:
            (ok_list if got.get(n) == "passed" else bad_list).append(n)
    clean = run_problem(run) is None and not res.tampered and not res.error
    res.resolved = clean and not res.f2p_failure and not res.p2p_failure


# Step 2 of the set-up exec: the patch applied, or git's reason (``_applied`` reads which).
_APPLY = (f"if ! git apply --whitespace=nowarn {_G}/model.diff 2> {_G}/apply.err; then "
          f"echo TF-NOT-APPLIED; cat {_G}/apply.err; exit 0; fi; echo TF-APPLIED; ")


def _patch_into(worker: Worker, model_patch: str) -> tuple[str, dict[str, str]]:
    """How the set-up exec gets the patch to ``{_G}/model.diff``: (its script step, its
    environment). A small patch rides in the exec's environment; a large one is copied in first
    (one variable holds at most 128 KiB)."""
    if len(model_patch.encode()) < ARG_BUDGET:
        return f"printf '%s' \"$TF_PATCH\" > {_G}/model.diff; ", {"TF_PATCH": model_patch}
    worker.sh(f"mkdir -p {_G}")
    worker.put(f"{_G}/model.diff", model_patch.encode())
    return "", {}


def _applied(code: int, out: str, res: GradeResult, f2p: list[str], p2p: list[str]) -> bool:
    """Steps 1 and 2's outcome from the set-up exec's output: False (with ``res.error``) when the
    start state could not be set up or the patch does not apply (then every listed test failed)."""
    if code != 0 or ("TF-APPLIED" not in out and "TF-NOT-APPLIED" not in out):
        res.error = f"cannot set up the start state: {out.strip()[-300:]}"
        return False
    if "TF-NOT-APPLIED" in out:
        message = out.split("TF-NOT-APPLIED", 1)[1].strip()
        res.error = f"patch does not apply: {message[-500:] or 'git apply failed'}"
        res.test_output = message
        res.f2p_failure, res.p2p_failure = f2p, p2p
        return False
    res.patch_applied = True
    return True


@dataclass
class _Reset:
    """Step 3 of grading, planned from what the patch changed: the paths to delete, the protected
    paths to put back, and the script (with the patches it applies) that does both. One plan for
    every runner, so a defence added to the reset holds for all of them."""

    remove: list[str]
    restore: list[str]
    protected: Callable[[str], bool]
    script: str
    files: dict[str, bytes]  # the patches the script applies, by container path

    def put(self, worker: Worker, then: str = "") -> str:
        """Copy the script (with ``then`` after it) and its patches into the worker; the command
        that runs it. Files, not the exec's environment or command line: Linux refuses a single
        argument or variable over 128 KiB ("argument list too long"), which a large gold patch or
        a long list of paths reaches."""
        for path, data in self.files.items():
            worker.put(path, data)
        worker.put(f"{_G}/reset.sh", (self.script + then).encode())
        return f"bash {_G}/reset.sh || {{ echo TF-RESET-FAILED; exit 96; }}; "

    def took(self, run, res: GradeResult) -> bool:
        """Record the run's log and what the reset did (``restored``: protected paths put back to the
        start state, checked out or deleted when new; ``removed``: every path deleted, protected or
        not source); False (with ``res.error``) when the reset or the task's test_patch failed and
        the session never ran."""
        res.test_output = run.log_tail
        if "TF-TEST-PATCH" in run.log_tail:
            res.error = f"test_patch does not apply: {run.log_tail.strip()[-200:]}"
            return False
        if "TF-RESET-FAILED" in run.log_tail:
            res.error = f"cannot reset the tree to the start state: {run.log_tail.strip()[-300:]}"
            return False
        res.restored = sorted(set(self.restore) | {p for p in self.remove if self.protected(p)})
        res.removed = sorted(self.remove)
        return True


def _plan_reset(after: dict, task: GradingTask, model_patch: str, protected: Callable[[str], bool],
                keep: Callable[[str], bool] = lambda _path: True) -> _Reset:
    """What the applied patch changed (``after``: the inspect script's listing) that is not the fix.

    Protected paths (tests, runner and interpreter configuration: ``protected``) and symlinks the
    start state did not track go back to the base commit — a configuration file the gold patch
    changes gets the gold patch's version; every untracked file is deleted unless it is a plain
    source file the patch adds that ``keep`` accepts (pytest: one that shadows no module); then the
    start state's untracked files come back from their tar, and the task's test_patch is applied."""
    base = task.base_commit
    gold_paths = {p for p in patch_paths(task.patch) if not is_test_file(p)}
    added = set(patch_paths(model_patch))
    start_untracked = set(after["start_untracked"])
    tracked_links = set(after["tracked_links"])
    remove = sorted(p for p in after["links"] if p not in tracked_links and p not in start_untracked)
    restore, gold_configs = [], []
    for path in _porcelain_paths(after["status"]):
        if protected(path) or path in tracked_links:
            restore.append(path)
            if path in gold_paths and not is_test_file(path):
                gold_configs.append(path)
    for path in after["untracked"]:
        if path in start_untracked or any(path.startswith(link + "/") for link in remove):
            continue
        if not (path in added and not protected(path) and not not_source(path) and keep(path)):
            remove.append(path)
    script = "set -e; cd /testbed; "
    files: dict[str, bytes] = {}
    if remove:
        script += f"rm -rf -- {_quoted(remove)}; "
    if restore:
        script += f"git checkout -q {shlex.quote(base)} -- {_quoted(restore)}; "
    if gold_configs:
        files[f"{_G}/gold.diff"] = task.patch.encode()
        script += "".join(f"git apply --whitespace=nowarn --include={shlex.quote(p)} {_G}/gold.diff; "
                          for p in gold_configs)
    # Without their owners: npm keeps the tarballs' uids, and the sandbox has no CAP_CHOWN.
    script += f"if [ -f {_G}/start-extra.tar ]; then tar --no-same-owner -xf {_G}/start-extra.tar; fi; "
    if task.test_patch:
        files[f"{_G}/test.diff"] = task.test_patch.encode()
        script += f"git apply --whitespace=nowarn {_G}/test.diff || {{ echo TF-TEST-PATCH; exit 3; }}; "
    # Nothing the session could read the gold patch from (it could apply the fix at import).
    script += f"rm -f {_G}/gold.diff {_G}/test.diff {_G}/reset.sh; "
    return _Reset(remove, restore, protected, script, files)


def _tampering(run, rep) -> list[str]:
    """Why the run's report cannot be believed (empty: it can)."""
    if run.status in ("timeout", "oom"):
        return []  # the sandbox ended it; the missing records are the limit's, not a forgery
    found = list(rep.integrity) + list(rep.guard or [])
    if rep.exitstatus is not None and run.exit_code is not None and run.exit_code != rep.exitstatus:
        found.append(f"the test process exited {run.exit_code} but pytest's session ended with {rep.exitstatus}")
    return found


_PLUGIN_CACHE: dict[str, str] = {}


def _plugin_source() -> str:
    if "src" not in _PLUGIN_CACHE:
        _PLUGIN_CACHE["src"] = (Path(__file__).parent / "plugin" / "tf_report.py").read_text()
    return _PLUGIN_CACHE["src"]


def _quoted(paths: list[str]) -> str:
    return " ".join(shlex.quote(p) for p in paths)


def _porcelain_paths(items: list[str]) -> list[str]:
    """Paths from ``git status --porcelain -z`` entries (both sides of renames)."""
    out: list[str] = []
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
