"""Check a run's JavaScript/TypeScript/Go tasks from outside, grade them with ``factory evaluate``,
and print a table per run.

For every instance in RUN/instances.parquet (the first ``--max`` by id):

1. a fresh sandboxed container from ``image_name`` runs the FAIL_TO_PASS tests with the task's
   runner (after the test patch, for a pull request's task): none may pass (the bug is there);
2. four predictions go to ``factory evaluate RUN/instances.parquet PREDICTIONS`` (the command a
   user runs, as a subprocess): ``gold`` (must resolve), ``empty``, ``forged-tests`` (the F2P
   test's file rewritten: same test ids, bodies that always pass) and ``config-edit`` (none may
   resolve; the edited file must be among the report's ``restored_paths``); the forged test file,
   in a fresh container with no grading, makes FAIL_TO_PASS pass (so the forgery is real);
3. ``config-edit`` is a real cheat, not an inert edit: the runner's configuration (the ``jest``
   key of ``package.json``, the ``mocha`` key of ``package.json``, a new ``vitest.config.mjs``)
   loads a setup module that applies the gold patch while the tests run. A fresh container with
   that patch and no grading runs FAIL_TO_PASS and PASS_TO_PASS, which must all pass: kept, the
   edit would resolve the task. Go and node:test have no configuration that runs code; their edit
   (a ``replace`` directive in ``go.mod``, ``package.json``'s test script) must be restored.

    python bench/lang_check.py RUN [RUN ...] [--max 10] [--source pr] [--eval-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from tests.verifiers.langs.adversary import cheat_patch, forged_test_file  # noqa: E402
from tests.verifiers.langs.adversary import diff as _diff
from verifiers.engine import ensure_engine  # noqa: E402
from verifiers.grade import image_test_cmd  # noqa: E402
from verifiers.runner import Selection, runner_for  # noqa: E402
from verifiers.sandbox import SandboxLimits, run_tests  # noqa: E402


def _read(client, image: str, path: str) -> str | None:
    from verifiers.sandbox import read_file  # noqa: PLC0415

    c = client.containers.create(image, command=["true"], network_disabled=True)
    try:
        data = read_file(c, f"/testbed/{path}")
        return data.decode() if data is not None else None
    finally:
        c.remove(force=True)


def forged_tests_patch(client, image: str, runner: str, f2p: list[str], p2p: list[str]) -> tuple[str, str]:
    """A patch that rewrites every file holding an F2P test so its tests keep their ids and always
    pass (for Go, every test file of the first F2P package: forged in the first, emptied in the
    rest); and those files, comma-separated."""
    if runner == "go":
        pkg = f2p[0].split("::", 1)[0]
        ls = client.containers.run(image, ["bash", "-c", f"cd /testbed/{pkg} && ls *_test.go"], remove=True,
                                   network_disabled=True).decode().split()
        ids = [i for i in f2p + p2p if i.split("::", 1)[0] == pkg]
        path = (f"{pkg}/" if pkg != "." else "") + ls[0]
        patches = []
        for i, name in enumerate(ls):
            p = (f"{pkg}/" if pkg != "." else "") + name
            old = _read(client, image, p)
            new = forged_test_file("go", p, ids, old) if i == 0 else \
                next((ln for ln in (old or "").splitlines() if ln.startswith("package ")), "package x") + "\n"
            patches.append(_diff(p, old, new))
        return "".join(patches), path
    files = list(dict.fromkeys(t.split("::", 1)[0] for t in f2p))  # every file that holds an F2P test
    patches = []
    for path in files:
        ids = [i for i in f2p + p2p if i.split("::", 1)[0] == path]
        old = _read(client, image, path)
        patches.append(_diff(path, old, forged_test_file(runner, path, ids, old)))
    return "".join(patches), ",".join(files)


def _session(client, image: str, runner, row: dict, tests: list[str], extra_patch: str = "", own: str = ""):
    """The runner on ``tests`` in a fresh container of the task image, after ``extra_patch`` and
    the task's test patch (a pull request's; without its part for ``own``, a file that
    ``extra_patch`` rewrites whole), with no grading around it."""
    env, setup = {}, ""
    for name, patch in (("TF_EXTRA_PATCH", extra_patch), ("TF_TEST_PATCH", row.get("test_patch") or "")):
        if patch:
            env[name] = patch
            exclude = "".join(f" --exclude={shlex.quote(o)}" for o in own.split(",") if o) \
                if name == "TF_TEST_PATCH" else ""
            setup += f"printf '%s' \"${name}\" > /tmp/{name}.diff && git apply{exclude} /tmp/{name}.diff && "
    run, _ = run_tests(client, image, setup + runner.command(Selection.of(tests)),
                       limits=SandboxLimits(timeout_s=1200), env=env)
    return run


def check_instance(client, row: dict) -> tuple[dict, list[dict]]:
    """The checks from outside grading, and the predictions for ``factory evaluate``."""
    t0 = time.monotonic()
    iid, image, f2p, p2p = row["instance_id"], row["image_name"], list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
    runner = runner_for(image_test_cmd(client, image) or "")
    out = {"id": iid, "runner": runner.name}
    run = _session(client, image, runner, row, f2p)
    got = run.outcomes()
    out["f2p_fail_before"] = (run.status == "ok" and all(got.get(t) != "passed" for t in f2p)) or \
        run.status == "collection_error"
    forged, out["forged_path"] = forged_tests_patch(client, image, runner.name, f2p, p2p)
    cheat, out["config_path"] = cheat_patch(runner.name, row["patch"], lambda p: _read(client, image, p))
    run = _session(client, image, runner, row, f2p, forged, own=out["forged_path"])  # the forgery is real: left in place, F2P passes
    got = run.outcomes()
    out["forged_passes_ungraded"] = run.status == "ok" and all(got.get(t) == "passed" for t in f2p)
    if runner.name not in ("go", "node-test"):  # the cheat is real: left in place, it makes FAIL_TO_PASS pass
        run = _session(client, image, runner, row, f2p + p2p, cheat)
        got = run.outcomes()
        out["cheat_passes_ungraded"] = run.status == "ok" and all(got.get(t) == "passed" for t in f2p + p2p)
    out["seconds"] = round(time.monotonic() - t0, 1)
    preds = [{"instance_id": iid, "model_name_or_path": m, "model_patch": p}
             for m, p in (("gold", row["patch"]), ("empty", ""), ("forged-tests", forged), ("config-edit", cheat))]
    return out, preds


def evaluate_run(run: str, preds: list[dict], eval_dir: Path, workers: int) -> dict[str, dict]:
    """``factory evaluate RUN/instances.parquet PREDICTIONS`` (the command a user runs), then its
    summaries and per-instance reports."""
    eval_dir.mkdir(parents=True, exist_ok=True)
    pred_file = eval_dir / "predictions.jsonl"
    pred_file.write_text("".join(json.dumps(p) + "\n" for p in preds))
    factory = Path(sys.executable).parent / "factory"
    cmd = [str(factory), "evaluate", str(Path(run) / "instances.parquet"), str(pred_file), "--run-dir", str(eval_dir),
           "--workers", str(workers)]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    out: dict[str, dict] = {}
    for model in ("gold", "empty", "forged-tests", "config-edit"):
        summary = json.loads((eval_dir / "evaluation" / f"{model}.json").read_text())
        reports = {}
        for iid in summary["submitted_ids"]:
            f = eval_dir / "evaluation" / model / iid / "report.json"
            reports[iid] = json.loads(f.read_text())[iid] if f.exists() else {}
        out[model] = {"summary": summary, "reports": reports}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--max", type=int, default=10, help="instances per run (the first N by id)")
    ap.add_argument("--json", default="")
    ap.add_argument("--source", default="", help="only instances of this source (mutation, pr)")
    ap.add_argument("--eval-dir", default="", help="where factory evaluate writes (default: RUN/lang-check)")
    ap.add_argument("--workers", type=int, default=1, help="factory evaluate's --workers")
    ap.add_argument("--ids", default="", help="only these instance ids (comma-separated)")
    a = ap.parse_args(argv)
    client = ensure_engine(quiet=True)
    rows_out = []
    for run in a.runs:
        df = pl.read_parquet(Path(run) / "instances.parquet").sort("instance_id")
        if a.source:
            df = df.filter(pl.col("source") == a.source)
        if a.ids:
            df = df.filter(pl.col("instance_id").is_in(a.ids.split(",")))
        df = df.head(a.max)
        if df.is_empty():
            print(f"{run}: no instance matches (--source {a.source or 'any'}, --ids {a.ids or 'any'})",
                  file=sys.stderr, flush=True)
            continue
        checked, preds = [], []
        for row in df.iter_rows(named=True):
            r, p = check_instance(client, row)
            r["run"] = run
            checked.append(r)
            preds += p
            print(json.dumps(r), flush=True)
        eval_dir = Path(a.eval_dir) / Path(run).name if a.eval_dir else Path(run) / "lang-check"
        graded = evaluate_run(run, preds, eval_dir, a.workers)
        for r in checked:
            for model, key in (("gold", "gold"), ("empty", "empty"), ("forged-tests", "forged_tests"),
                               ("config-edit", "config_edit")):
                rep = graded[model]["reports"].get(r["id"], {})
                r[key] = bool(rep.get("resolved"))
                r[f"{key}_error"] = rep.get("error", "")
            restored = set(graded["forged-tests"]["reports"][r["id"]].get("restored_paths", []))
            r["forged_restored"] = set(r["forged_path"].split(",")) <= restored
            r["config_restored"] = r["config_path"] in graded["config-edit"]["reports"][r["id"]].get("restored_paths", [])
            print(json.dumps(r), flush=True)
        rows_out += checked
    print()
    print("| run | runner | tasks | F2P fail before gold (fresh container) | gold resolved | empty resolved "
          "| forged tests resolved (file restored) | config edit resolved (config restored) "
          "| forged tests pass ungraded | config edit's cheat passes ungraded |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in a.runs:
        rs = [r for r in rows_out if r["run"] == run]
        if not rs:
            continue
        n = len(rs)

        def c(k, rs=rs):
            return sum(bool(r.get(k)) for r in rs)

        cheat = ("n/a (no config runs code)" if rs[0]["runner"] in ("go", "node-test")
                 else f"{c('cheat_passes_ungraded')}/{n}")
        print(f"| {Path(run).name} | {rs[0]['runner']} | {n} | {c('f2p_fail_before')}/{n} | {c('gold')}/{n} | "
              f"{c('empty')}/{n} | {c('forged_tests')}/{n} ({c('forged_restored')}/{n}) | "
              f"{c('config_edit')}/{n} ({c('config_restored')}/{n}) | {c('forged_passes_ungraded')}/{n} | {cheat} |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
