"""mini-swe-agent's SWE-bench batch runner on two demo tasks, graded by ``factory evaluate``.

The runner is mini-swe-agent's own (``minisweagent.run.benchmarks.swebench``, what
``mini-extra swebench`` runs) reading the published dataset folder; its model is its
``DeterministicModel``, scripted per task to apply the gold fix, write the diff and submit with the
command its SWE-bench config prescribes. Containers run with the network off and no privileges
(``--network none --cap-drop ALL --security-opt no-new-privileges``). The ``preds.json`` it writes
(a JSON object keyed by instance id, as SWE-agent writes too) goes to ``factory evaluate`` as is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.factory.demo_run import ROOT, demo_rows, demo_run  # noqa: F401  (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]
RUN_ARGS = ["--rm", "--network", "none", "--cap-drop", "ALL", "--security-opt", "no-new-privileges"]


def _script(row: dict) -> dict:
    from factory.swebench_export import _patch_files

    modified, created = _patch_files(row["patch"])
    paths = " ".join(modified + created)

    def say(text: str, command: str) -> dict:
        return {"role": "assistant", "content": text, "extra": {"actions": [{"command": command}], "cost": 0.0}}

    return {"model": {"model_class": "deterministic", "model_name": "deterministic", "outputs": [
        say("Apply the fix.", f"cd /testbed && git apply --whitespace=nowarn <<'EOF_GOLD'\n{row['patch']}EOF_GOLD"),
        say("Check that there is no network.", "python -c \"import socket; socket.create_connection(('pypi.org', 443), 3)\" "
            "&& echo NETWORK || echo no-network"),
        say("Write the patch.", f"cd /testbed && git diff -- {paths} > patch.txt"),
        say("Submit.", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT && cat patch.txt"),
    ]}, "environment": {"run_args": RUN_ARGS}}


def test_mini_swe_agent_batch_runner_then_factory_evaluate(demo_run, tmp_path):  # noqa: F811
    pytest.importorskip("minisweagent", reason="pip install 'taskfactory[agents]'")
    from minisweagent.config import builtin_config_dir

    rows = demo_rows(demo_run)[:2]
    out = tmp_path / "mini"
    for row in rows:  # one scripted model per task: one runner call per task, into one preds.json
        cfg = tmp_path / f"{row['instance_id']}.yaml"
        cfg.write_text(yaml.safe_dump(_script(row)))
        proc = subprocess.run(
            [sys.executable, "-m", "minisweagent.run.benchmarks.swebench", "--subset", str(demo_run / "dataset"),
             "--split", "train", "--filter", f"^{row['instance_id']}$", "-o", str(out),
             "-c", str(builtin_config_dir / "benchmarks" / "swebench.yaml"), "-c", str(cfg)],
            capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "MSWEA_CONFIGURED": "true"})
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
        traj = json.loads((out / row["instance_id"] / f"{row['instance_id']}.traj.json").read_text())
        assert traj["info"]["exit_status"] == "Submitted", traj["info"]
        observations = json.dumps(traj["messages"])
        assert "no-network" in observations and "NETWORK\\n" not in observations
    preds = json.loads((out / "preds.json").read_text())
    assert sorted(preds) == [r["instance_id"] for r in rows]
    assert all(preds[r["instance_id"]]["model_patch"].strip() for r in rows)

    ev = subprocess.run([sys.executable, "-m", "factory.cli", "evaluate", str(demo_run / "instances.parquet"),
                         str(out / "preds.json"), "--run-dir", str(tmp_path / "eval")],
                        capture_output=True, text=True, cwd=ROOT)
    assert ev.returncode == 0, ev.stderr[-2000:]
    summary = json.loads((tmp_path / "eval" / "evaluation" / "deterministic.json").read_text())
    assert summary["resolved_ids"] == [r["instance_id"] for r in rows]
