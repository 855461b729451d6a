"""mine_local on a real repository with GitHub-style history: what becomes a candidate, and how."""

from __future__ import annotations

import json
import subprocess

import pytest
from miners_gitrepo import GitRepo

from miners import Limits, mine_local

CORE = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
CORE_FIXED = "def add(a, b):\n    return a + b\n\n\ndef mul(a, b):\n    return a * b\n"
CORE2 = CORE_FIXED.replace("return a * b", "return (a or 0) * (b or 0)")
TEST = "from pkg.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    r = GitRepo(tmp_path_factory.mktemp("hist") / "repo")
    shas = {}
    r.commit("initial", {
        "src/pkg/__init__.py": "", "src/pkg/core.py": CORE, "src/pkg/util.py": "X = 1\n\n\ndef f():\n    return X\n",
        "src/pkg/old.py": "def legacy():\n    return 1\n", "tests/test_core.py": "def test_ok():\n    pass\n",
        "README.md": "# pkg\n", "pyproject.toml": "[project]\nname = 'pkg'\n",
    })
    shas["base1"] = r.head()
    shas[1] = r.merge_pr(1, "Fix add", {"src/pkg/core.py": CORE_FIXED, "tests/test_core.py": TEST})
    shas["base2"] = r.head()
    shas[2] = r.squash_pr(2, "Make mul handle None", {
        "src/pkg/core.py": CORE2,
        "tests/test_mul.py": "from pkg.core import mul\n\n\ndef test_none():\n    assert mul(None, 2) == 0\n",
        "CHANGELOG.md": "- mul handles None\n",
    }, body="Fixes #40")
    shas[3] = r.merge_pr(3, "Docs", {"docs/index.rst": "Docs\n====\n", "README.md": "# pkg\n\nMore.\n"})
    shas[4] = r.squash_pr(4, "Code without tests", {"src/pkg/util.py": "X = 2\n\n\ndef f():\n    return X\n"})
    shas["base5"] = r.head()
    r.git("checkout", "-q", "-b", "pr-5")
    r.git("mv", "src/pkg/util.py", "src/pkg/helpers.py")
    r.write({"src/pkg/helpers.py": "X = 2\n\n\ndef f():\n    return X + 1\n",
             "tests/test_helpers.py": "from pkg.helpers import f\n\n\ndef test_f():\n    assert f() == 3\n"})
    r.commit("Rename util to helpers")
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "pr-5", "-m", "Merge pull request #5 from ada/pr-5", "-m", "Rename util")
    shas[5] = r.head()
    shas[6] = r.squash_pr(6, "Explain add", {
        "src/pkg/core.py": '"""Core."""\n' + CORE2.replace("return a + b", "# sum\n    return a + b"),
        "tests/test_core.py": TEST + "\n# more later\n",
    })
    shas[7] = r.squash_pr(7, "CI", {".github/workflows/ci.yml": "on: push\n"})
    shas[8] = r.squash_pr(8, "Add logo handling", {
        "src/pkg/logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "src/pkg/core.py": CORE_FIXED + "LOGO = 1\n",
        "tests/test_logo.py": "def test_logo():\n    pass\n",
    })
    shas["base9"] = r.head()
    shas[9] = r.squash_pr(9, "Drop legacy", {"src/pkg/old.py": None,
                                              "tests/test_old.py": "def test_gone():\n    pass\n"})
    r.squash_pr(14, "Guard mul", {"src/pkg/core.py": CORE_FIXED + "GUARD = 1\n",
                                   "tests/test_core.py": TEST + "\n\ndef test_guard():\n    pass\n"})
    r.commit("plain tweak", {"src/pkg/core.py": CORE_FIXED + "LOGO = 2\n",
                             "tests/test_core.py": TEST + "\n\ndef test_logo():\n    pass\n"})
    r.git("checkout", "-q", "-b", "side")
    r.commit("side work", {"notes.txt": "n\n"})
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "side", "-m", "Merge branch 'side'")
    r.squash_pr(10, "Release 1.2.0", {"src/pkg/__init__.py": "__version__ = '1.2.0'\n"})
    r.squash_pr(11, "Unicode path", {"src/pkg/caf\xe9.py": "x = 1\n",
                                 "tests/test_odd.py": "def test():\n    pass\n"})
    r.squash_pr(12, "Vendored bump", {"src/pkg/_vendor/six.py": "X = 1\n", "tests/test_v.py": "def test():\n    pass\n"})
    # a PR number seen again lower down the history for another change (a repository that moved
    # and numbered again): two changes, two candidates; the same change merged twice is one
    # (tests/miners/test_miners_forms.py)
    shas[13] = r.squash_pr(14, "Guard mul again", {"src/pkg/core.py": CORE_FIXED + "LOGO = 3\n",
                                                 "tests/test_core.py": TEST + "\n\ndef test_logo3():\n    pass\n"})
    return r, shas


