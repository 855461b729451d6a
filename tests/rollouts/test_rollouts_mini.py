"""mini-swe-agent's own agent writes trajectory files (tool-calling and text-based models, its local
environment running real commands); we import them and render them in every format."""

from __future__ import annotations

import json

import pytest

from rollouts.mini import import_mini_swe_agent
from rollouts.record import RecordError
from rollouts.templates import FORMATS, parse, render

pytest.importorskip("minisweagent", reason="pip install 'taskfactory[agents]'")
SUBMIT = "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"


def _run(tmp_path, model) -> dict:
    from minisweagent.agents.default import DefaultAgent
    from minisweagent.environments.local import LocalEnvironment

    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mod.py").write_text("def f():\n    return 1\n")
    out = tmp_path / "run.traj.json"
    agent = DefaultAgent(model, LocalEnvironment(cwd=str(tmp_path / "work")), system_template="You fix bugs.",
                         instance_template="Task: {{task}}", output_path=out, step_limit=10, cost_limit=0)
    agent.run("make f return 2")
    return json.loads(out.read_text())


def _check(data: dict, n_calls: int):
    t = import_mini_swe_agent(data, instance_id="demo-1")
    assert t.meta["exit_status"] == "Submitted" and t.meta["source"] == "mini-swe-agent"
    calls = [c.arguments["command"] for m in t.messages for c in m.calls]
    assert len(calls) == n_calls and calls[-1] == SUBMIT
    results = [m.content for m in t.messages if m.role == "tool"]
    assert "return 1" in results[0] and "<returncode>0</returncode>" in results[0]  # real output of cat
    for f in FORMATS:
        assert parse(f, render(f, t)) == t
    return t




def test_tool_calling_run(tmp_path):
    from minisweagent.models.test_models import DeterministicToolcallModel, make_toolcall_output

    def step(text, cmd, i):
        return make_toolcall_output(text, [{"id": f"call_{i}", "type": "function", "function": {
            "name": "bash", "arguments": json.dumps({"command": cmd})}}], [{"command": cmd, "tool_call_id": f"call_{i}"}])

    model = DeterministicToolcallModel(outputs=[
        step("Look at the file.", "cat mod.py", 0),
        step("Fix it.", "sed -i 's/return 1/return 2/' mod.py && cat mod.py", 1),
        step("Done.", SUBMIT, 2)])
    data = _run(tmp_path, model)
    assert data["trajectory_format"].startswith("mini-swe-agent")
    t = _check(data, 3)
    assert "return 2" in [m.content for m in t.messages if m.role == "tool"][1]


def test_text_based_run(tmp_path):
    from minisweagent.models.test_models import DeterministicModel, make_output

    model = DeterministicModel(outputs=[
        make_output("THOUGHT: look.\n\n```mswea_bash_command\ncat mod.py\n```", [{"command": "cat mod.py"}]),
        make_output("THOUGHT: submit.\n\n```mswea_bash_command\n" + SUBMIT + "\n```", [{"command": SUBMIT}])])
    t = _check(_run(tmp_path, model), 2)
    assert t.messages[2].content.startswith("THOUGHT: look.")


def test_other_files_are_refused(tmp_path):
    with pytest.raises(RecordError, match="not a mini-swe-agent trajectory"):
        import_mini_swe_agent({"messages": [], "trajectory_format": "swe-agent"})
