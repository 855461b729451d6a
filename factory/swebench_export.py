"""Our tasks in the forms SWE-bench's own harness (5.x) reads, unchanged.

``swebench_fields`` gives a row the four columns the harness's ``make_test_spec`` needs besides
SWE-bench's own: ``image`` (the image to run), ``eval_script`` (``eval.sh``), ``log_parser`` (a
name in ``swebench.harness.log_parsers.PARSER_REGISTRY``) and ``eval_type``. The JSONL export
(``factory publish --format swebench``) adds them to every row, with ``image`` = the row's
``image_name``, so ``swebench eval FILE.jsonl`` runs our images as they are.

``write_task_repo`` writes SWE-bench 5's task repository (``swebench/task/repo.py``)::

    DIR/sweb.yaml                     the dataset it publishes and its splits
    DIR/tasks/<instance_id>/task.yaml     metadata (split, image, log_parser, eval_type, ...)
                            tests.json    FAIL_TO_PASS and PASS_TO_PASS
                            problem_statement.md, gold.patch, test.patch, eval.sh, hints.md
                            Dockerfile    + its build context (factory.rebuild): rebuilds the image

``image`` in ``task.yaml`` follows the harness's naming rule (``swebench/sweb.eval.x86_64.<id>:latest``,
which ``swebench dataset check`` enforces); ``image_name`` keeps our pullable reference.
``swebench eval DATASET --task-repo DIR`` builds the images from the Dockerfiles;
``tag_local=True`` instead tags the images already on this engine under those names.

The eval script follows SWE-bench's shape: restore the tests the model may have touched to
``base_commit``, apply ``test_patch``, run the FAIL_TO_PASS and PASS_TO_PASS tests between the
``>>>>> Start/End Test Output`` markers with ``pytest -rA`` (what ``parse_log_pytest`` reads),
and restore the tests again.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from verifiers.sandbox import HASH_SEED, PYTEST_CACHE_DIR

__all__ = ["LOG_PARSER", "EVAL_TYPE", "TaskRepoReport", "eval_script", "harness_image_name", "swebench_fields",
           "write_task_repo"]

LOG_PARSER = "parse_log_pytest"
EVAL_TYPE = "pass_and_fail"
START, END = ">>>>> Start Test Output", ">>>>> End Test Output"
_HEREDOC = "EOF_TASKFACTORY_TEST_PATCH"


def harness_image_name(instance_id: str, namespace: str = "swebench") -> str:
    """The image name SWE-bench's harness derives for an instance (``swebench.task.checks.expected_image``)."""
    key = f"sweb.eval.x86_64.{instance_id}:latest".lower()
    return f"{namespace}/{key}".replace("__", "_1776_")


def _patch_files(diff: str) -> tuple[list[str], list[str]]:
    """(paths the diff modifies or deletes, paths it creates)."""
    existing, new = [], []
    for block in re.split(r"^(?=diff --git )", diff, flags=re.M):
        m = re.match(r"diff --git a/(.+?) b/(.+)$", block, flags=re.M)
        if not m:
            continue
        if re.search(r"^new file mode", block, flags=re.M):
            new.append(m.group(2))
        else:
            existing.append(m.group(1))
    return existing, new


def eval_script(row: dict, test_cmd: str = "python -m pytest") -> str:
    """``eval.sh`` for one row (run as ``/bin/bash /eval.sh`` in the task image)."""
    tests = list(row["FAIL_TO_PASS"]) + list(row["PASS_TO_PASS"])
    test_patch = row.get("test_patch") or ""
    modified, created = _patch_files(test_patch)
    test_files = sorted({n.split("::")[0] for n in tests} - set(created)) + modified
    test_files = sorted(set(test_files))
    base = row["base_commit"]
    restore = f"git checkout {base} -- {' '.join(shlex.quote(p) for p in test_files)}" if test_files else ""
    lines = ["#!/bin/bash", "set -uxo pipefail", "cd /testbed"]
    if restore:
        lines.append(restore)
    if created:
        lines.append("rm -rf -- " + " ".join(shlex.quote(p) for p in created))
    if test_patch.strip():
        if _HEREDOC in test_patch:
            raise ValueError(f"{row['instance_id']}: test_patch contains the heredoc marker {_HEREDOC}")
        lines += [f"git apply --verbose - <<'{_HEREDOC}'", test_patch.rstrip("\n"), _HEREDOC]
    lines += [
        f": '{START}'",
        f"export PYTHONHASHSEED={HASH_SEED}",  # the seed validation ran with (verifiers.sandbox)
        f"{test_cmd} -o cache_dir={PYTEST_CACHE_DIR} -rA --tb=no --color=no " + " ".join(shlex.quote(t) for t in tests),
        f": '{END}'",
    ]
    if restore:
        lines.append(restore)
    if created:
        lines.append("rm -rf -- " + " ".join(shlex.quote(p) for p in created))
    return "\n".join(lines) + "\n"


