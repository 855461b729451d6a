"""Rollouts: agent sessions on published tasks, oracle trajectories, and tool-call templates.

    rollouts.runtime     Runtime / Session: exec, read, write, edit, diff, submit (graded) in task containers
    rollouts.oracle      a scripted agent that solves a task through the runtime's tools (real observations)
    rollouts.record      the trajectory record (tools, messages, calls, results)
    rollouts.templates   render / parse the record in json, qwen-xml, xml-invoke, pythonic, typescript
    rollouts.mini        import mini-swe-agent trajectory files into the record
    rollouts.dataset     trajectories → a Hugging Face dataset (messages + one text per format)

Imports ``verifiers`` and ``factory.schema`` / ``factory.errors`` only; ``factory`` imports this
package (the ``trajectories`` command), never the reverse.
"""
