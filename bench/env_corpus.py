"""Environments on a corpus of real PyPI sdists: does each build, test the code in /testbed, and
collect and pass as many tests as the suite does in a plain venv?

    python bench/env_corpus.py [--run-dir runs/env-corpus] [--results runs/env-corpus/results.json]
                               [--only NAME ...] [--redo] [--reference]

One package after another (each costs an image build and a baseline, so the 2-core dev box runs
them in sequence): ``factory``'s env stage, then its baseline stage with one rerun and no
coverage (the truth checks run as they do for a user). Results go to a JSON file as each package
finishes; a re-run skips packages already there (``--redo`` to run them again, ``--only`` to
pick some).

The reference count of each package comes from ``--reference``: the sdist unpacked, installed
with ``pip install -e '.[<its test extra>]'`` plus its test requirements into a plain host venv
(``python3.11 -m venv``), and ``python -m pytest -q -p no:cacheprovider`` run there as a
developer would, the counts read from pytest's summary line; the exact commands per package
are in REFERENCE_NOTES below and in the results file. A package matches when the environment's
collected and passed counts are each within 1% of the reference's.

iniconfig 2.0.0, tomli 2.0.2, sortedcontainers 2.4.0 and python-slugify 8.0.4 were in the first
list and left it: their sdists ship no tests (the env stage says so: ``sdist_without_tests``),
which says nothing about environments.

A *silent success* is a baseline that succeeded although a package under test imports from
outside /testbed or its error share is above the threshold: the table counts them (the target
is zero).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (spec, kind): kinds say why the package is in the corpus.
CORPUS = [  # diverse and quick ones first: the dev box may not get through all of them
    ("pluggy==1.5.0", "pure, setuptools-scm, tox"),
    ("pyflakes==3.2.0", "pure, tests inside the package"),
    ("more-itertools==10.5.0", "pure, flit"),
    ("decorator==5.1.1", "pure, suite in tests/test.py"),
    ("MarkupSafe==2.1.5", "C extension (speedups)"),
    ("six==1.16.0", "pure, top-level test_six.py, tox"),
    ("texttable==1.7.0", "pure, top-level tests.py"),
    ("wrapt==1.16.0", "C extension"),
    ("tenacity==9.0.0", "pure, setuptools-scm"),
    ("simplejson==3.19.3", "C extension, tests inside the package"),
    ("schema==0.7.7", "pure, top-level test_schema.py"),
    ("humanize==4.11.0", "pure, hatch-vcs, translations"),
    ("bitarray==2.9.2", "C extension, tests inside the package"),
    ("cachetools==5.5.0", "pure, tox"),
    ("pyrsistent==0.20.0", "C extension"),
    ("mccabe==0.7.0", "pure, top-level test_mccabe.py, tox"),
    ("msgpack==1.1.0", "C extension (Cython-generated)"),
    ("colorama==0.4.6", "pure, *_test.py inside the package"),
    ("ujson==5.10.0", "C extension, setuptools-scm"),
    ("idna==3.10", "pure, flit"),
    ("zipp==3.20.2", "pure, setuptools-scm, test extra"),
    ("mmh3==4.1.0", "C extension"),
    ("click==8.1.7", "pure, flit"),
    ("h11==0.14.0", "pure"),
    ("xxhash==3.5.0", "C extension"),
    ("tomlkit==0.13.2", "pure, poetry"),
    ("itsdangerous==2.2.0", "pure, flit"),
    ("blinker==1.8.2", "pure, flit"),
    ("setproctitle==1.3.3", "C extension"),
    ("boltons==24.0.0", "pure, pytest.ini, tox"),
    ("termcolor==2.5.0", "pure, hatch-vcs"),
    ("zope.interface==7.1.0", "C extension, namespace package, unittest"),
    ("tabulate==0.9.0", "pure, setuptools-scm, test/ folder"),
    ("prettytable==3.11.0", "pure, hatch-vcs, plugin from a test extra"),
    ("frozenlist==1.4.1", "C extension (Cython at build)"),
    ("inflection==0.5.1", "pure, top-level test_inflection.py"),
    ("text-unidecode==1.3", "pure"),
    ("jmespath==1.0.1", "pure, tox"),
    ("sqlparse==0.5.1", "pure, hatch"),
    ("pyparsing==3.1.4", "pure, flit, tox"),
    ("distro==1.9.0", "pure, tox"),
    ("platformdirs==4.3.6", "pure, hatch-vcs, test extra"),
    ("wcwidth==0.2.13", "pure, tox"),
    ("python-dateutil==2.9.0.post0", "pure, setuptools-scm, tox"),
    ("toolz==1.0.0", "pure, tests inside the package"),
    ("packaging==24.1", "pure, flit, 26854 tests (last: the longest suite)"),
]


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def run_one(spec_text: str, run_dir: Path) -> dict:
    """The env and baseline stages on one sdist, as ``factory env baseline`` runs them."""
    from factory.config import SandboxConfig
    from factory.env_stages import stage_baseline, stage_env
    from factory.schema import RepoSpec
    from factory.store import RunStore

    spec = RepoSpec(source=f"pypi:{spec_text}")
    store = RunStore(run_dir)
    t0 = time.monotonic()
    quiet = lambda _m: None  # noqa: E731
    env = stage_env(spec, store, log=quiet)
    rec: dict = {"spec": spec_text, "at": _now()}
    env_json = store.repo(spec.key).env_json
    if env_json.exists() and env.ok:
        data = json.loads(env_json.read_text())
        rec["python"] = data["spec"]["python"]
        rec["install"] = data["spec"]["install"]
        rec["test_cmd"] = data["spec"]["test_cmd"]
        rec["install_checks"] = data.get("checks", {})
    if not env.ok:
        rec.update(ok=False, stage="env", reason_key=env.detail.get("reason_key", "?"), reason=env.reason,
                   seconds=round(time.monotonic() - t0, 1))
        return rec
    base = stage_baseline(spec, store, reruns=1, coverage=False, sandbox=SandboxConfig(timeout_s=900), force=True,
                          log=quiet)
    rec["seconds"] = round(time.monotonic() - t0, 1)
    summary = base.detail if base.detail.get("outcomes") else {}
    if summary:
        rec["collected"] = summary["num_tests"]
        rec["outcomes"] = summary["outcomes"]
        rec["passed"] = summary["outcomes"].get("passed", 0)
        rec["checks"] = summary.get("checks", {})
        rec["warnings"] = summary.get("warnings", [])
    if not base.ok:
        rec.update(ok=False, stage="baseline", reason_key=base.detail.get("reason_key", "?"), reason=base.reason)
        return rec
    rec.update(ok=True, reason="; ".join(rec.get("warnings", [])))
    return rec


# ---------------------------------------------------------------------------------------------
# Reference counts: the suite in a plain host venv
# ---------------------------------------------------------------------------------------------

REFERENCE_NOTES = """\
python3.11 -m venv V; V/bin/pip install -e '.[EXTRAS]' -r REQFILES 'pytest>=8.3,<9' PLUGINS;
cd SDIST; V/bin/python -m pytest -q -p no:cacheprovider [FILES]
EXTRAS: the sdist's test-ish extra (read by hand from its metadata), REQFILES: its test requirement
files, PLUGINS: what its pytest config names; FILES only where pytest's defaults miss the suite.
"""

# Per-package reference recipe, chosen by reading each sdist (its pyproject/setup/tox/CI files).
REFERENCE = {
    "pyflakes==3.2.0": {},
    "pluggy==1.5.0": {"extras": "testing"},
    "packaging==24.1": {"pip": ["pretend"]},
    "more-itertools==10.5.0": {},
    "toolz==1.0.0": {},
    "humanize==4.11.0": {"extras": "tests"},
    "tenacity==9.0.0": {"extras": "test"},
    "python-dateutil==2.9.0.post0": {"req": ["requirements-dev.txt"], "pip": ["pytest-cov"]},
    "zipp==3.20.2": {"extras": "test"},
    "cachetools==5.5.0": {},
    "idna==3.10": {},
    "six==1.16.0": {},
    "mccabe==0.7.0": {},
    "decorator==5.1.1": {"files": ["src/tests/test.py"]},
    "colorama==0.4.6": {},
    "tomlkit==0.13.2": {"pip": ["pyyaml"]},
    "click==8.1.7": {},
    "itsdangerous==2.2.0": {"pip": ["freezegun"]},
    "blinker==1.8.2": {"pip": ["pytest-asyncio"]},
    "boltons==24.0.0": {},
    "wcwidth==0.2.13": {"pip": ["pytest-cov"]},  # its addopts has --cov
    "termcolor==2.5.0": {"extras": "tests"},
    "tabulate==0.9.0": {},
    "prettytable==3.11.0": {"extras": "tests"},
    "inflection==0.5.1": {},
    "text-unidecode==1.3": {},
    "texttable==1.7.0": {"files": ["tests.py"]},
    "schema==0.7.7": {},
    "jmespath==1.0.1": {},
    "sqlparse==0.5.1": {},
    "h11==0.14.0": {},
    "pyparsing==3.1.4": {"extras": "diagrams"},  # tests/requirements.txt pins coverage 4.4.2 and tox 3.5.2: unresolvable
    "distro==1.9.0": {},
    "platformdirs==4.3.6": {"extras": "test"},
    "MarkupSafe==2.1.5": {},
    "wrapt==1.16.0": {},
    "simplejson==3.19.3": {},
    "pyrsistent==0.20.0": {"pip": ["hypothesis"]},
    "bitarray==2.9.2": {},
    "ujson==5.10.0": {},
    "msgpack==1.1.0": {},
    "mmh3==4.1.0": {},
    "xxhash==3.5.0": {},
    "setproctitle==1.3.3": {},
    "zope.interface==7.1.0": {"extras": "test"},
    "frozenlist==1.4.1": {"pip": ["pytest-cov", "Cython"]},  # addopts --cov; .coveragerc loads Cython.Coverage
}


def _pytest_counts(text: str) -> dict[str, int]:
    """Counts from pytest's last summary line ("3 failed, 120 passed, 2 skipped in 1.2s")."""
    line = next((ln for ln in reversed(text.splitlines()) if re.search(r"\d+ (passed|failed|error|skipped)", ln)), "")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)", line)}
    if "errors" in counts:
        counts["error"] = counts.pop("errors")
    return counts