def _files(patch: str) -> list[str]:
    return [line.split(" b/", 1)[1] for line in patch.splitlines() if line.startswith("diff --git ")]


def test_merge_and_squash_prs_become_candidates_with_their_split(history):
    r, shas = history
    res = mine_local(r.path, repo="pkg")
    by_pr = {}
    for c in res.candidates:
        by_pr.setdefault(c.pr_number, c)
    assert sorted(by_pr) == [1, 2, 5, 9, 11, 14]  # 11: a non-ASCII (but UTF-8) path is fine
    c1 = [c for c in res.candidates if c.base_commit == shas["base1"]][0]
    assert c1.origin == "pr" and c1.repo == "pkg"
    assert c1.patch == (
        "diff --git a/src/pkg/core.py b/src/pkg/core.py\n"
        f"index {r.git('rev-parse', shas['base1'] + ':src/pkg/core.py')}..{r.git('rev-parse', shas[1] + ':src/pkg/core.py')} 100644\n"
        "--- a/src/pkg/core.py\n+++ b/src/pkg/core.py\n"
        "@@ -1,5 +1,5 @@\n def add(a, b):\n-    return a - b\n+    return a + b\n \n \n def mul(a, b):\n"
    )
    assert c1.test_patch == (
        "diff --git a/tests/test_core.py b/tests/test_core.py\n"
        f"index {r.git('rev-parse', shas['base1'] + ':tests/test_core.py')}..{r.git('rev-parse', shas[1] + ':tests/test_core.py')} 100644\n"
        "--- a/tests/test_core.py\n+++ b/tests/test_core.py\n"
        "@@ -1,2 +1,5 @@\n-def test_ok():\n-    pass\n+from pkg.core import add\n+\n+\n+def test_add():\n"
        "+    assert add(1, 2) == 3\n"
    )
    assert c1.problem_statement == ""  # the message names the fix: provenance only
    assert json.loads(c1.provenance)["commit_message"].startswith("Fix add")
    prov = json.loads(c1.provenance)
    assert prov["merge_commit"] == shas[1] and prov["style"] == "merge"
    assert prov["env_group"].startswith("deps-") and prov["env_files"] == ["pyproject.toml"]
    assert c1.created_at.endswith("Z") and c1.created_at.startswith("2023-")

    c2 = by_pr[2]
    assert c2.base_commit == shas["base2"]
    assert _files(c2.patch) == ["CHANGELOG.md", "src/pkg/core.py"]  # docs ride along with the code
    assert _files(c2.test_patch) == ["tests/test_mul.py"]
    assert "Fixes #40" in json.loads(c2.provenance)["commit_message"]
    assert json.loads(c2.provenance)["linked_issues"] == [40]
    assert _files(by_pr[5].patch) == ["src/pkg/helpers.py"] and "rename from src/pkg/util.py" in by_pr[5].patch
    assert _files(by_pr[9].patch) == ["src/pkg/old.py"] and "deleted file mode" in by_pr[9].patch
    assert by_pr[9].base_commit == shas["base9"]
    # newest first; both #14 are kept, since they change different things
    assert by_pr[14].base_commit == r.head(shas[13] + "^")
    assert sum(c.pr_number == 14 for c in res.candidates) == 2


def test_every_candidate_patch_applies_at_its_base(history):
    r, _ = history
    for c in mine_local(r.path, repo="pkg").candidates:
        for patch in (c.patch, c.test_patch):
            proc = r.apply_check(c.base_commit, patch)
            assert proc.returncode == 0, proc.stderr
        assert r.apply_check(c.base_commit, c.patch + c.test_patch).returncode == 0


def test_skips_are_counted_by_reason(history):
    r, _ = history
    s = mine_local(r.path, repo="pkg").stats
    assert s["commits_scanned"] == 17
    assert s["candidates"] == 7
    assert s["skipped_docs_only"] == 1
    assert s["skipped_no_tests"] == 1
    assert s["skipped_comments_only"] == 1
    assert s["skipped_ci_only"] == 1
    assert s["skipped_binary"] == 1
    assert s["skipped_release_bump"] == 1
    assert s["skipped_vendored"] == 1
    assert s["skipped_non_pr_merge"] == 1
    assert s["skipped_root_commit"] == 1
    assert s["pr_number_reused"] == 1 and "skipped_duplicate_pr" not in s
    assert s["not_pr"] == 1
    assert s["prs"] == 14


