"""Pushing through the real huggingface_hub client to a local Hub stand-in, and loading back.

huggingface_hub reads HF_ENDPOINT (and HF_HUB_DISABLE_XET) at import time, so each scenario
runs in a child process with the environment pointed at the stand-in, which serves from a
thread of this process. The stand-in's own record of requests and commits is checked here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
TOKEN = "hf_standin_secret"


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


HubStandin = _load("tf_hub_standin", "hub_standin.py").HubStandin

CHILD_PRELUDE = textwrap.dedent(f"""
    import importlib.util, json, sys
    from pathlib import Path
    spec = importlib.util.spec_from_file_location("fx", {str(HERE / "test_publish_fixtures.py")!r})
    fx = importlib.util.module_from_spec(spec); spec.loader.exec_module(fx)
    import httpx2, os
    import factory.hub
    factory.hub.RETRY_BASE_S = 0.01
    from factory.curate import CurateConfig
    from factory.publish import PublishConfig, publish_run
    from factory.publish_errors import HubAuthError, HubPushError
    tmp = Path(sys.argv[1])
    def fail(method, pattern, status, times=1):
        httpx2.post(os.environ["HF_ENDPOINT"] + "/__standin/fail",
                    json={{"method": method, "pattern": pattern, "status": status, "times": times}})
    def rows(ds):
        return {{s: sorted((r["instance_id"], r["split"], tuple(r["FAIL_TO_PASS"]), len(r["start_files"]))
                          for r in ds[s]) for s in ds}}
    out = {{}}