def reference_one(spec_text: str, work: Path) -> dict:
    """The suite of one sdist in a plain host venv (see REFERENCE_NOTES)."""
    from factory.repo import checkout
    from factory.schema import RepoSpec

    recipe = REFERENCE.get(spec_text, {})
    co = checkout(RepoSpec(source=f"pypi:{spec_text}"))
    with tempfile.TemporaryDirectory(prefix="tf-ref-", dir=work) as d:
        tree, venv = Path(d) / "tree", Path(d) / "venv"
        subprocess.run(["git", "clone", "-q", str(co.path), str(tree)], check=True)
        py = os.environ.get("REF_PYTHON", "python3.11")
        subprocess.run([py, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin/python"), "-m", "pip", "install", "-q"]
        target = "." + (f"[{recipe['extras']}]" if recipe.get("extras") else "")
        env = {**os.environ, "SETUPTOOLS_SCM_PRETEND_VERSION": spec_text.split("==")[1], "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        args = ["-e", target, "pytest>=8.3,<9", *recipe.get("pip", [])]
        for r in recipe.get("req", []):
            args += ["-r", r]
        inst = subprocess.run(pip + args, cwd=tree, capture_output=True, text=True, env=env)
        if inst.returncode != 0:
            return {"ok": False, "reason": inst.stderr.strip().splitlines()[-1][:200] if inst.stderr.strip() else "pip failed"}
        cmd = [str(venv / "bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *recipe.get("files", [])]
        run = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env, timeout=1800)
        counts = _pytest_counts(run.stdout)
        collected = sum(v for k, v in counts.items() if k != "deselected")
        if not counts:  # pytest refused to run (a usage error): no reference, and the tail says why
            return {"ok": False, "exit": run.returncode, "reason": (run.stdout + run.stderr).strip()[-300:]}
        return {"ok": True, "exit": run.returncode, "counts": counts, "collected": collected,
                "passed": counts.get("passed", 0), "command": " ".join(cmd[1:]), "install": " ".join(args)}


# ---------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------


def _within(a: int | None, b: int | None) -> bool:
    if a is None or b is None:
        return False
    return abs(a - b) <= max(0.01 * b, 0)


def table(results: dict, refs: dict) -> str:
    rows = ["| package | kind | result | python | collected (ref) | passed (ref) | match | reason |",
            "|---|---|---|---|---|---|---|---|"]
    n = ok = match = silent = 0
    for spec_text, kind in CORPUS:
        r = results.get(spec_text)
        if r is None:
            continue
        n += 1
        ref = refs.get(spec_text, {})
        m = r.get("ok") and _within(r.get("collected"), ref.get("collected")) and _within(r.get("passed"), ref.get("passed"))
        ok += bool(r.get("ok"))
        match += bool(m)
        checks = r.get("checks", {})
        shadow = any(not str(p.get("file", "/testbed/")).startswith("/testbed/")
                     for p in r.get("install_checks", {}).get("packages", {}).values() if p.get("file"))
        if r.get("ok") and (shadow or checks.get("error_share", 0) > checks.get("max_error_share", 0.05)):
            silent += 1
        reason = r.get("reason") or ""
        if not r.get("ok") and not reason.startswith(r.get("reason_key", "?")):
            reason = f"{r.get('reason_key', '?')}: {reason}"
        reason = reason.replace("|", "/").replace("\n", " ")[:240]
        rows.append(f"| {spec_text} | {kind} | {'ok' if r.get('ok') else 'failed'} | {r.get('python', '')} | "
                    f"{r.get('collected', '-')} ({ref.get('collected', '?')}) | {r.get('passed', '-')} "
                    f"({ref.get('passed', '?')}) | {'yes' if m else 'no'} | {reason} |")
    rows.append("")
    rows.append(f"{n} packages: {ok} built and baselined ({ok / max(n, 1):.0%}), {match} match their reference "
                f"within 1% ({match / max(n, 1):.0%}), {silent} silent successes")
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "env-corpus")
    ap.add_argument("--results", type=Path, default=None)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--redo", action="store_true", help="run packages already in the results again")
    ap.add_argument("--reference", action="store_true", help="establish the reference counts (host venvs)")
    ap.add_argument("--table", action="store_true", help="only print the table")
    ap.add_argument("--reverse", action="store_true",
                    help="from the end of the list (a second worker, with its own --results file)")
    args = ap.parse_args()
    results_path = args.results or args.run_dir / "results.json"
    refs_path = args.run_dir / "reference.json"
    todo = [s for s, _ in CORPUS if not args.only or s.split("==")[0] in args.only or s in args.only]
    if args.reverse:
        todo.reverse()
    if args.table:
        merged: dict = {}
        for f in sorted(args.run_dir.glob("results*.json")):  # every worker's file
            merged.update(_load(f))
        print(table(merged, _load(refs_path)))
        return
    if args.reference:
        refs = _load(refs_path)
        work = Path(tempfile.gettempdir())
        for s in todo:
            if s in refs and refs[s].get("ok") and not args.redo:
                continue
            t0 = time.monotonic()
            try:
                refs[s] = reference_one(s, work)
            except Exception as e:  # a reference that cannot be made is recorded, and the next one runs
                refs[s] = {"ok": False, "reason": f"{e.__class__.__name__}: {e}"[:300]}
            refs[s]["seconds"] = round(time.monotonic() - t0, 1)
            _save(refs_path, refs)
            print(f"ref {s}: {refs[s].get('counts', refs[s].get('reason'))}", flush=True)
        return
    results = _load(results_path)
    print(f"# env corpus, {_now()}, load {os.getloadavg()[0]:.1f}", flush=True)
    for s in todo:
        if (s in results and not args.redo) or s in {k for f in args.run_dir.glob("results*.json")
                                                       if f != results_path for k in _load(f)}:
            continue
        try:
            rec = run_one(s, args.run_dir)
        except Exception as e:  # the bench goes on with the next package; the error is its result
            rec = {"spec": s, "ok": False, "stage": "bench", "reason_key": "bench_error",
                   "reason": f"{e.__class__.__name__}: {e}"[:300]}
        rec["load"] = round(os.getloadavg()[0], 1)
        results[s] = rec
        _save(results_path, results)
        print(f"{s}: {'ok' if rec.get('ok') else 'failed'} collected={rec.get('collected')} passed={rec.get('passed')} "
              f"{rec.get('reason_key', '')} {rec.get('reason', '')[:160]} ({rec.get('seconds')}s)", flush=True)
    print(table(results, _load(refs_path)))


if __name__ == "__main__":
    main()
