"""Builders shared by the curate/publish/hub/inspect tests: real TaskInstance rows in a real run dir.

Imported by path (``load_fixtures()``) so it works whether or not tests/ is a package.
"""

from __future__ import annotations

import json
from pathlib import Path

from factory.schema import FileContent, TaskInstance, Validation
from factory.store import RunStore, write_records


def make_patch(file: str, n: int, salt: str = "") -> str:
    """A unified diff on ``file`` that removes one line and adds ``n`` distinct ones."""
    added = "\n".join(f"+    value_{salt}_{i} = compute_{salt}({i}) * 2" for i in range(n))
    return (
        f"diff --git a/{file} b/{file}\nindex 1111111..2222222 100644\n--- a/{file}\n+++ b/{file}\n"
        f"@@ -10,3 +10,{n + 2} @@ def f():\n     x = 1\n-    return broken_{salt}(x)\n{added}\n     return x\n"
    )


def make_instance(i: int, repo: str = "acme/widgets", **kw) -> TaskInstance:
    base = dict(
        instance_id=f"{repo.replace('/', '__')}-{i:04d}",
        repo=repo,
        base_commit=f"{i:040x}",
        patch=make_patch(f"src/mod_{i}.py", 1 + i % 3, salt=f"{repo}{i}"),
        test_patch="" if i % 2 else f"diff --git a/tests/test_{i}.py b/tests/test_{i}.py\n",
        problem_statement=f"Calling f() #{i} returns the wrong value — ünïcode ✓",
        hints_text="",
        created_at="2026-11-30T12:00:00+00:00",
        version="1.0",
        FAIL_TO_PASS=tuple(f"tests/test_mod.py::test_{i}_{k}" for k in range(1 + i % 2)),
        PASS_TO_PASS=("tests/test_mod.py::test_ok", f"tests/test_mod.py::test_param[{i}-x]"),
        environment_setup_commit=f"{i:040x}",
        image_name=f"taskfactory/env:{i:020x}",
        source="mutation" if i % 3 else "pr",
        start_files=(FileContent(path=f"src/mod_{i}.py", content="def f():\n    return 1\n"),),
        upstream_commit="" if i % 3 else f"{i + 7:040x}",
        operator=("flip_compare" if i % 2 else "drop_return") if i % 3 else "",
        provenance=json.dumps({"seed": i}),
        num_f2p=1 + i % 2,
        num_p2p=2,
        validation_s=1.5 + i,
    )
    base.update(kw)
    return TaskInstance(**base)


def make_run(root: Path, instances: list[TaskInstance], validations: dict[str, list[Validation]] | None = None) -> Path:
    store = RunStore(root)
    write_records(store.instances, instances, TaskInstance)
    for key, rows in (validations or {}).items():
        write_records(store.repo(key).validations, rows, Validation)
    return store.root
