"""Truth checks: is the environment testing the code in ``/testbed``, and is its baseline worth trusting?

A build that succeeded and a suite that ran are not yet an environment to make tasks in:

- after install, every package under test must import from ``/testbed``. A requirement file
  that pins the package (through a docs dependency, say) replaces the editable install with a
  copy from PyPI, and every later mutation of ``/testbed`` would go unseen. That is a failure,
  ``package_shadowed``, naming the distribution, its version, and the install step that put it
  there (from pip's ``Collecting ... (from ...)`` lines in the build log);
- after the baseline, the modules that failed to collect, and the shares of tests that error and
  that skip, with their most common reasons, are recorded. Errors (or collection failures) above
  ``max_error_share`` refuse the baseline (``errors_above_threshold``, ``collection_errors``);
  skips above ``max_skip_share`` warn. Skip messages that name a missing tool or module become
  suggestions (gettext and a compile step, a locale, a pip install).

Not for: running the suite (``verifiers.baseline``); this reads what the runs reported.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from verifiers.failures import Explained, strip_ansi

__all__ = ["BaselineTruth", "InstallTruth", "TruthLimits", "check_baseline", "check_install", "packages_under_test"]

_NOT_PACKAGES = {"tests", "test", "testing", "docs", "doc", "examples", "example", "benchmarks", "bench", "scripts",
                 "tools", "build", "dist", "ci", "site-packages", "conftest", "setup", "noxfile", "fabfile", "tasks",
                 "versioneer", "runtests", "run_tests", "bootstrap", "ez_setup", "distribute_setup", "release", "conf",
                 "manage", "_build", "htmlcov", "venv", "env", "tmp", "data", "resources", "contrib", "extras", "misc",
                 "utils", "util", "demo", "demos", "sample", "samples", "typings", "stubs", "bin", "benchmark",
                 "packaging"}  # packaging/: the in-tree build backend some projects keep at the root


@dataclass(frozen=True)
class TruthLimits:
    """When a baseline is refused or warned about. Shares are of the collected tests."""

    max_error_share: float = 0.05  # above: refuse (or warn, with refuse=False)
    max_skip_share: float = 0.05  # above: warn
    max_fail_share: float = 0.2  # above: warn (a clean tree's failures are allowed, a mostly failing suite is suspect)
    refuse: bool = True


def packages_under_test(root: Path) -> list[str]:
    """Import names of the packages the tree provides (src/ layout first), tests and tooling excluded;
    for a project that is only a C extension, its distribution name as a module (``mmh3``)."""
    names = _tree_packages(root)
    if not names:
        project = _project_name(root)
        if project and any(root.rglob(f"{project}*.c")) or project and any(root.rglob(f"{project}*.pyx")):
            names = [project]
    return names


def _project_name(root: Path) -> str | None:
    from email.parser import HeaderParser  # noqa: PLC0415

    pkg = root / "PKG-INFO"
    if pkg.is_file():
        name = HeaderParser().parsestr(pkg.read_text(encoding="utf-8", errors="replace")).get("Name")
        if name:
            return re.sub(r"[-.]+", "_", name.strip()).lower()
    return None


def _tree_packages(root: Path) -> list[str]:
    names: list[str] = []
    bases = [root / "src"] if (root / "src").is_dir() else []
    bases += [root, root / "lib"] if not bases else []
    for base in bases:
        if not base.is_dir():
            continue
        for p in sorted(base.iterdir()):
            stem = p.stem if p.is_file() else p.name
            if stem.lower() in _NOT_PACKAGES or stem.startswith((".", "__")) or not stem.isidentifier():
                continue
            if p.is_dir() and (p / "__init__.py").is_file():
                names.append(p.name)
            elif p.is_dir() and not (p / "__init__.py").exists():  # a namespace package: its subpackages
                names += [f"{p.name}.{q.name}" for q in sorted(p.iterdir())
                          if q.is_dir() and (q / "__init__.py").is_file() and q.name.isidentifier()]
            elif p.suffix == ".py" and base == root and not p.stem.startswith("test") and _is_module(p):
                names.append(p.stem)
            elif p.suffix == ".py" and base != root and not p.stem.startswith("test"):
                names.append(p.stem)
    return list(dict.fromkeys(names))


def _is_module(p: Path) -> bool:
    """A top-level .py that is code under test, not a script (setup.py and friends are excluded by name)."""
    try:
        tree = ast.parse(p.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(n, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef) for n in tree.body)


# ---------------------------------------------------------------------------------------------
# After install
# ---------------------------------------------------------------------------------------------

_PROBE = r"""
import importlib, json, os, sys
from importlib import metadata
sys.path = [p for p in sys.path if p not in ('', '.', os.getcwd())]  # cwd is /tmp; a .pth's /testbed stays
names = json.loads(sys.argv[1])
out = {}
try:
    owners = metadata.packages_distributions()
except Exception:
    owners = {}