""")


def run_child(hub, tmp_path: Path, body: str, token: str | None = TOKEN) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE"))}
    env.update({"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
                "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "PYTHONPATH": str(ROOT)})
    if token:
        env["HF_TOKEN"] = token
    script = tmp_path / "child.py"
    script.write_text(CHILD_PRELUDE + textwrap.dedent(body) + "\nprint('RESULT ' + json.dumps(out))\n")
    proc = subprocess.run([sys.executable, str(script), str(tmp_path)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    line = next(x for x in reversed(proc.stdout.splitlines()) if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


@pytest.fixture
def hub():
    with HubStandin(token=TOKEN) as h:
        yield h


def test_push_then_load_dataset_by_hub_id_reads_every_row_back(hub, tmp_path):
    out = run_child(hub, tmp_path, """
        import datasets
        insts = [fx.make_instance(i, repo=r, problem_statement="p" * 4000)
                 for r in ("acme/a", "acme/b", "acme/c") for i in range(4)]
        run = fx.make_run(tmp / "run", insts)
        cfg = PublishConfig(curate=CurateConfig(min_f2p=0, test_fraction=0.34), push_to_hub="standin/tasks",
                            max_shard_size="10KB")
        rep = publish_run(run, tmp / "ds", cfg)
        out["shards"] = rep.shards
        out["commit"] = rep.hub.commit_oid
        local = datasets.load_dataset(str(tmp / "ds"))
        remote = datasets.load_dataset("standin/tasks")
        out["local"], out["remote"] = rows(local), rows(remote)
        out["features_equal"] = all(local[s].features == remote[s].features for s in local)
        streamed = list(datasets.load_dataset("standin/tasks", split="train", streaming=True))
        out["streamed"] = sorted(r["instance_id"] for r in streamed)
        # a re-push with bigger shards must not leave the old, smaller shards behind
        rep2 = publish_run(run, tmp / "ds", PublishConfig(curate=cfg.curate, push_to_hub="standin/tasks"))
        out["deleted"] = rep2.hub.deleted
        again = datasets.load_dataset("standin/tasks", download_mode="force_redownload")
        out["again"] = rows(again)
        # a repository holding someone else's dataset is not replaced unless asked
        from huggingface_hub import HfApi
        api = HfApi()
        api.create_repo("standin/foreign", repo_type="dataset")
        api.upload_file(path_or_fileobj=b"PAR1", path_in_repo="data/train-00000-of-00001.parquet",
                        repo_id="standin/foreign", repo_type="dataset")
        from factory.publish_errors import HubRepoConflictError
        try:
            publish_run(run, tmp / "ds3", PublishConfig(curate=cfg.curate, push_to_hub="standin/foreign"))
            out["foreign"] = "pushed"
        except HubRepoConflictError as exc:
            out["foreign"] = str(exc)
        out["foreign_local"] = (tmp / "ds3").exists()
        publish_run(run, tmp / "ds3", PublishConfig(curate=cfg.curate, push_to_hub="standin/foreign", overwrite=True))
    """)
    assert out["remote"] == out["local"] and out["features_equal"]
    assert out["streamed"] == sorted(r[0] for r in out["local"]["train"])
    assert sum(len(v) for v in out["remote"].values()) == 12 and set(out["remote"]) == {"train", "test"}
    assert len(out["shards"]) > 2  # several shards per split, uploaded one by one
    assert out["again"] == out["local"]
    assert "--overwrite" in out["foreign"] and not out["foreign_local"]
    assert len(hub.commits("standin/foreign")) == 3
    assert out["deleted"] and all(p.startswith("data/") for p in out["deleted"])
    files = hub.files("standin/tasks")
    assert sorted(p for p in files if p.startswith("data/")) == [
        "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]
    assert "standin/tasks" in files["README.md"].decode()
    # one commit per push, made after every shard's content was uploaded
    assert hub.commits("standin/tasks")[0] == "initial commit" and len(hub.commits("standin/tasks")) == 3
    calls = [f"{m} {p}" for m, p in hub.requests]
    first_commit = next(i for i, c in enumerate(calls) if "/commit/main" in c)
    assert sum(c.startswith("PUT /__lfs/") for c in calls[:first_commit]) == len(out["shards"])


def test_failed_commit_publishes_nothing_and_a_rerun_resumes_without_reuploading(hub, tmp_path):
    out = run_child(hub, tmp_path, """
        run = fx.make_run(tmp / "run", [fx.make_instance(i, problem_statement="p" * 4000) for i in range(6)])
        cfg = PublishConfig(curate=CurateConfig(min_f2p=0), push_to_hub="standin/resume", max_shard_size="8KB")
        fail("POST", "/commit/", 400)
        try:
            publish_run(run, tmp / "ds", cfg)
        except HubPushError as exc:
            out["error"] = [type(exc).__name__, str(exc), exc.committed, str(exc.local_dataset)]
        out["local_ok"] = (tmp / "ds" / "README.md").exists()
        fail("POST", "/commit/", 503)      # transient: retried
        fail("POST", "/api/repos/create", 502)
        rep = publish_run(run, tmp / "ds", cfg)
        out["retries"] = rep.hub.retries
        out["num_shards"] = len(rep.shards)
        # decontamination can name a Hub dataset id: SWE-bench columns read from every split
        import io, polars as pl
        from huggingface_hub import HfApi
        from factory.decontam import load_benchmark
        buf = io.BytesIO()
        pl.DataFrame({"instance_id": ["b1", "b2"], "repo": ["x/y", "x/z"], "base_commit": ["1" * 40, "2" * 40],
                      "patch": ["+a", "+b"], "FAIL_TO_PASS": ["[]", "[]"]}).write_parquet(buf)
        api = HfApi()
        api.create_repo("standin/bench", repo_type="dataset")
        api.upload_file(path_or_fileobj=buf.getvalue(), path_in_repo="data/test-00000-of-00001.parquet",
                        repo_id="standin/bench", repo_type="dataset")
        out["bench_ids"] = sorted(load_benchmark("standin/bench").rows["instance_id"].to_list())
    """)
    name, message, committed, local = out["error"]
    assert name == "HubPushError" and not committed and "commit failed" in message
    assert out["local_ok"] and local.endswith("/ds")
    assert out["retries"] == 2
    assert out["bench_ids"] == ["b1", "b2"]
    assert hub.commits("standin/resume") == ["initial commit", f"Publish {out['num_shards']} shard(s) with factory publish"]
    # the second run found every shard already uploaded: no PUT beyond the first run's (+1: the benchmark)
    assert hub.count("PUT", r"^/__lfs/") == out["num_shards"] + 1 > 2


def test_upload_failing_halfway_keeps_the_local_dataset_and_says_nothing_was_committed(hub, tmp_path):
    out = run_child(hub, tmp_path, """
        run = fx.make_run(tmp / "run", [fx.make_instance(i, problem_statement="p" * 4000) for i in range(6)])
        cfg = PublishConfig(curate=CurateConfig(min_f2p=0), push_to_hub="standin/half", max_shard_size="8KB")
        fail("PUT", "^/__lfs/", 400)
        try:
            publish_run(run, tmp / "ds", cfg)
            out["error"] = None
        except HubPushError as exc:
            out["error"] = [str(exc), exc.committed]
        import datasets
        out["local_rows"] = datasets.load_dataset(str(tmp / "ds"), split="train").num_rows
    """)
    message, committed = out["error"]
    assert "nothing was committed" in message and "Re-run to resume" in message and not committed
    assert out["local_rows"] == 6
    assert hub.commits("standin/half") == ["initial commit"]


def test_no_token_is_an_auth_error_and_a_private_repo_is_hidden_without_one(hub, tmp_path):
    out = run_child(hub, tmp_path, """
        run = fx.make_run(tmp / "run", [fx.make_instance(i) for i in range(2)])
        try:
            publish_run(run, tmp / "ds", PublishConfig(curate=CurateConfig(min_f2p=0), push_to_hub="standin/p"))
        except HubAuthError as exc:
            out["auth"] = str(exc)
        out["local_written"] = (tmp / "ds").exists()
        rep = publish_run(run, tmp / "ds", PublishConfig(curate=CurateConfig(min_f2p=0), push_to_hub="standin/p",
                                                         private=True, hub_token=TOKEN))
        import datasets
        try:
            datasets.load_dataset("standin/p")
            out["anonymous"] = "loaded"
        except Exception as exc:
            out["anonymous"] = type(exc).__name__
        out["with_token"] = datasets.load_dataset("standin/p", token=TOKEN, split="train").num_rows
    """.replace("TOKEN", repr(TOKEN)), token=None)
    assert "HF_TOKEN" in out["auth"] and not out["local_written"]  # refused before any local work
    assert out["anonymous"] != "loaded"
    assert out["with_token"] == 2
    assert hub.repos[("dataset", "standin/p")].private
