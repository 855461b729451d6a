"""Curation (factory.curate) and decontamination (factory.decontam) on real frames and files."""

from __future__ import annotations

import json

import polars as pl
import pytest

import tests.factory.test_publish_fixtures as fx
from factory.curate import CurateConfig, assign_splits, code_change_key, curate, normalise_patch, patch_stats
from factory.decontam import find_overlaps, load_benchmark
from factory.publish import PublishConfig, publish_run
from factory.publish_errors import BenchmarkLoadError
from factory.schema import to_table


def frame(instances) -> pl.DataFrame:
    return pl.from_arrow(to_table(instances))


def test_patch_stats_counts_lines_hunks_and_files():
    p = fx.make_patch("src/a.py", 3) + fx.make_patch("src/b.py", 1)
    assert patch_stats(p) == (4, 2, 2, 2)


def test_dedupe_ignores_index_lines_hunk_numbers_and_trailing_space():
    a = fx.make_instance(0)
    moved = a.patch.replace("index 1111111..2222222", "index abcdef0..1234567").replace("@@ -10,3", "@@ -42,3")
    moved = moved.replace("return x\n", "return x   \n")
    assert normalise_patch(moved) == normalise_patch(a.patch)
    b = fx.make_instance(1, patch=moved)
    out, rep = curate(frame([b, a]), CurateConfig(min_f2p=0))
    assert out["instance_id"].to_list() == [a.instance_id]  # the first by (repo, instance_id) is kept
    assert rep.dropped == {"duplicate_patch": 1} and rep.dropped_ids == [(b.instance_id, "duplicate_patch")]


RELEASE_NOTE = ("diff --git a/releasenotes/notes/fix-f-1a2b.yaml b/releasenotes/notes/fix-f-1a2b.yaml\n"
                "new file mode 100644\nindex 0000000..3333333\n--- /dev/null\n"
                "+++ b/releasenotes/notes/fix-f-1a2b.yaml\n@@ -0,0 +1,2 @@\n+fixes:\n+  - f() no longer breaks\n")
CHANGELOG = ("diff --git a/CHANGELOG.md b/CHANGELOG.md\nindex 4444444..5555555 100644\n--- a/CHANGELOG.md\n"
             "+++ b/CHANGELOG.md\n@@ -1,1 +1,2 @@\n # Changes\n+- fixed f()\n")


def test_one_task_per_fix_prefers_the_real_pr_and_ignores_release_notes():
    fix = fx.make_patch("src/mod.py", 2, salt="s")
    # The mirror of the same fix, re-diffed on HEAD: other index and line numbers, no release note.
    on_head = fix.replace("index 1111111..2222222", "index 9999999..8888888").replace("@@ -10,3 +10,4", "@@ -97,3 +97,4")
    pr = fx.make_instance(7, patch=RELEASE_NOTE + fix + CHANGELOG, source="pr")
    mirror = fx.make_instance(1, patch=on_head, source="pr_mirror")  # sorts first by id
    bug = fx.make_instance(0, patch=fix, source="mutation")
    other = fx.make_instance(3, source="mutation")
    for order in ([pr, mirror, bug, other], [other, bug, mirror, pr]):
        out, rep = curate(frame(order), CurateConfig(min_f2p=0, test_fraction=0))
        assert sorted(out["instance_id"].to_list()) == sorted([pr.instance_id, other.instance_id])
        assert rep.dropped == {"duplicate_patch": 2}
        assert rep.duplicate_of == {mirror.instance_id: pr.instance_id, bug.instance_id: pr.instance_id}
    # Without the PR the mirror survives, over the injected bug of the same change.
    out, rep = curate(frame([bug, mirror]), CurateConfig(min_f2p=0, test_fraction=0))
    assert out["instance_id"].to_list() == [mirror.instance_id] and rep.duplicate_of == {bug.instance_id: mirror.instance_id}
    # Docs alone are still a change of their own.
    assert code_change_key(RELEASE_NOTE) != code_change_key(CHANGELOG)


def test_filters_drop_with_counted_reasons():
    rows = [fx.make_instance(i) for i in range(6)]  # F2P counts 1,2,1,2,..; added lines 1,2,3,..
    out, rep = curate(frame(rows), CurateConfig(min_f2p=2, max_lines_changed=3, test_fraction=0))
    assert rep.dropped["too_few_f2p"] == 3
    assert rep.dropped["patch_too_large"] == 1  # i=5: 3 added + 1 removed
    assert rep.num_out == out.height == 2
    assert set(out["num_f2p"].to_list()) == {2}
    files = [fx.make_instance(9, patch=fx.make_patch("a.py", 1) + fx.make_patch("b.py", 1))]
    _, rep = curate(frame(files), CurateConfig(min_f2p=0, max_files_changed=1))
    assert rep.dropped == {"too_many_files": 1}


def test_caps_are_deterministic_and_per_group():
    rows = [fx.make_instance(i, repo=r) for r in ("acme/a", "acme/b") for i in range(10)]
    cfg = CurateConfig(min_f2p=0, max_per_repo=4, test_fraction=0)
    out1, rep = curate(frame(rows), cfg)
    out2, _ = curate(frame(list(reversed(rows))), cfg)
    assert out1["instance_id"].to_list() == out2["instance_id"].to_list()
    assert dict(out1.group_by("repo").len().iter_rows()) == {"acme/a": 4, "acme/b": 4}
    assert rep.dropped == {"repo_cap": 12}
    out, rep = curate(frame(rows), CurateConfig(min_f2p=0, max_per_operator=2, test_fraction=0))
    ops = out.with_columns(pl.when(pl.col("operator") == "").then(pl.col("source")).otherwise(pl.col("operator")).alias("g"))
    assert max(dict(ops.group_by("g").len().iter_rows()).values()) == 2