def test_include_commits_and_max_and_since(history):
    r, _ = history
    res = mine_local(r.path, repo="pkg", include_commits=True)
    plain = [c for c in res.candidates if c.pr_number is None]
    assert len(plain) == 1 and json.loads(plain[0].provenance)["style"] == "commit"
    assert len(mine_local(r.path, repo="pkg", max_candidates=2).candidates) == 2
    assert mine_local(r.path, repo="pkg", since="2030-01-01").stats.get("commits_scanned", 0) == 0


def test_test_globs_and_limits(history):
    r, _ = history
    res = mine_local(r.path, repo="pkg", limits=Limits(max_code_lines=1))
    assert res.stats["skipped_too_many_lines"] >= 1
    # with CHANGELOG-like files declared as tests nothing changes for code, but a glob can claim code
    res = mine_local(r.path, repo="pkg", test_globs=("src/pkg/core.py",))
    assert all("src/pkg/core.py" not in c.patch for c in res.candidates)


def test_candidate_ids_are_stable_content_hashes(history):
    r, _ = history
    a = [c.candidate_id for c in mine_local(r.path, repo="pkg").candidates]
    b = [c.candidate_id for c in mine_local(r.path, repo="pkg").candidates]
    assert a == b and len(set(a)) == len(a)


def test_bad_ref_raises_miner_error(history):
    from miners import MinerError

    r, _ = history
    with pytest.raises(MinerError):
        mine_local(r.path, repo="pkg", ref="no-such-branch")


def test_non_utf8_path_and_message_and_submodule_are_skipped(tmp_path):
    r = GitRepo(tmp_path / "odd")
    r.commit("init", {"a.py": "x = 1\n", "tests/test_a.py": "def test():\n    pass\n"})
    # a latin-1 file name and a latin-1 commit message, written with raw bytes
    name = b"caf\xe9.py"
    (r.path / name.decode("utf-8", "surrogateescape")).write_bytes(b"y = 2\n")
    r.git("add", "-A")
    r.write({"tests/test_a.py": "def test():\n    assert 1\n"})
    r.git("-c", "i18n.commitEncoding=latin-1", "commit", "-q", "-F", "-", input=b"Caf\xe9 (#7)\n")
    sub = GitRepo(tmp_path / "sub")
    sub.commit("s", {"s.txt": "s\n"})
    r.git("-c", "protocol.file.allow=always", "submodule", "-q", "add", str(sub.path), "vendor_sub")
    r.write({"a.py": "x = 2\n", "tests/test_a.py": "def test():\n    assert 2\n"})
    r.git("commit", "-q", "-m", "Add submodule (#8)")
    res = mine_local(r.path, repo="odd")
    assert res.candidates == []
    assert res.stats["skipped_non_utf8"] == 1
    assert res.stats["skipped_submodule"] == 1


def test_octopus_merge_is_skipped(tmp_path):
    r = GitRepo(tmp_path / "oct")
    r.commit("init", {"a.py": "x = 1\n"})
    for b in ("b1", "b2"):
        r.git("checkout", "-q", "-b", b, "main")
        r.commit(b, {f"{b}.py": "y = 1\n"})
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "b1", "b2", "-m", "Merge pull request #3 from a/b")
    s = mine_local(r.path, repo="oct").stats
    assert s["skipped_octopus_merge"] == 1


def test_shallow_clone_boundary_is_counted_not_crashed(tmp_path, history):
    r, _ = history
    dest = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "3", f"file://{r.path}", str(dest)], check=True)
    s = mine_local(dest, repo="pkg").stats
    assert s["commits_scanned"] == 3
    assert s.get("skipped_shallow_boundary") == 1


def test_message_that_is_not_utf8_still_makes_a_candidate(tmp_path):
    r = GitRepo(tmp_path / "msg")
    r.commit("init", {"a.py": "x = 1\n", "tests/test_a.py": "def test():\n    pass\n"})
    r.write({"a.py": "x = 2\n", "tests/test_a.py": "def test():\n    assert 1\n"})
    # raw latin-1 bytes and no encoding header (``git commit`` would re-encode them; hash-object won't)
    tree, parent = r.git("write-tree"), r.head()
    obj = (f"tree {tree}\nparent {parent}\nauthor A <a@x> 1700000000 +0000\ncommitter A <a@x> 1700000000 +0000\n\n"
           ).encode() + b"Fix caf\xe9 (#3)\n\nBody \xff\n"
    sha = r.git("hash-object", "-t", "commit", "-w", "--stdin", input=obj)
    r.git("update-ref", "refs/heads/main", sha)
    assert b"caf\xe9" in subprocess.run(["git", "-C", str(r.path), "cat-file", "commit", sha],
                                        capture_output=True).stdout
    (c,) = mine_local(r.path, repo="msg").candidates
    assert c.pr_number == 3 and json.loads(c.provenance)["commit_message"].startswith("Fix caf\ufffd")
    assert r.apply_check(c.base_commit, c.patch + c.test_patch).returncode == 0


