"""factory inspect: stats tables (rich) and PNG plots (matplotlib Agg) of a published folder."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

import tests.factory.test_publish_fixtures as fx
from factory.curate import CurateConfig
from factory.inspect_stats import inspect_dataset, validation_yield
from factory.publish import PublishConfig, publish_run
from factory.publish_errors import EmptyRunError
from factory.schema import Candidate, Validation
from factory.store import RunStore, write_records


def _run_with_validations(root: Path) -> Path:
    instances = [fx.make_instance(i, repo=r) for r in ("acme/a", "acme/b") for i in range(3)]
    verdicts = ["accepted"] * 3 + ["rejected"] * 4 + ["error"]
    vals = [Validation(candidate_id=f"c{i}", repo="acme/a", verdict=v, reason="r", test_s=0.5)
            for i, v in enumerate(verdicts)]
    run = fx.make_run(root, instances, validations={"a-12345678": vals})
    cands = [Candidate(candidate_id=f"c{i}", repo="acme/a", base_commit="0" * 40, origin="mutation", patch="")
             for i in range(10)]
    write_records(RunStore(run).repo("a-12345678").candidates, cands, Candidate)
    RunStore(run).repo("b-87654321").root.mkdir(parents=True)  # a repository with nothing validated yet
    return run


def test_inspect_prints_tables_and_saves_plots(tmp_path):
    run = _run_with_validations(tmp_path / "run")
    publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, test_fraction=0.5)))
    console = Console(record=True, width=140)
    report = inspect_dataset(tmp_path / "ds", plots_dir=tmp_path / "plots", console=console)
    text = console.export_text()
    assert report.num_rows == 6 and sum(report.splits.values()) == 6
    assert "per repository" in text and "acme/a" in text and "validation yield" in text and "37.5%" in text
    names = sorted(p.name for p in report.plots)
    assert names == ["f2p_counts.png", "tasks_per_repo.png", "tasks_per_source.png", "validation_yield.png"]
    for p in report.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validation_yield_counts_verdicts_and_skips_repos_without_data(tmp_path):
    run = _run_with_validations(tmp_path / "run")
    y = validation_yield(run)
    assert y.to_dicts() == [{"repo": "a-12345678", "candidates": 10, "validated": 8, "accepted": 3,
                             "rejected": 4, "error": 1, "yield": 3 / 8}]


def test_inspect_without_validations_says_so(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(i) for i in range(2)])
    publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0)))
    console = Console(record=True, width=140)
    report = inspect_dataset(tmp_path / "ds", console=console, plots=False)
    assert report.yield_ is None and "no validations.parquet" in console.export_text()


def test_inspect_of_a_folder_without_shards_is_a_clear_error(tmp_path):
    with pytest.raises(EmptyRunError, match="data/\\*.parquet"):
        inspect_dataset(tmp_path, plots=False)


def test_statements_are_printed_for_an_audit_spread_over_sources(tmp_path):
    import json
    from dataclasses import replace

    from factory.inspect_stats import print_statements
    from factory.schema import TaskInstance

    made = {"pr": {"source": "evidence", "leaks_redacted": 1, "rejected": ["writer:added_literal"]},
            "pr_mirror": {"source": "issue", "leaks_redacted": 0, "rejected": []}}
    rows = [replace(fx.make_instance(i), source=src, problem_statement=f"statement {src} {i}",
                    provenance=json.dumps({"problem_statement": made.get(src, {"source": "evidence"})}))
            for i, src in enumerate(["mutation"] * 6 + ["pr"] * 3 + ["pr_mirror"] * 2)]
    run = tmp_path / "run"
    run.mkdir()
    write_records(RunStore(run).instances, rows, TaskInstance)
    console = Console(record=True, width=200)
    assert print_statements(run, console=console, limit=5) == 5
    text = console.export_text()
    # round robin over sources: both PR-derived sources appear in the first five
    assert text.count("· pr ·") == 2 and text.count("· pr_mirror ·") == 1 and text.count("· mutation ·") == 2
    assert "statement from evidence; rejected writer:added_literal; 1 message(s) redacted" in text
    assert "statement from issue" in text and "FAIL_TO_PASS (" in text
    assert "5 of 11 statements (mutation 6, pr 3, pr_mirror 2)" in text
    console = Console(record=True, width=200)
    assert print_statements(run, console=console, source="pr_mirror") == 2
    # the published folder reads the same way
    publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, require_image=False)))
    console = Console(record=True, width=200)
    assert print_statements(tmp_path / "ds", console=console, limit=30) == 11
