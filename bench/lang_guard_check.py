"""Grading's guard for the Node and Go runners on a run's real tasks: library patches that fool an
unguarded runner must resolve nothing, and the table says so per attack.

For every instance of RUN/instances.parquet (the first ``--max`` by id), the attacks of
``tests/verifiers/langs/adversary.guard_attacks`` on the first source file the gold patch edits
(core ``assert`` made a no-op, expect's matchers replaced through ``expect.extend``, mocha's
report rewritten on exit, Go's ``init`` printing forged ``--- PASS`` lines and exiting 0):

1. each is applied in a fresh container of ``image_name`` with no grading around it (after the
   task's test patch): it is *real* when FAIL_TO_PASS and PASS_TO_PASS then pass;
2. every attack goes to ``factory evaluate RUN/instances.parquet PREDICTIONS`` (the command a
   user runs): none may resolve, and the per-instance report's ``tampered`` says what was seen.

    python bench/lang_guard_check.py RUN [RUN ...] [--max 2] --eval-dir DIR
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import polars as pl  # noqa: E402

from bench.lang_check import _read, _session  # noqa: E402
from factory.repo import is_test_file  # noqa: E402
from tests.verifiers.langs.adversary import guard_attacks  # noqa: E402
from verifiers.engine import ensure_engine  # noqa: E402
from verifiers.grade import image_test_cmd  # noqa: E402
from verifiers.runner import runner_for  # noqa: E402
from verifiers.taskimage import patch_paths  # noqa: E402

_SOURCE = (".js", ".cjs", ".mjs", ".ts", ".mts", ".cts", ".go")


def attacks_for(client, row: dict) -> tuple[str, str, dict[str, tuple[str, str]]]:
    image = row["image_name"]
    runner = runner_for(image_test_cmd(client, image) or "").name
    path = next((p for p in patch_paths(row["patch"]) if p.endswith(_SOURCE) and not is_test_file(p)), "")
    text = _read(client, image, path) if path else None
    tests = sorted(set(row["FAIL_TO_PASS"]) | set(row["PASS_TO_PASS"]))
    return runner, path, (guard_attacks(runner, path, text, tests) if text is not None else {})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--max", type=int, default=2)
    ap.add_argument("--eval-dir", required=True)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    client = ensure_engine()
    rows_out = []
    for run in a.runs:
        df = pl.read_parquet(Path(run) / "instances.parquet").sort("instance_id").head(a.max)
        preds, real = [], {}
        for row in df.iter_rows(named=True):
            runner, path, attacks = attacks_for(client, row)
            for name, (patch, phrase) in attacks.items():
                t0 = time.monotonic()
                tests = list(row["FAIL_TO_PASS"]) + list(row["PASS_TO_PASS"])
                got = _session(client, row["image_name"], runner_for(image_test_cmd(client, row["image_name"]) or ""),
                               row, tests, patch)
                ok = got.status == "ok" and all(got.outcomes().get(t) == "passed" for t in row["FAIL_TO_PASS"])
                real[(row["instance_id"], name)] = (runner, path, ok, phrase, round(time.monotonic() - t0, 1))
                preds.append({"instance_id": row["instance_id"], "model_name_or_path": f"guard-{name}",
                              "model_patch": patch})
        eval_dir = Path(a.eval_dir) / Path(run).name
        eval_dir.mkdir(parents=True, exist_ok=True)
        pred_file = eval_dir / "predictions.jsonl"
        pred_file.write_text("".join(json.dumps(p) + "\n" for p in preds))
        cmd = [str(Path(sys.executable).parent / "factory"), "evaluate", str(Path(run) / "instances.parquet"),
               str(pred_file), "--run-dir", str(eval_dir), "--workers", str(a.workers)]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        for (iid, name), (runner, path, ok, phrase, secs) in real.items():
            f = eval_dir / "evaluation" / f"guard-{name}" / iid / "report.json"
            rep = json.loads(f.read_text())[iid] if f.exists() else {}
            seen = rep.get("tampered") or []
            rows_out.append({"run": Path(run).name, "id": iid, "runner": runner, "attack": name, "file": path,
                             "passes_ungraded": ok, "resolved": rep.get("resolved"), "tampered": seen,
                             "named": any(phrase in s for s in seen), "ungraded_s": secs})
    print("| run | runner | task | attack | file | F2P passes ungraded | resolved graded | tampered names it | first thing seen |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows_out:
        first = (r["tampered"][0] if r["tampered"] else "")[:90].replace("|", "/")
        print(f"| {r['run']} | {r['runner']} | {r['id'][-8:]} | {r['attack']} | {r['file']} | {r['passes_ungraded']} | "
              f"{r['resolved']} | {r['named']} | {first} |")
    (Path(a.eval_dir) / "guard-check.json").write_text(json.dumps(rows_out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
