"""The dataset card (README.md): YAML metadata the Hub and ``datasets`` read, and a body people read.

The YAML names the parquet shards per split (``configs``), the features and split sizes
(``dataset_info``), the license and task categories. The body explains every column, how to
start a task from its image, and the counts: per split, per repository, per source, what
curation and decontamination removed, and why. Rendering only; no files are written here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import yaml

from factory.curate import CurationReport
from factory.decontam import DecontamReport

__all__ = ["CARD_TAG", "COLUMN_DOCS", "render_card"]

CARD_TAG = "taskfactory"  # marks a Hub repository whose data files factory publish may replace

COLUMN_DOCS: dict[str, str] = {
    "instance_id": "Unique id of the task.",
    "repo": "The repository the task comes from.",
    "base_commit": "The commit at /testbed in the image where the task starts.",
    "patch": "The gold fix, as a unified diff against the start state (SWE-bench's `patch`).",
    "test_patch": "Tests added with the fix (pull requests); empty for injected bugs, whose tests already exist.",
    "problem_statement": "What the solver is told: the issue text, or a description of the failing behaviour.",
    "hints_text": "Optional extra hints (for example PR discussion); may be empty.",
    "created_at": "When the underlying change was made (ISO 8601), or when the bug was generated.",
    "version": "The repository's version label at the start commit.",
    "FAIL_TO_PASS": "Test node ids that fail at the start state and pass with `patch` (list of strings).",
    "PASS_TO_PASS": "Test node ids that pass both before and after `patch` (list of strings).",
    "environment_setup_commit": "The commit whose install recipe built the image.",
    "image_name": "Docker image holding the installed repository at /testbed, in its start state.",
    "source": "`pr`, `pr_mirror` (mined pull requests), `mutation` (an injected bug) or `combined` (several).",
    "start_files": "Start-state content of each file `patch` touches: list of {path, content}.",
    "upstream_commit": "For mined tasks, the upstream commit of the fix.",
    "operator": "For injected bugs, the mutation operator that made the bug.",
    "provenance": "JSON object with anything else known about the task's origin.",
    "num_f2p": "Number of FAIL_TO_PASS tests.",
    "num_p2p": "Number of PASS_TO_PASS tests.",
    "validation_s": "Seconds the validation of the task took.",
    "num_lines_added": "Lines added by `patch`.",
    "num_lines_removed": "Lines removed by `patch`.",
    "num_lines_changed": "Lines added plus lines removed by `patch`.",
    "num_hunks": "Hunks in `patch`.",
    "num_files_changed": "Files touched by `patch`.",
    "test_s": "Seconds the task's tests took in validation (falls back to validation_s).",
    "split": "The split the row is in; repositories never span two splits.",
}


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def _metadata(config: Any, split_rows: dict[str, int], split_bytes: dict[str, int]) -> dict[str, Any]:
    from factory.features import dataset_features

    meta: dict[str, Any] = {
        "license": config.license,
        "task_categories": ["text-generation"],
        "language": ["en"],
        "tags": ["code", "software-engineering", "swe-bench", CARD_TAG],
        "size_categories": [_size_category(sum(split_rows.values()))],
    }
    if config.pretty_name:
        meta["pretty_name"] = config.pretty_name
    meta["configs"] = [{
        "config_name": "default",
        "data_files": [{"split": s, "path": f"data/{s}-*"} for s in split_rows],
    }]
    try:  # datasets' own YAML form of the features, so the Hub viewer shows the exact types
        from datasets.info import DatasetInfo
        from datasets.splits import SplitDict, SplitInfo

        splits = SplitDict()
        for s, n in split_rows.items():
            splits.add(SplitInfo(name=s, num_bytes=split_bytes.get(s, 0), num_examples=n))
        info = DatasetInfo(features=dataset_features(), splits=splits)
        meta["dataset_info"] = info._to_yaml_dict()
    except (ImportError, AttributeError):  # a datasets version without the private helper
        pass
    return meta


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _running_section(config: Any, split_rows: dict[str, int]) -> list[str]:
    """Exact commands for pulling the images and running the tasks with the tools people use."""
    ds = config.push_to_hub or "OWNER/NAME"
    split = next(iter(split_rows), "train")
    lines = ["## Running the tasks", ""]
    registry = getattr(config, "push_images", None)
    if registry:
        lines += [f"The images are in the registry `{registry}` (the rows' `image_name`; `images.json` lists each "
                  "image's digest and layers, which the tasks of one repository share). Fetch what the dataset needs "
                  "(images already here are skipped, so an interrupted pull resumes):", "",
                  "```bash", f"factory pull {ds}", "```", ""]
    lines += [
        "Every task can also be rebuilt from public parts (`python:3.X-slim`, the repository at its commit from "
        "PyPI or git, the install recipe, the start-state change); the rebuilt image's start commit is the row's "
        "`base_commit`:", "",
        "```bash",
        "factory publish RUN --format swebench-task-repo --out tasks/   # SWE-bench 5's task repo layout",
        "docker build -t IMAGE tasks/tasks/INSTANCE_ID                  # one task, with docker build alone",
        "```", "",
        "SWE-bench's own harness (5.x), with images built from the task repo's Dockerfiles, or on the JSONL export "
        "(`image`, `eval_script`, `log_parser`, `eval_type` included):", "",
        "```bash",
        f"swebench eval {ds} -s {split} --task-repo tasks/ -p preds.json --run-id my-run",
        f"factory publish RUN --format swebench --out tasks.jsonl && swebench eval tasks.jsonl -s {split} "
        "-p preds.json --run-id my-run",
        "```", "",
        "[mini-swe-agent](https://github.com/SWE-agent/mini-swe-agent) runs the images as they are (it reads "
        "`image_name`); its `preds.json` goes straight to `factory evaluate`:", "",
        "```bash",
        f"mini-extra swebench --subset {ds} --split {split} --model MODEL -o out/ -w 4",
        f"factory evaluate {ds} out/preds.json --run-dir RUN",
        "```", "",
        "[SWE-agent](https://github.com/SWE-agent/SWE-agent) reads `image_name`, `problem_statement` and "
        "`instance_id` from a file of instances (the JSONL export):", "",
        "```bash",
        "sweagent run-batch --config config/default.yaml --agent.model.name MODEL \\",
        "    --instances.type file --instances.path tasks.jsonl --output_dir out/",
        f"factory evaluate {ds} out/preds.json --run-dir RUN",
        "```", "",
    ]
    return lines


def render_card(
    rows: pl.DataFrame,
    curation: CurationReport,
    decontam: DecontamReport | None,
    config: Any,
    split_rows: dict[str, int],
    split_bytes: dict[str, int],
    run_yield_dir: Path | None = None,
) -> str:
    """The README.md text for a dataset of ``rows`` (curated, with a ``split`` column)."""
    from factory.inspect_stats import validation_yield

    meta = yaml.safe_dump(_metadata(config, split_rows, split_bytes), sort_keys=False, allow_unicode=True)
    title = config.pretty_name or "taskfactory coding tasks"
    out = [f"---\n{meta}---", f"# {title}", ""]
    out.append(
        "Verified coding tasks in the SWE-bench format, made by taskfactory: each task is a repository "
        "snapshot in a Docker image, a gold `patch`, and tests that fail before it and pass after it "
        "(`FAIL_TO_PASS`), with tests that must keep passing (`PASS_TO_PASS`)."
    )
    out += ["", "## Loading", "", "```python", "import datasets",
            f"ds = datasets.load_dataset({(config.push_to_hub or 'OWNER/NAME')!r})  # or a local folder path",
            "```", ""]
    out += ["## Starting a task", "",
            "The image holds the repository at `/testbed`, installed, in the task's start state:", "",
            "```bash", f"{_agent_command()}   # IMAGE_NAME: the row's image_name",
            "cd /testbed && git checkout -f BASE_COMMIT   # the row's base_commit", "```", "",
            "Start agents with that isolation (no network: the original sdist and the upstream repository "
            "hold the fix; every capability dropped; memory and process limits); it is the sandbox "
            "grading uses, and `factory shell DATASET INSTANCE_ID` starts one the same way. "
            "Grade predictions with `factory evaluate DATASET preds.jsonl` (or a SWE-agent `preds.json`): "
            "it restores tests and pytest configuration, removes non-source files the patch adds, runs a "
            "pytest no patch can configure, and reports `tampered` and `suspicious` per prediction. "
            "`--format swebench` exports the same rows for SWE-bench's harness (FAIL_TO_PASS / "
            "PASS_TO_PASS as JSON strings).", ""]

    out += _running_section(config, split_rows)
    out += ["## Splits", ""]
    out.append(_table(("split", "tasks", "repositories"),
                      [(s, n, ", ".join(curation.split_repos.get(s, []))) for s, n in split_rows.items()]))
    out.append("")
    if curation.single_repo:
        out.append("There is a single repository, so every task is in `train`: a held-out split would have to "
                   "share a repository with train, which would make it a leak rather than a test.")
    else:
        out.append("Splits are by repository (a stable hash of its name): no repository is in two splits.")
    out.append("")

    by_repo = rows.group_by("repo").len().sort("repo")
    out += ["## Counts", "", _table(("repository", "tasks"), list(by_repo.iter_rows())), ""]
    by_source = rows.group_by("source", "operator").len().sort("source", "operator")
    out += [_table(("source", "operator", "tasks"), [(s, o or "-", n) for s, o, n in by_source.iter_rows()]), ""]
    yield_df = validation_yield(run_yield_dir) if run_yield_dir is not None else None
    if yield_df is not None and yield_df.height:
        out += ["Validation yield (candidates accepted by the verifiers):", "",
                _table(("repository", "candidates", "validated", "accepted", "yield"),
                       [(r["repo"], r["candidates"], r["validated"], r["accepted"], f"{r['yield']:.1%}")
                        for r in yield_df.iter_rows(named=True)]), ""]

    out += ["## Curation", "", f"{curation.num_in} instances were read from the run; {curation.num_out} are published.", ""]
    drops = sorted(curation.dropped.items())
    if decontam is not None:
        drops += sorted(decontam.removed.items())
    if drops:
        out += [_table(("reason", "removed"), drops), ""]
    if decontam is not None:
        names = ", ".join(f"{k} ({v} rows)" for k, v in decontam.benchmarks.items())
        out += [f"Decontaminated against: {names}. An instance is removed when it shares repository and "
                f"commit with a benchmark instance, or its patch's changed lines overlap one by Jaccard "
                f">= {config.similarity_threshold}.", ""]

    out += ["## Columns", "", _table(("column", "meaning"), [(k, v) for k, v in COLUMN_DOCS.items()]), ""]
    return "\n".join(out) + "\n"


def _agent_command() -> str:
    from verifiers.isolation import agent_command_text  # noqa: PLC0415  (the one container policy)

    return agent_command_text("IMAGE_NAME")
