"""SWE-bench 5's own harness on our task repository, unchanged; and an image rebuilt from public parts.

``factory publish RUN --format swebench-task-repo`` writes the task repo; ``swebench dataset check``
must find nothing wrong, ``swebench dataset build`` compiles it, and ``swebench eval`` grades the
demo tasks with gold predictions (all resolved) and with empty predictions (none).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factory.demo_run import ROOT, demo_rows, demo_run  # noqa: F401  (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
SWEBENCH = str(Path(sys.executable).parent / "swebench")


def _factory(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


def test_harness_names_match_swebench():
    from swebench.task.checks import expected_image

    from factory.swebench_export import harness_image_name

    for iid in ("cachetools-5.5.0-bc06256a__09d80d0e582d3e3a", "Owner__Repo-12"):
        assert harness_image_name(iid) == expected_image(iid)


def test_jsonl_export_feeds_swebench_make_test_spec(demo_run, tmp_path):  # noqa: F811
    from swebench.harness.log_parsers import PARSER_REGISTRY
    from swebench.harness.utils import load_swebench_dataset, make_test_spec

    out = tmp_path / "tasks.jsonl"
    proc = _factory("publish", str(demo_run), "--format", "swebench", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = load_swebench_dataset(str(out), "test")
    assert len(rows) == len(demo_rows(demo_run))
    for r in rows:
        spec = make_test_spec(r)  # the KeyError: 'image' of issue #20 was here
        assert spec.image == r["image_name"] and spec.log_parser in PARSER_REGISTRY
        assert ">>>>> End Test Output" in spec.eval_script and spec.FAIL_TO_PASS == json.loads(r["FAIL_TO_PASS"])


@pytest.fixture(scope="module")
def task_repo(demo_run, docker_client, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("task-repo") / "repo"
    proc = _factory("publish", str(demo_run), "--format", "swebench-task-repo", "--out", str(out),
                    "--tag-local-images")
    assert proc.returncode == 0, proc.stderr[-2000:]
    yield out
    for d in (out / "tasks").iterdir():  # the harness-named tags --tag-local-images made (images stay)
        import yaml

        image = yaml.safe_load((d / "task.yaml").read_text())["image"]
        try:
            docker_client.images.remove(image)
        except Exception:  # already gone: nothing to undo
            pass


def test_swebench_grades_the_task_repo_gold_all_empty_none(demo_run, task_repo, tmp_path):  # noqa: F811
    rows = demo_rows(demo_run)
    check = subprocess.run([SWEBENCH, "dataset", "check", str(task_repo)], capture_output=True, text=True)
    assert check.returncode == 0 and "looks well formed" in check.stdout, check.stdout + check.stderr
    files = sorted(p.name for p in (task_repo / "tasks" / rows[0]["instance_id"]).iterdir())
    assert {"task.yaml", "tests.json", "problem_statement.md", "gold.patch", "test.patch", "eval.sh",
            "Dockerfile"} <= set(files)
    build = subprocess.run([SWEBENCH, "dataset", "build", str(task_repo), "-o", str(tmp_path / "data")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    (compiled,) = [p for p in (tmp_path / "data").iterdir() if p.is_dir()]

    gold = subprocess.run([SWEBENCH, "eval", str(compiled), "-s", "train", "--gold", "--run-id", "gold", "-j", "2"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert gold.returncode == 0, gold.stderr[-2000:]
    report = json.loads((tmp_path / "gold.gold.json").read_text())
    assert report["submitted_instances"] == len(rows)
    assert report["resolved_instances"] == len(rows), report["unresolved_ids"] + report["error_ids"]

    empty = tmp_path / "empty.jsonl"
    empty.write_text("".join(json.dumps({"instance_id": r["instance_id"], "model_patch": "",
                                         "model_name_or_path": "empty"}) + "\n" for r in rows))
    none = subprocess.run([SWEBENCH, "eval", str(compiled), "-s", "train", "-p", str(empty), "--run-id", "empty"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert none.returncode == 0, none.stderr[-2000:]
    report = json.loads((tmp_path / "empty.empty.json").read_text())
    assert report["resolved_instances"] == 0 and report["empty_patch_instances"] == len(rows)
