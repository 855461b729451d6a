"""SWE-bench exports carry pytest eval scripts only: other languages' tasks are left out, counted."""

from __future__ import annotations

import polars as pl
import pytest

from factory.publish import pytest_rows_only
from factory.publish_errors import EmptyRunError


def test_tasks_of_other_runners_are_left_out_of_a_swebench_export_and_counted():
    rows = pl.DataFrame({"instance_id": ["a", "b", "c", "d"],
                         "language": ["python", "javascript", None, "go"]})
    said = []
    kept = pytest_rows_only(rows, said.append)
    assert kept["instance_id"].to_list() == ["a", "c"]
    assert len(said) == 1 and "2 task(s) left out" in said[0] and "go: 1" in said[0] and "javascript: 1" in said[0]


def test_a_run_of_only_other_languages_is_refused_with_what_to_do_instead():
    rows = pl.DataFrame({"instance_id": ["a"], "language": ["typescript"]})
    with pytest.raises(EmptyRunError, match="publish it as a dataset"):
        pytest_rows_only(rows, lambda _m: None)