def test_candidates_round_trip_through_parquet(history, tmp_path):
    import pyarrow.parquet as pq

    from factory.schema import Candidate, from_table, to_table

    r, _ = history
    cands = mine_local(r.path, repo="pkg").candidates
    pq.write_table(to_table(cands, Candidate), tmp_path / "candidates.parquet")
    back = from_table(pq.read_table(tmp_path / "candidates.parquet"), Candidate)
    assert back == cands


def test_progress_is_reported_per_batch(history):
    r, _ = history
    seen = []
    res = mine_local(r.path, repo="pkg", batch=4, progress=seen.append)
    assert len(seen) >= 2 and seen[-1]["commits_scanned"] <= res.stats["commits_scanned"]


def test_user_git_config_does_not_change_what_is_mined(history, tmp_path, monkeypatch):
    r, _ = history
    plain = mine_local(r.path, repo="pkg")
    cfg = tmp_path / "gitconfig"
    cfg.write_text("[log]\n\tshowSignature = true\n\tdecorate = full\n[diff]\n\tnoprefix = true\n"
                   "\tmnemonicPrefix = true\n\trenames = false\n[color]\n\tui = always\n[core]\n\tquotepath = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(cfg))
    odd = mine_local(r.path, repo="pkg")
    assert [c.candidate_id for c in odd.candidates] == [c.candidate_id for c in plain.candidates]
    assert odd.stats == plain.stats


def _meta(subject: str, body: str = "", parents: int = 1):
    from miners.gitio import CommitMeta

    return CommitMeta(sha="c" * 40, parents=tuple(f"{i}" * 40 for i in range(parents)), committed_at=0,
                      author="a", message=subject + (f"\n\n{body}" if body else ""))


def test_recognise_merge_styles():
    from miners.local import recognise

    got = recognise(_meta("Merge pull request #12 from ada/fix", "Fix add\n\nLonger text", parents=2))
    assert (got.style, got.pr_number, got.title, got.body) == ("merge", 12, "Fix add", "Longer text")
    got = recognise(_meta("Merge #77", "77: Fix mul r=bob a=ada", parents=2))
    assert (got.style, got.pr_number, got.title) == ("merge", 77, "Fix mul")
    got = recognise(_meta("Fix parser (#5) (#9)"))
    assert (got.style, got.pr_number, got.title) == ("squash", 9, "Fix parser (#5)")
    assert recognise(_meta("Merge #1 #2", parents=2)) == "batched_merge"
    assert recognise(_meta('Revert "Fix add (#3)" (#4)')) == "revert"
    assert recognise(_meta("Merge pull request #8 from a/b", 'Revert "Fix"', parents=2)) == "revert"
    assert recognise(_meta("Merge branch 'main' into dev", parents=2)) == "non_pr_merge"
    assert recognise(_meta("plain")) == "not_pr"
    assert recognise(_meta("plain"), include_commits=True).style == "commit"
    assert recognise(_meta("root", parents=0)) == "root_commit"
    assert recognise(_meta("Merge pull request #1 from a/b", parents=3)) == "octopus_merge"


def test_odd_but_valid_paths_split_and_apply(tmp_path):
    r = GitRepo(tmp_path / "paths")
    r.commit("init", {"src/my module.py": "x = 1\n", 'src/quote"d.py': "q = 1\n", "tests/test a.py": "def t():\n    pass\n"})
    base = r.head()
    r.squash_pr(4, "Odd paths", {"src/my module.py": "x = 2\n", 'src/quote"d.py': "q = 2\n",
                                 "tests/test a.py": "def t():\n    assert 1\n", "src/naïve.py": "n = 1\n"})
    (c,) = mine_local(r.path, repo="paths").candidates
    assert c.base_commit == base
    assert "src/my module.py" in c.patch and "naïve.py" in c.patch and "quote" in c.patch
    assert "tests/test a.py" in c.test_patch and "test a.py" not in c.patch
    assert r.apply_check(base, c.patch).returncode == 0
    assert r.apply_check(base, c.test_patch).returncode == 0
