"""The data model round-trips through parquet; the run store writes atomically and resumes."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from factory.schema import (
    ARROW_SCHEMAS,
    BaselineEntry,
    Candidate,
    CoverageEntry,
    FileContent,
    RepoSpec,
    TaskInstance,
    Validation,
    content_hash,
)
from factory.store import RunStore, atomic_path, read_records, write_json, write_records


def test_every_record_round_trips_through_parquet_with_its_declared_schema(tmp_path):
    samples = [
        BaselineEntry("t::a[x y]", "passed", 0.5, False, ("passed", "passed")),
        CoverageEntry("pkg/m.py", 3, ("t::a", "t::b")),
        Candidate("c1", "r", "abc", "mutation", "--- a\n+++ b\n", operator="swap", covering_tests=("t::a",),
                  pr_number=None),
        Validation("c1", "r", "accepted", "ok", ("t::a",), ("t::b",), num_runs=3),
        TaskInstance("i1", "r", "abc", "diff", "", "it broke", "", "2026-01-01", "1.0", ("t::a",), ("t::b",),
                     "abc", "img:1", "mutation", (FileContent("pkg/m.py", "x = 1\n"),)),
    ]
    for rec in samples:
        path = tmp_path / f"{type(rec).__name__}.parquet"
        write_records(path, [rec], type(rec))
        assert pq.read_schema(path).remove_metadata() == ARROW_SCHEMAS[type(rec)]
        assert read_records(path, type(rec)) == [rec]


def test_empty_tables_keep_their_schema(tmp_path):
    path = tmp_path / "c.parquet"
    write_records(path, [], Candidate)
    assert pq.read_table(path).schema.remove_metadata() == ARROW_SCHEMAS[Candidate]


def test_content_hash_is_stable_across_processes():
    # Derived independently from the canonical JSON; Python's salted hash() would differ per run.
    import hashlib

    assert content_hash("a", 1, ["b"]) == hashlib.sha256(b'["a",1,["b"]]').hexdigest()[:16]
    assert content_hash("a", 1, ["b"]) == "206deece1e62e0a8"


def test_repo_spec_keys_and_parsing():
    assert RepoSpec("pypi:cachetools==5.5.0").kind == "pypi"
    assert RepoSpec("https://github.com/o/r.git").kind == "git"
    assert RepoSpec("/some/path").kind == "path"
    assert RepoSpec("pypi:cachetools==5.5.0").key.startswith("cachetools-5.5.0-")
    assert RepoSpec("https://github.com/o/r.git").key.startswith("r-")
    with pytest.raises(ValueError, match="unknown repo spec keys"):
        RepoSpec.parse({"source": "x", "bogus": 1})
    with pytest.raises(ValueError, match="pypi:NAME==VERSION"):
        _ = RepoSpec("pypi:cachetools").pypi


def test_a_failed_write_leaves_the_previous_file_intact(tmp_path):
    dest = tmp_path / "x.json"
    write_json(dest, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("interrupted")
    assert dest.read_text().strip().startswith("{") and '"v": 1' in dest.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_written_files_are_readable_by_others(tmp_path):
    dest = tmp_path / "x.json"
    write_json(dest, {"v": 1})
    assert dest.stat().st_mode & 0o777 == 0o644


def test_failures_are_recorded_beside_outputs_and_cleared_on_success(tmp_path):
    store = RunStore(tmp_path)
    rd = store.repo("r")
    rd.record_failure("env", "install failed: boom", reason_key="install_failed")
    rd.record_failure("baseline", "no tests")
    rd.clear_failure("env")
    assert list(__import__("json").loads(rd.failure.read_text())) == ["baseline"]
    rd.clear_failure("baseline")
    assert not rd.failure.exists()
    m = store.update_manifest(config={"a": 1})
    m = store.update_manifest(config={"b": 2})
    assert m["config"] == {"a": 1, "b": 2} and "created_at" in m