def test_split_is_by_repository_deterministic_and_never_shares_a_repo():
    repos = [f"org/repo{i}" for i in range(20)]
    s1 = assign_splits(repos, 0.25, "salt")
    assert s1 == assign_splits(list(reversed(repos)), 0.25, "salt")
    assert 1 <= sum(v == "test" for v in s1.values()) < 20
    assert assign_splits(["only/one"], 0.5, "salt") == {"only/one": "train"}
    two = assign_splits(["a/x", "b/y"], 0.01, "salt")
    assert sorted(two.values()) == ["test", "train"]
    rows = [fx.make_instance(i, repo=r) for r in repos[:6] for i in range(2)]
    out, rep = curate(frame(rows), CurateConfig(min_f2p=0, test_fraction=0.3))
    per_repo = out.group_by("repo").agg(pl.col("split").n_unique())
    assert per_repo["split"].max() == 1
    assert sum(rep.splits.values()) == out.height == 12


def test_test_time_comes_from_validations_when_present():
    rows = [fx.make_instance(0), fx.make_instance(1)]
    times = pl.DataFrame({"instance_id": [rows[0].instance_id], "test_s": [9.25]})
    out, _ = curate(frame(rows), CurateConfig(min_f2p=0), test_s=times)
    got = dict(out.select("instance_id", "test_s").iter_rows())
    assert got == {rows[0].instance_id: 9.25, rows[1].instance_id: rows[1].validation_s}


def test_test_time_joins_on_the_verifiers_instance_naming(tmp_path):
    from factory.publish import read_test_times
    from factory.schema import Validation

    inst = fx.make_instance(0, instance_id="widgets-1a2b3c4d__c0ffee")
    run = fx.make_run(tmp_path / "run", [inst], validations={"widgets-1a2b3c4d": [
        Validation(candidate_id="c0ffee", repo="widgets-1a2b3c4d", verdict="accepted", reason="accepted", test_s=4.5)]})
    out, _ = curate(frame([inst]), CurateConfig(min_f2p=0), test_s=read_test_times(run))
    assert out["test_s"].to_list() == [4.5]


def test_config_checks_name_the_flag():
    with pytest.raises(ValueError, match="test-fraction"):
        CurateConfig(test_fraction=1.0)


# --- decontamination ---------------------------------------------------------------------------


def _bench_rows(instances, **over):
    return [{"instance_id": f"bench-{t.instance_id}", "repo": over.get("repo", t.repo),
             "base_commit": over.get("base_commit", t.base_commit), "patch": over.get("patch", t.patch),
             "FAIL_TO_PASS": "[]"} for t in instances]


def test_decontam_by_repo_and_commit_and_by_patch_similarity(tmp_path):
    ours = [fx.make_instance(i) for i in range(6)]
    # ours[0]: same commit, benchmark names the repo with its owner; ours[1]: same fix, other commit
    rows = _bench_rows(ours[:1], repo="ACME/Widgets") + _bench_rows(ours[1:2], base_commit="f" * 40)
    rows += _bench_rows(ours[2:3], repo="other/project")  # same commit, different repo, different patch
    rows[-1]["patch"] = fx.make_patch("x.py", 2, salt="unrelated")
    (tmp_path / "bench.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = find_overlaps(frame(ours), [load_benchmark(str(tmp_path / "bench.jsonl"))])
    assert rep.removed == {"benchmark_commit": 1, "benchmark_patch": 1}
    assert {(m[0], m[1]) for m in rep.matches} == {(ours[0].instance_id, "benchmark_commit"),
                                                   (ours[1].instance_id, "benchmark_patch")}


def test_decontam_matches_a_run_directory_repo_key_to_the_benchmarks_owner_name():
    ours = [fx.make_instance(0, repo="widgets-1a2b3c4d"), fx.make_instance(1, repo="widgetsplus-1a2b3c4d")]
    bench = pl.DataFrame(_bench_rows(ours[:1], repo="acme/widgets", patch="+x") +
                         _bench_rows(ours[1:], repo="acme/widgets", patch="+y"))  # same commit, other repo
    from factory.decontam import Benchmark

    rep = find_overlaps(frame(ours), [Benchmark("b", bench)])
    assert [m[0] for m in rep.matches] == [ours[0].instance_id]


def test_decontam_reads_parquet_and_reports_in_publish(tmp_path):
    ours = [fx.make_instance(i) for i in range(4)]
    pl.DataFrame(_bench_rows(ours[:2])).write_parquet(tmp_path / "bench.parquet")
    run = fx.make_run(tmp_path / "run", ours)
    cfg = PublishConfig(curate=CurateConfig(min_f2p=0), benchmarks=(str(tmp_path / "bench.parquet"),))
    report = publish_run(run, tmp_path / "ds", cfg)
    assert report.num_published == 2 and report.decontam.removed == {"benchmark_commit": 2}
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "benchmark_commit | 2" in card and "Decontaminated against" in card


def test_benchmark_without_swebench_columns_is_a_clear_error(tmp_path):
    (tmp_path / "b.jsonl").write_text(json.dumps({"instance_id": "x", "repo": "a/b"}) + "\n")
    with pytest.raises(BenchmarkLoadError, match="base_commit"):
        load_benchmark(str(tmp_path / "b.jsonl"))
    with pytest.raises(BenchmarkLoadError, match="does not exist"):
        load_benchmark(str(tmp_path / "missing.jsonl"))