def _test_cmd(row: dict) -> str:
    return json.loads(row.get("provenance") or "{}").get("test_cmd") or "python -m pytest"


def swebench_fields(row: dict) -> dict[str, str]:
    """The columns SWE-bench's harness needs besides its own (``image`` is the row's image_name)."""
    return {"image": row["image_name"], "eval_script": eval_script(row, _test_cmd(row)),
            "log_parser": LOG_PARSER, "eval_type": EVAL_TYPE}


@dataclass
class TaskRepoReport:
    out_dir: Path
    dataset: str
    tasks: int
    splits: dict[str, int]
    tagged: list[str]

    def summary(self) -> str:
        extra = f"; {len(self.tagged)} local image(s) tagged with the harness's names" if self.tagged else ""
        return (f"task repo for {self.dataset}: {self.tasks} task(s) "
                f"({', '.join(f'{k}={v}' for k, v in sorted(self.splits.items()))}) → {self.out_dir}{extra}")


def _dump_yaml(data: dict) -> str:
    class _Dumper(yaml.SafeDumper):
        pass

    def _str(dumper, s):
        return dumper.represent_scalar("tag:yaml.org,2002:str", s, style="|" if "\n" in s else None)

    _Dumper.add_representer(str, _str)
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, allow_unicode=True, default_flow_style=False)


_TASK_KEYS = ("instance_id", "repo", "version", "base_commit", "created_at", "environment_setup_commit",
              "image_name", "source", "upstream_commit", "operator")


def write_task_repo(rows: list[dict], out_dir: str | Path, run_dir: str | Path, dataset: str,
                    client=None, tag_local: bool = False, overwrite: bool = False) -> TaskRepoReport:
    """Write SWE-bench 5's task repository for ``rows`` (curated, with ``split``) into ``out_dir``."""
    from factory.publish_errors import DatasetDirConflictError  # noqa: PLC0415
    from factory.rebuild import Recipes  # noqa: PLC0415

    out = Path(out_dir).resolve()
    if out.exists() and any(out.iterdir()) and not (overwrite or (out / "sweb.yaml").is_file()):
        raise DatasetDirConflictError(f"{out} is not empty and holds no task repo; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    splits: dict[str, int] = {}
    tagged: list[str] = []
    try:
        with Recipes(Path(run_dir)) as recipes:
            for row in sorted(rows, key=lambda r: r["instance_id"]):
                iid = row["instance_id"]
                if PurePosixPath(iid).name != iid or iid.startswith("."):
                    raise ValueError(f"{iid}: not usable as a folder name")
                d = tmp / "tasks" / iid
                build = recipes.build(row)
                build.write(d)  # Dockerfile and its context
                fields = swebench_fields(row)
                image = harness_image_name(iid)
                meta = {k: row[k] for k in _TASK_KEYS if k in row}
                meta.update({"split": row["split"], "datasets": [dataset], "image": image,
                             "log_parser": fields["log_parser"], "eval_type": fields["eval_type"]})
                (d / "task.yaml").write_text(_dump_yaml(meta))
                tests = {"FAIL_TO_PASS": list(row["FAIL_TO_PASS"]), "PASS_TO_PASS": list(row["PASS_TO_PASS"])}
                (d / "tests.json").write_text(json.dumps(tests, indent=2, ensure_ascii=False) + "\n")
                (d / "problem_statement.md").write_text(row["problem_statement"])
                (d / "gold.patch").write_text(row["patch"])
                (d / "test.patch").write_text(row.get("test_patch") or "")
                (d / "eval.sh").write_text(fields["eval_script"])
                if (row.get("hints_text") or "").strip():
                    (d / "hints.md").write_text(row["hints_text"])
                splits[row["split"]] = splits.get(row["split"], 0) + 1
                if tag_local and client is not None:
                    repo, _, tag = image.rpartition(":")
                    client.images.get(row["image_name"]).tag(repo, tag)
                    tagged.append(image)
        (tmp / "sweb.yaml").write_text(_dump_yaml({"datasets": [dataset], "splits": sorted(splits)}))
        tmp.chmod(0o755)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return TaskRepoReport(out_dir=out, dataset=dataset, tasks=sum(splits.values()), splits=splits, tagged=tagged)
