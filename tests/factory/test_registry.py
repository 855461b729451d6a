"""Task images through a real registry: Debian's docker-registry (distribution 2.8) on localhost.

The registry is started by ``factory.registry.ensure_registry`` (installed with apt-get where
missing, as ``verifiers.engine`` does for Docker). The "second machine" is a second, empty dockerd
(``tests/factory/scratch_engine.py``): nothing is deleted from the shared engine, and the pull
really downloads every layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from factory.registry import ImageRecord, layer_sharing, registry_ref, split_ref
from tests.factory.demo_run import ROOT, demo_rows, demo_run  # noqa: F401  (fixture)


def test_registry_ref_keeps_the_path_under_the_registry():
    assert registry_ref("localhost:5000", "taskfactory/task:abc") == "localhost:5000/taskfactory/task:abc"
    assert registry_ref("http://ghcr.io/org/", "taskfactory/task:abc") == "ghcr.io/org/taskfactory/task:abc"
    # a reference that already names a registry is moved, not nested
    assert registry_ref("localhost:6000", "localhost:5000/taskfactory/task:x") == "localhost:6000/taskfactory/task:x"
    assert split_ref("localhost:5000/taskfactory/task:abc") == ("localhost:5000", "taskfactory/task", "abc")


def test_layer_sharing_counts_each_blob_once():
    a = ImageRecord("r/a:1", "sha256:a", [("L1", 100), ("L2", 50), ("A", 7)], config_size=3)
    b = ImageRecord("r/b:1", "sha256:b", [("L1", 100), ("L2", 50), ("B", 9)], config_size=3)
    s = layer_sharing([a, b])
    assert s["sum_of_image_sizes"] == 160 + 162
    assert s["unique_bytes"] == 100 + 50 + 7 + 9 + 3 + 3
    assert s["shared_layers"] == 2 and s["shared_bytes"] == 150
    assert s["unique_bytes_per_image"] == {"r/a:1": 10, "r/b:1": 12}


@pytest.fixture(scope="module")
def registry(docker_client, tmp_path_factory):
    from factory.registry import ensure_registry

    reg = ensure_registry(root=tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()
    # the tags this module made in the shared engine (the images themselves stay)
    for image in docker_client.images.list():
        for tag in image.tags:
            if tag.startswith(reg.address + "/"):
                docker_client.images.remove(tag)


def _factory(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "factory.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})})


@pytest.mark.docker
@pytest.mark.slow
def test_push_then_pull_on_an_empty_engine_resolves_every_gold_patch(demo_run, registry, tmp_path):  # noqa: F811
    import docker
    import polars as pl

    from factory.registry import fetch_manifest, read_images_file
    from tests.factory.scratch_engine import scratch_engine

    ds = tmp_path / "dataset"
    proc = _factory("publish", str(demo_run), "--dataset-dir", str(ds), "--push-images", registry.address)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = pl.read_parquet(ds / "data" / "*.parquet")
    refs = sorted(rows["image_name"].unique())
    assert len(refs) == rows.height == len(demo_rows(demo_run))
    assert all(r.startswith(f"{registry.address}/taskfactory/task:") for r in refs)
    records = read_images_file(ds)
    assert sorted(records) == refs
    for ref in refs[:3]:  # what images.json records is what the registry serves
        assert fetch_manifest(ref).digest == records[ref].digest
    share = layer_sharing(records.values())
    # the tasks share the environment layers: together they are far smaller than apart
    assert share["shared_bytes"] > 0.9 * share["unique_bytes"]
    assert share["unique_bytes"] < share["sum_of_image_sizes"] / 5

    with scratch_engine() as host:
        env = {"DOCKER_HOST": host}
        client = docker.DockerClient(base_url=host, timeout=600)
        assert client.images.list() == []
        # an interrupted pull: one task's image arrived, the rest did not
        first = rows["instance_id"][0]
        part = _factory("pull", str(ds), "--instance", first, env=env)
        assert part.returncode == 0, part.stderr[-2000:]
        assert "1 image(s) pulled, 0 already present" in part.stdout
        full = _factory("pull", str(ds), env=env)
        assert full.returncode == 0, full.stderr[-2000:]
        assert f"{len(refs) - 1} image(s) pulled, 1 already present" in full.stdout
        assert "present, skipped" in full.stderr and "layer(s)" in full.stderr  # progress per image
        again = _factory("pull", str(ds), env=env)
        assert f"0 image(s) pulled, {len(refs)} already present" in again.stdout
        for ref in refs:  # each image arrived at the digest the dataset records
            assert f"{ref.rpartition(':')[0]}@{records[ref].digest}" in client.images.get(ref).attrs["RepoDigests"]

        preds = tmp_path / "gold.jsonl"
        preds.write_text("".join(json.dumps({"instance_id": r["instance_id"], "model_patch": r["patch"],
                                             "model_name_or_path": "gold"}) + "\n" for r in rows.iter_rows(named=True)))
        # the shard itself: `datasets.load_dataset(folder)` may serve a cached older copy of a folder
        # whose files have the same names (seen with datasets 5.2), naming another registry's images
        (shard,) = sorted((ds / "data").glob("*.parquet"))
        ev = _factory("evaluate", str(shard), str(preds), "--run-dir", str(tmp_path / "eval"), env=env)
        assert ev.returncode == 0, ev.stderr[-2000:]
        summary = json.loads((tmp_path / "eval" / "evaluation" / "gold.json").read_text())
        assert summary["resolved_instances"] == summary["submitted_instances"] == rows.height
        assert summary["error_instances"] == 0
