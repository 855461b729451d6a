"""Check a run's JavaScript/TypeScript/Go tasks from outside, and print a table per repository.

For every instance in RUN/instances.parquet:

1. a fresh sandboxed container from ``image_name`` runs the FAIL_TO_PASS tests with the task's
   runner (after the test patch, for a pull request's task): none may pass (the bug is there);
2. ``grade_patch`` with the gold patch: resolved;
3. with the empty patch: not resolved;
4. with a forged test file (the FAIL_TO_PASS and PASS_TO_PASS tests of that file, same ids,
   bodies that always pass): not resolved, and the file is restored;
5. with an edit of the runner's configuration (``package.json`` / ``go.mod``): not resolved,
   and the file is restored.

    python bench/lang_check.py RUN [RUN ...] [--max 10] [--source pr]
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from verifiers.engine import ensure_engine  # noqa: E402
from verifiers.grade import grade_patch, image_test_cmd  # noqa: E402
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


def _diff(path: str, old: str | None, new: str) -> str:
    a = (old or "").splitlines(keepends=True)
    b = new.splitlines(keepends=True)
    body = "".join(difflib.unified_diff(a, b, f"a/{path}", f"b/{path}"))
    head = f"diff --git a/{path} b/{path}\n" + ("" if old is not None else "new file mode 100644\n")
    if old is None:
        body = body.replace(f"--- a/{path}", "--- /dev/null", 1)
    return head + body


def _js_string(s: str) -> str:
    return json.dumps(s)


def forged_test_file(runner: str, path: str, ids: list[str], old: str | None) -> str:
    """A test file whose tests carry the given ids and always pass."""
    titles = [i.split("::", 1)[1] for i in ids]
    if runner == "go":
        tops: dict[str, list[str]] = defaultdict(list)
        for t in titles:
            top, _, sub = t.partition("/")
            tops[top].append(sub)
        pkg = next((ln.split()[1] for ln in (old or "package x").splitlines() if ln.startswith("package ")), "x")
        out = [f"package {pkg}", "", 'import "testing"', ""]
        for top, subs in tops.items():
            out.append(f"func {top}(t *testing.T) {{")
            for sub in subs:
                if sub:
                    out.append(f"\tt.Run({_js_string(sub)}, func(t *testing.T) {{}})")
            out += ["}", ""]
        return "\n".join(out)
    if runner == "vitest":
        head = "import { test } from 'vitest';\n"
    elif runner == "node-test":
        head = "const test = require('node:test');\n" if not path.endswith(".mjs") else "import test from 'node:test';\n"
    else:
        head = ""
    fn = "it" if runner == "mocha" else "test"
    return head + "".join(f"{fn}({_js_string(t)}, () => {{}});\n" for t in titles)


def check_instance(client, row: dict) -> dict:
    t0 = time.monotonic()
    image, f2p, p2p = row["image_name"], list(row["FAIL_TO_PASS"]), list(row["PASS_TO_PASS"])
    cmd = image_test_cmd(client, image) or ""
    runner = runner_for(cmd)
    out = {"id": row["instance_id"], "runner": runner.name}
    # A pull request's task starts without its tests: they come with the test patch, as in grading.
    setup = ""
    env = {}
    if row.get("test_patch"):
        env["TF_TEST_PATCH"] = row["test_patch"]
        setup = "printf '%s' \"$TF_TEST_PATCH\" > /tmp/tf-test.diff && git apply /tmp/tf-test.diff && "
    run, _ = run_tests(client, image, setup + runner.command(Selection.of(f2p)), limits=SandboxLimits(timeout_s=1200),
                       env=env)
    got = run.outcomes()
    out["f2p_fail_before"] = run.status == "ok" and all(got.get(t) != "passed" for t in f2p) or \
        run.status == "collection_error"
    out["gold"] = grade_patch(client, row, row["patch"]).resolved
    out["empty"] = grade_patch(client, row, "").resolved
    # A forged test file: the F2P test's file, its tests under the same ids, always passing.
    if runner.name == "go":
        pkg = f2p[0].split("::", 1)[0]
        ls = client.containers.run(image, ["bash", "-c", f"cd /testbed/{pkg} && ls *_test.go"], remove=True,
                                   network_disabled=True).decode().split()
        ids = [i for i in f2p + p2p if i.split("::", 1)[0] == pkg]
        path = (f"{pkg}/" if pkg != "." else "") + ls[0]
        patches = []
        for i, name in enumerate(ls):  # every test file of the package, forged in the first, emptied in the rest
            p = (f"{pkg}/" if pkg != "." else "") + name
            old = _read(client, image, p)
            new = forged_test_file("go", p, ids, old) if i == 0 else \
                next((ln for ln in (old or "").splitlines() if ln.startswith("package ")), "package x") + "\n"
            patches.append(_diff(p, old, new))
        forged = "".join(patches)
    else:
        path = f2p[0].split("::", 1)[0]
        ids = [i for i in f2p + p2p if i.split("::", 1)[0] == path]
        old = _read(client, image, path)
        forged = _diff(path, old, forged_test_file(runner.name, path, ids, old))
    res = grade_patch(client, row, forged)
    out["forged_tests"] = res.resolved
    out["forged_restored"] = any(p in res.restored for p in [path])
    config = "go.mod" if runner.name == "go" else "package.json"
    old = _read(client, image, config)
    if config == "go.mod":
        hacked = (old or "") + "\nreplace example.com/nothing => ./\n"
    else:
        data = json.loads(old or "{}")
        data["jest"] = {"testMatch": ["**/nothing/**"]}
        data["mocha"] = {"spec": ["nothing"]}
        hacked = json.dumps(data, indent=2) + "\n"
    res = grade_patch(client, row, _diff(config, old, hacked))
    out["config_edit"] = res.resolved
    out["config_restored"] = config in res.restored
    out["seconds"] = round(time.monotonic() - t0, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--max", type=int, default=10, help="instances per run (the first N by id)")
    ap.add_argument("--json", default="")
    ap.add_argument("--source", default="", help="only instances of this source (mutation, pr)")
    a = ap.parse_args(argv)
    client = ensure_engine(quiet=True)
    rows_out = []
    for run in a.runs:
        df = pl.read_parquet(Path(run) / "instances.parquet").sort("instance_id")
        if a.source:
            df = df.filter(pl.col("source") == a.source)
        df = df.head(a.max)
        for row in df.iter_rows(named=True):
            r = check_instance(client, row)
            r["run"] = run
            rows_out.append(r)
            print(json.dumps(r), flush=True)
    print()
    print("| run | runner | tasks | F2P fail before gold (fresh container) | gold resolved | empty resolved "
          "| forged tests resolved (restored) | config edit resolved (restored) |")
    print("|---|---|---|---|---|---|---|---|")
    for run in a.runs:
        rs = [r for r in rows_out if r["run"] == run]
        if not rs:
            continue
        n = len(rs)

        def c(k, rs=rs):
            return sum(bool(r[k]) for r in rs)

        print(f"| {Path(run).name} | {rs[0]['runner']} | {n} | {c('f2p_fail_before')}/{n} | {c('gold')}/{n} | "
              f"{c('empty')}/{n} | {c('forged_tests')}/{n} ({c('forged_restored')}/{n}) | "
              f"{c('config_edit')}/{n} ({c('config_restored')}/{n}) |")
    if a.json:
        Path(a.json).write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