for name in names:
    rec = {}
    try:
        m = importlib.import_module(name)
        f = getattr(m, '__file__', None) or next(iter(getattr(m, '__path__', []) or []), None)
        rec['file'] = f and os.path.realpath(f)
    except BaseException as e:
        rec['error'] = (type(e).__name__ + ': ' + str(e))[:300]
    dists = []
    for d in owners.get(name.split('.')[0], []):
        try:
            dist = metadata.distribution(d)
            url = dist.read_text('direct_url.json') or ''
            dists.append({'name': dist.metadata['Name'], 'version': dist.version, 'direct_url': url[:300],
                          'installer': (dist.read_text('INSTALLER') or '').strip()})
        except Exception:
            pass
    rec['dists'] = dists
    out[name] = rec
print('TFPROBE' + json.dumps(out))
"""


@dataclass(frozen=True)
class InstallTruth:
    packages: dict  # import name -> {"file" | "error", "dists"}
    problem: Explained | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict:
        return {"packages": self.packages, "problem": self.problem.__dict__ if self.problem else None,
                "warnings": list(self.warnings)}


def check_install(client, image: str, names: list[str], build_log: str = "") -> InstallTruth:
    """Import each package under test in ``image`` (outside /testbed's path) and see where it comes from."""
    if not names:
        return InstallTruth({}, warnings=("no package under test found in the tree (nothing to check)",))
    from verifiers.isolation import Limits, container_kwargs, remove_container  # noqa: PLC0415

    kw = container_kwargs(Limits(mem="2g"), read_only=False)
    kw["working_dir"] = "/tmp"
    container = client.containers.create(image, command=["timeout", "120", "python", "-c", _PROBE, json.dumps(names)],
                                         **kw)
    try:
        container.start()
        container.wait(timeout=180)
        text = container.logs().decode(errors="replace")
    except Exception as e:  # the engine or the wait failed: the check could not run, which is said, not hidden
        return InstallTruth({}, warnings=(f"the import probe did not finish: {e.__class__.__name__}: {e}"[:300],))
    finally:
        remove_container(container)
    line = next((ln for ln in text.splitlines() if ln.startswith("TFPROBE")), None)
    if line is None:
        return InstallTruth({}, warnings=(f"the import probe printed nothing: {strip_ansi(text)[-200:]}",))
    packages = json.loads(line[len("TFPROBE"):])
    return judge_install(packages, build_log)


def judge_install(packages: dict, build_log: str = "") -> InstallTruth:
    """``package_shadowed`` when a package under test resolves outside /testbed; warnings for imports that fail."""
    warnings: list[str] = []
    for name, rec in packages.items():
        f = rec.get("file")
        if f and not f.startswith("/testbed/"):
            dist = next(iter(rec.get("dists") or []), None)
            what = f"{dist['name']} {dist['version']}" if dist else "another copy"
            origin = _who_installed(dist["name"] if dist else name, build_log)
            editable_here = dist and "file:///testbed" in dist.get("direct_url", "")
            why = ("installed from /testbed without -e (a copy in site-packages)" if editable_here
                   else f"installed {origin}" if origin else "installed from the package index")
            return InstallTruth(packages, Explained(
                "package_shadowed",
                f"{name} imports from {f}, not /testbed: {what} {why}",
                "install: your own commands that end with `python -m pip install --no-deps -e .`"))
        if "error" in rec:
            warnings.append(f"{name} does not import outside the suite: {rec['error'].splitlines()[0][:160]}")
    return InstallTruth(packages, warnings=tuple(warnings))


def _who_installed(dist: str, log: str) -> str:
    """The install step (and the requirement chain) that brought ``dist`` in, from a build log."""
    text = strip_ansi(log)
    step = ""
    norm = re.sub(r"[-_.]+", "[-_.]", re.escape(dist.lower()).replace("\\", ""))
    for line in text.splitlines():
        if line.startswith("+ "):
            step = line[2:].strip()
        m = re.search(rf"Collecting {norm}(?:[<>=!~\[;\s]\S*)?(?: .*?\(from (.+)\))?\s*$", line, re.I)
        if m:
            return f"by `{step}`" + (f" (required by {m.group(1)})" if m.group(1) else "")
    return ""


# ---------------------------------------------------------------------------------------------
# After the baseline
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BaselineTruth:
    checks: dict
    warnings: tuple[str, ...] = ()
    refusal: Explained | None = None
    suggestions: tuple[str, ...] = field(default=())


def _reason(message: str) -> str:
    """A skip or error message as one comparable line (addresses, numbers and paths masked)."""
    msg = strip_ansi(message or "").strip()
    if m := re.match(r"^\(['\"].*?['\"], \d+, ['\"](.*)['\"]\)$", msg, re.S):  # a skip's (path, line, reason)
        msg = m.group(1)
    msg = msg.removeprefix("Skipped: ")
    line = next((ln.strip() for ln in msg.splitlines() if ln.strip()), "(no message)")
    line = re.sub(r"^E\s+", "", line)  # pytest's error-line marker
    line = re.sub(r"0x[0-9a-f]+", "0x?", line)
    return line[:160]


def _suggest(reasons: list[str]) -> list[str]:
    out = []
    text = "\n".join(reasons).lower()
    if re.search(r"msgfmt|gettext|\.mo\b|compile.?messages|compile_catalog|translations? (are )?not compiled", text):
        out.append("translations: system_packages: [gettext] and the project's compile step in pre_install "
                   "(the skip messages say which)")
    if re.search(r"locale", text):
        out.append("locales: system_packages: [locales-all]")
    for m in re.finditer(r"(?:no module named|could not import) '([\w.]+)'", text):
        out.append(f"pre_install: [python -m pip install {m.group(1).split('.')[0]}]")
    for m in re.finditer(r"(?:requires?|needs?) (?:the )?([\w-]+) (?:to be installed|installed|package)", text):
        out.append(f"pre_install: [python -m pip install {m.group(1)}]")
    return list(dict.fromkeys(out))[:5]


def check_baseline(entries, runs, collect_errors, limits: TruthLimits = TruthLimits()) -> BaselineTruth:
    """Shares and reasons of a finished baseline; a refusal when errors make it untrustworthy."""
    n = len(entries)
    counts = Counter(e.outcome for e in entries)
    messages = {r.nodeid: r.message for run in runs[:1] for r in run.results}
    err_reasons = Counter(_reason(messages.get(e.nodeid, "")) for e in entries if e.outcome == "error")
    skip_reasons = Counter(_reason(messages.get(e.nodeid, "")) for e in entries if e.outcome == "skipped")
    fail_reasons = Counter(_reason(messages.get(e.nodeid, "")) for e in entries if e.outcome == "failed")
    modules = [(where or "(session)", _reason((msg or "").splitlines()[-1] if msg else "")) for where, msg in collect_errors]
    error_share = (counts.get("error", 0)) / n if n else 0.0
    skip_share = counts.get("skipped", 0) / n if n else 0.0
    fail_share = counts.get("failed", 0) / n if n else 0.0
    checks = {
        "num_tests": n, "error_share": round(error_share, 4), "skip_share": round(skip_share, 4),
        "failed_share": round(fail_share, 4),
        "top_error_reasons": err_reasons.most_common(3), "top_skip_reasons": skip_reasons.most_common(3),
        "top_fail_reasons": fail_reasons.most_common(3),
        "collect_errors": modules, "max_error_share": limits.max_error_share, "max_skip_share": limits.max_skip_share,
    }
    warnings: list[str] = []
    refusal = None
    if modules:
        first = modules[0]
        problem = Explained("collection_errors",
                            f"{len(modules)} test module(s) failed to import, their tests are missing: "
                            f"{first[0]}: {first[1]}", _fix_for(first[1]))
        refusal = problem
        warnings.append(problem.line())
    if error_share > limits.max_error_share:
        top = err_reasons.most_common(1)[0][0] if err_reasons else "(no message)"
        problem = Explained("errors_above_threshold",
                            f"{counts['error']} of {n} tests error ({error_share:.0%} > {limits.max_error_share:.0%}), "
                            f"mostly: {top}", _fix_for(top))
        refusal = refusal or problem
        warnings.append(problem.line())
    if skip_share > limits.max_skip_share:
        top = skip_reasons.most_common(1)[0][0] if skip_reasons else "(no message)"
        warnings.append(f"{counts['skipped']} of {n} tests skip ({skip_share:.0%} > {limits.max_skip_share:.0%}), "
                        f"mostly: {top}")
    if fail_share > limits.max_fail_share:
        # PyGithub 2.5.0: 905 of 966 failed on httpretty's "a real socket does not exist" (urllib3
        # too new for it): the suite stands, but almost nothing in it can become a task.
        top = fail_reasons.most_common(1)[0][0] if fail_reasons else "(no message)"
        warnings.append(f"{counts['failed']} of {n} tests fail on the clean tree ({fail_share:.0%} > "
                        f"{limits.max_fail_share:.0%}), mostly: {top}")
    suggestions = _suggest([r for r, _ in skip_reasons.most_common(10)] + [r for r, _ in err_reasons.most_common(5)]
                           + [m for _, m in modules])
    checks["suggestions"] = suggestions
    return BaselineTruth(checks=checks, warnings=tuple(warnings), refusal=refusal if limits.refuse else None,
                         suggestions=tuple(suggestions))


def _fix_for(reason: str) -> str:
    if m := re.search(r"No module named '([\w.]+)'", reason):
        from verifiers.discover import import_distribution, is_known_import  # noqa: PLC0415

        mod = m.group(1).split(".")[0]
        if is_known_import(mod):
            return f"pre_install: [python -m pip install {import_distribution(mod)}]"
        return (f"pre_install: [python -m pip install <the distribution of {mod!r}>], or add {mod}.py if the "
                "tree should have it (an sdist may leave a test helper out)")
    if "fixture" in reason and "not found" in reason:
        return "pre_install: [python -m pip install the pytest plugin that provides the fixture]"
    return ""
