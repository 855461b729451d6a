"""make_leak_free_repo: the start state holds nothing from after the base commit."""

from __future__ import annotations

import subprocess

import pytest
from miners_gitrepo import GitRepo

from miners import MinerError, make_leak_free_repo


def _git(path, *args) -> str:
    return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=True).stdout


@pytest.fixture
def fixed_repo(tmp_path):
    r = GitRepo(tmp_path / "src")
    r.commit("initial", {"pkg/core.py": "def add(a, b):\n    return a - b\n", "README.md": "hi\n",
                         "run.sh": "#!/bin/sh\necho hi\n"})
    (r.path / "run.sh").chmod(0o755)
    r.git("add", "run.sh")
    r.commit("make run.sh executable")
    base = r.head()
    r.git("checkout", "-q", "-b", "fix")
    fix = r.commit("Fix add: the secret answer", {"pkg/core.py": "def add(a, b):\n    return a + b  # SECRET\n",
                                                   "tests/test_core.py": "def test():\n    pass\n"})
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "fix", "-m", "Merge pull request #1 from a/fix")
    r.git("tag", "v1.0")
    r.git("update-ref", "refs/remotes/origin/main", "HEAD")
    r.git("pack-refs", "--all")
    r.git("gc", "-q")  # everything, fix included, in one pack in the source
    fix_blob = r.git("rev-parse", f"{fix}:pkg/core.py")
    return r, base, fix, fix_blob


def _assert_nothing_after(dest, fix: str, fix_blob: str, expected_commits: set[str]) -> None:
    assert set(_git(dest, "log", "--all", "--format=%H").split()) == expected_commits
    assert "SECRET" not in _git(dest, "log", "--all", "-p")
    assert _git(dest, "fsck", "--unreachable", "--no-reflogs", "--no-progress").strip() == ""
    assert _git(dest, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/main"]
    assert _git(dest, "reflog", "--all").strip() == ""
    assert _git(dest, "remote").strip() == ""
    assert _git(dest, "tag").strip() == ""
    for obj in (fix, fix_blob):
        assert subprocess.run(["git", "-C", str(dest), "cat-file", "-e", obj]).returncode != 0
    # every stored object is reachable from main: the count matches a reachability walk
    stats = dict(line.split(": ") for line in _git(dest, "count-objects", "-v").splitlines())
    stored = int(stats["count"]) + int(stats["in-pack"])
    reachable = len(_git(dest, "rev-list", "--objects", "--all").splitlines())
    assert stored == reachable
    for leftover in ("FETCH_HEAD", "ORIG_HEAD", "logs", "packed-refs"):
        assert not (dest / ".git" / leftover).exists(), leftover
    assert _git(dest, "status", "--porcelain").strip() == ""


def test_single_commit_start_state_reveals_nothing(fixed_repo, tmp_path):
    r, base, fix, fix_blob = fixed_repo
    dest = tmp_path / "start"
    head = make_leak_free_repo(r.path, base, dest)
    _assert_nothing_after(dest, fix, fix_blob, {head})
    assert _git(dest, "rev-parse", "HEAD^{tree}") == _git(r.path, "rev-parse", f"{base}^{{tree}}")
    assert (dest / "pkg/core.py").read_text() == "def add(a, b):\n    return a - b\n"
    assert (dest / "run.sh").stat().st_mode & 0o111
    assert not (dest / "tests").exists()
    # the date is the base's, so even the timestamp says nothing about later work
    assert _git(dest, "show", "-s", "--format=%ct", "HEAD") == _git(r.path, "show", "-s", "--format=%ct", base)


def test_history_mode_keeps_only_ancestors_of_base(fixed_repo, tmp_path):
    r, base, fix, fix_blob = fixed_repo
    dest = tmp_path / "start"
    assert make_leak_free_repo(r.path, base, dest, history=True) == base
    _assert_nothing_after(dest, fix, fix_blob, set(_git(r.path, "rev-list", base).split()))
    # later commands keep no reflog either
    subprocess.run(["git", "-C", str(dest), "-c", "user.name=x", "-c", "user.email=x@y", "commit", "-q",
                    "--allow-empty", "-m", "agent"], check=True)
    assert _git(dest, "reflog", "--all").strip() == ""


def test_bad_base_or_non_empty_dest_raise(fixed_repo, tmp_path):
    r, base, _, _ = fixed_repo
    with pytest.raises(MinerError):
        make_leak_free_repo(r.path, "0" * 40, tmp_path / "x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(MinerError):
        make_leak_free_repo(r.path, base, tmp_path / "full")


def test_patched_start_state_leaves_no_trace_of_the_clean_code(fixed_repo, tmp_path):
    from miners import mine_mirror

    r, base, fix, fix_blob = fixed_repo
    # a mirror task: HEAD with the fix undone; the start state holds the bug, never the fixed blob
    head = r.head()
    fixed_head_blob = r.git("rev-parse", "HEAD:pkg/core.py")
    mirrors = mine_mirror(r.path, repo="x").candidates
    assert len(mirrors) == 1 and mirrors[0].base_commit == head
    m = mirrors[0]
    dest = tmp_path / "start"
    top = make_leak_free_repo(r.path, head, dest, patch=m.patch)
    assert "a - b" in (dest / "pkg/core.py").read_text()
    assert subprocess.run(["git", "-C", str(dest), "cat-file", "-e", fixed_head_blob]).returncode != 0
    _assert_nothing_after(dest, fix, fix_blob, {top})
    assert not (dest / ".git" / "patch-index").exists()


def test_patch_needs_single_commit_mode_and_must_apply(fixed_repo, tmp_path):
    r, base, _, _ = fixed_repo
    with pytest.raises(ValueError):
        make_leak_free_repo(r.path, base, tmp_path / "a", history=True, patch="")
    bad = "diff --git a/nope.py b/nope.py\n--- a/nope.py\n+++ b/nope.py\n@@ -1 +1 @@\n-x\n+y\n"
    with pytest.raises(MinerError, match="does not apply"):
        make_leak_free_repo(r.path, base, tmp_path / "b", patch=bad)
    assert not (tmp_path / "b").exists()
