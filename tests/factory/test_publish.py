"""publish_run / export_swebench: real TaskInstance rows written with factory.store, read back."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import tests.factory.test_publish_fixtures as fx
from factory.curate import CurateConfig
from factory.publish import (
    MARKER_FILE,
    PublishConfig,
    export_swebench,
    parse_size,
    publish_run,
)
from factory.publish_errors import DatasetDirConflictError, EmptyRunError, InvalidInstancesError, PublishError
from factory.schema import TaskInstance, from_table, to_table
from factory.store import RunStore, write_records

KEEP_ALL = CurateConfig(min_f2p=0, dedupe=False, test_fraction=0.0)


@pytest.fixture(autouse=True)
def _hf_offline_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_load_dataset_round_trips_every_instance_and_column(tmp_path):
    import datasets

    instances = [fx.make_instance(i) for i in range(7)]
    run = fx.make_run(tmp_path / "run", instances)
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=KEEP_ALL))
    assert report.num_published == 7
    assert report.shards == ["data/train-00000-of-00001.parquet"]

    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train", cache_dir=str(tmp_path / "c"))
    feats = ds.features
    assert feats["FAIL_TO_PASS"] == datasets.List(datasets.Value("string"))
    assert feats["start_files"] == datasets.List({"path": datasets.Value("string"), "content": datasets.Value("string")})
    assert feats["num_f2p"] == datasets.Value("int64") and feats["validation_s"] == datasets.Value("float64")
    back = from_table(ds.data.table.select(list(to_table(instances).column_names)), TaskInstance)
    assert sorted(back, key=lambda t: t.instance_id) == sorted(instances, key=lambda t: t.instance_id)
    assert set(ds.column_names) >= {"num_lines_changed", "num_hunks", "num_files_changed", "test_s", "split"}


def test_polars_reads_the_shards_directly_with_native_lists(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(i) for i in range(4)])
    publish_run(run, tmp_path / "ds", PublishConfig(curate=KEEP_ALL))
    df = pl.read_parquet(tmp_path / "ds" / "data" / "*.parquet")
    assert df.height == 4
    assert df.schema["FAIL_TO_PASS"] == pl.List(pl.String)
    assert df.schema["start_files"] == pl.List(pl.Struct({"path": pl.String, "content": pl.String}))


def test_card_has_yaml_configs_splits_license_and_start_instructions(tmp_path):
    import yaml

    instances = [fx.make_instance(i, repo=r) for r in ("acme/a", "acme/b", "acme/c", "acme/d") for i in range(3)]
    run = fx.make_run(tmp_path / "run", instances)
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, test_fraction=0.3)))
    text = (tmp_path / "ds" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    # no repository in this synthetic run says what its license is: the card does not invent one
    assert meta["license"] == "unknown" and meta["task_categories"] == ["text-generation"]
    split_names = [d["split"] for d in meta["configs"][0]["data_files"]]
    assert split_names == ["train", "test"]
    assert {s["name"]: s["num_examples"] for s in meta["dataset_info"]["splits"]} == report.splits
    assert "docker run --rm -it --network none --cap-drop ALL" in text  # grading's isolation, not a bare run
    assert "git checkout -f" in text and "/testbed" in text
    train = set(report.curation.split_repos["train"])
    assert train and not train & set(report.curation.split_repos["test"])


def test_single_repository_goes_to_train_and_the_card_says_so(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(i) for i in range(3)])
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, test_fraction=0.5)))
    assert report.splits == {"train": 3}
    assert "single repository" in (tmp_path / "ds" / "README.md").read_text()


def test_shards_split_by_max_shard_size_and_are_named_as_the_hub_expects(tmp_path):
    import datasets

    run = fx.make_run(tmp_path / "run", [fx.make_instance(i, problem_statement="x" * 5000) for i in range(9)])
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=KEEP_ALL, max_shard_size="20KB"))
    assert len(report.shards) > 1
    n = len(report.shards)
    assert report.shards == [f"data/train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    ds = datasets.load_dataset(str(tmp_path / "ds"), split="train", cache_dir=str(tmp_path / "c"))
    assert ds.num_rows == 9


def test_parse_size_reads_si_and_binary_units():
    assert parse_size("500MB") == 500 * 10**6 and parse_size("1GiB") == 2**30 and parse_size(7) == 7
    with pytest.raises(ValueError, match="max-shard-size"):
        parse_size("lots")


def test_empty_run_and_missing_instances_raise_empty_run_error(tmp_path):
    with pytest.raises(EmptyRunError, match="does not exist"):
        publish_run(tmp_path / "run", tmp_path / "ds")
    write_records(RunStore(tmp_path / "run").instances, [], TaskInstance)
    with pytest.raises(EmptyRunError, match="no instances"):
        publish_run(tmp_path / "run", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_missing_required_column_or_null_value_is_invalid(tmp_path):
    table = to_table([fx.make_instance(0), fx.make_instance(1)]).drop_columns(["image_name"])
    (tmp_path / "run").mkdir()
    pq.write_table(table, tmp_path / "run" / "instances.parquet")
    with pytest.raises(InvalidInstancesError, match="image_name"):
        publish_run(tmp_path / "run", tmp_path / "ds")
    table = to_table([fx.make_instance(0), fx.make_instance(1)])
    col = pa.array([None, "x"], type=pa.string())
    table = table.set_column(table.schema.get_field_index("patch"), "patch", col)
    pq.write_table(table, tmp_path / "run" / "instances.parquet")
    with pytest.raises(InvalidInstancesError, match="no patch.*acme__widgets-0000"):
        publish_run(tmp_path / "run", tmp_path / "ds")


def test_empty_patch_or_duplicate_ids_are_invalid_and_imageless_rows_are_dropped(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(0), fx.make_instance(1, patch=" ")])
    with pytest.raises(InvalidInstancesError, match="empty patch.*acme__widgets-0001"):
        publish_run(run, tmp_path / "ds")
    run = fx.make_run(tmp_path / "run1", [fx.make_instance(0), fx.make_instance(1, image_name=""),
                                          fx.make_instance(2, base_commit="")])
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0)))
    assert report.num_published == 1 and report.curation.dropped == {"no_task_image": 2}
    report = publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, require_image=False)))
    assert report.num_published == 3
    run = fx.make_run(tmp_path / "run2", [fx.make_instance(0), fx.make_instance(0)])
    with pytest.raises(InvalidInstancesError, match="duplicate instance_id"):
        publish_run(run, tmp_path / "ds2")


def test_optional_columns_absent_from_an_older_run_get_defaults(tmp_path):
    table = to_table([fx.make_instance(0)]).drop_columns(["operator", "start_files", "validation_s"])
    (tmp_path / "run").mkdir()
    pq.write_table(table, tmp_path / "run" / "instances.parquet")
    report = publish_run(tmp_path / "run", tmp_path / "ds", PublishConfig(curate=KEEP_ALL))
    assert report.num_published == 1


def test_a_folder_holding_another_dataset_is_refused_and_left_intact(tmp_path):
    other = tmp_path / "ds"
    (other / "data").mkdir(parents=True)
    (other / "data" / "train-00000-of-00001.parquet").write_bytes(b"someone else's")
    run = fx.make_run(tmp_path / "run", [fx.make_instance(0)])
    with pytest.raises(DatasetDirConflictError, match="--overwrite"):
        publish_run(run, other, PublishConfig(curate=KEEP_ALL))
    assert (other / "data" / "train-00000-of-00001.parquet").read_bytes() == b"someone else's"
    # another run's dataset is refused too; the same run's is replaced
    run2 = fx.make_run(tmp_path / "run2", [fx.make_instance(1)])
    publish_run(run2, tmp_path / "ds2", PublishConfig(curate=KEEP_ALL))
    with pytest.raises(DatasetDirConflictError, match="another run"):
        publish_run(run, tmp_path / "ds2", PublishConfig(curate=KEEP_ALL))
    publish_run(run2, tmp_path / "ds2", PublishConfig(curate=KEEP_ALL))
    publish_run(run, tmp_path / "ds2", PublishConfig(curate=KEEP_ALL, overwrite=True))
    assert json.loads((tmp_path / "ds2" / MARKER_FILE).read_text())["run"] == str(run)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds")]  # no temp folders left


def test_the_run_folder_itself_is_never_a_target(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(0)])
    with pytest.raises(DatasetDirConflictError):
        publish_run(run, run, PublishConfig(curate=KEEP_ALL, overwrite=True))
    assert RunStore(run).instances.exists()


def test_a_failure_while_writing_leaves_no_partial_folder(tmp_path, monkeypatch):
    import factory.publish as publish

    run = fx.make_run(tmp_path / "run", [fx.make_instance(i) for i in range(3)])

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(publish, "_swap_into_place", boom)
    with pytest.raises(OSError):
        publish_run(run, tmp_path / "ds", PublishConfig(curate=KEEP_ALL))
    assert not (tmp_path / "ds").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_all_rows_filtered_out_is_an_error_with_the_reasons(tmp_path):
    run = fx.make_run(tmp_path / "run", [fx.make_instance(i) for i in range(3)])
    with pytest.raises(PublishError, match="too_few_f2p"):
        publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=50)))


def test_swebench_export_writes_json_string_test_lists(tmp_path):
    instances = [fx.make_instance(i) for i in range(3)]
    run = fx.make_run(tmp_path / "run", instances)
    report = export_swebench(run, tmp_path / "tasks.jsonl", PublishConfig(curate=KEEP_ALL))
    rows = [json.loads(line) for line in (tmp_path / "tasks.jsonl").read_text().splitlines()]
    assert report.num_published == len(rows) == 3
    by_id = {r["instance_id"]: r for r in rows}
    for inst in instances:
        r = by_id[inst.instance_id]
        assert isinstance(r["FAIL_TO_PASS"], str) and json.loads(r["FAIL_TO_PASS"]) == list(inst.FAIL_TO_PASS)
        assert json.loads(r["PASS_TO_PASS"]) == list(inst.PASS_TO_PASS)
        assert r["patch"] == inst.patch and r["environment_setup_commit"] == inst.environment_setup_commit


def _swebench_python() -> str | None:
    """An interpreter with swebench: this one, or TASKFACTORY_SWEBENCH_PYTHON (a throwaway venv)."""
    if importlib.util.find_spec("swebench") is not None:
        return sys.executable
    alt = os.environ.get("TASKFACTORY_SWEBENCH_PYTHON")
    return alt if alt and shutil.which(alt) else None


@pytest.mark.skipif(_swebench_python() is None, reason="swebench is not installed (pip install swebench, or set "
                    "TASKFACTORY_SWEBENCH_PYTHON to a python that has it)")
def test_swebench_export_loads_with_swebenchs_own_loader(tmp_path):
    instances = [fx.make_instance(i) for i in range(3)]
    run = fx.make_run(tmp_path / "run", instances)
    out = tmp_path / "tasks.jsonl"
    export_swebench(run, out, PublishConfig(curate=KEEP_ALL))
    code = (
        "import json, sys\n"
        "from swebench.harness.utils import load_swebench_dataset\n"
        "rows = load_swebench_dataset(sys.argv[1], split='test')\n"
        "print(json.dumps([[r['instance_id'], json.loads(r['FAIL_TO_PASS']), json.loads(r['PASS_TO_PASS'])] for r in rows]))\n"
    )
    proc = subprocess.run([_swebench_python(), "-c", code, str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    got = {i: (f, p) for i, f, p in json.loads(proc.stdout.splitlines()[-1])}
    assert got == {t.instance_id: (list(t.FAIL_TO_PASS), list(t.PASS_TO_PASS)) for t in instances}


def test_public_surface_is_explicit_and_errors_are_factory_errors():
    import factory.card
    import factory.curate
    import factory.decontam
    import factory.hub
    import factory.inspect_stats
    import factory.publish
    import factory.publish_errors as pe
    from factory.errors import FactoryError

    for mod in (factory.card, factory.curate, factory.decontam, factory.hub, factory.inspect_stats, factory.publish, pe):
        assert all(hasattr(mod, name) for name in mod.__all__), mod.__name__
    assert {"publish_run", "export_swebench", "PublishConfig", "PublishReport"} <= set(factory.publish.__all__)
    for name in pe.__all__:
        assert issubclass(getattr(pe, name), (pe.PublishError, FactoryError))
    assert issubclass(pe.HubAuthError, pe.HubPushError)
