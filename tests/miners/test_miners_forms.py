"""Every form a pull request takes in real history, on real git repositories (issue #19).

GitHub merge commits titled with the PR's own title and ``(#N)``, rebase merges (several
first-parent commits of one PR), trailers naming the PR, direct fix commits (with ``--commits``,
and by default when a history has no PR at all), a PR number used twice for two different
changes, and the funnel a user reads.
"""

from __future__ import annotations

import json

import pytest
from miners_gitrepo import GitRepo

from miners import mine_local, mine_mirror
from miners.local import funnel, history_has_prs

CORE = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
FIXED = CORE.replace("a - b", "a + b")
TEST_ADD = "from pkg.core import add\n\n\ndef test_add():\n    assert add(1, 2) == 3\n"


def _base(r: GitRepo) -> str:
    return r.commit("init", {"pkg/__init__.py": "", "pkg/core.py": CORE,
                             "tests/test_core.py": "def test_ok():\n    pass\n"})


def _titled_merge(r: GitRepo, number: int, title: str, files: dict[str, str]) -> str:
    """GitHub's merge button with the "pull request title" message: ``Title (#N)``, two parents."""
    r.git("checkout", "-q", "-b", f"pr{number}")
    r.commit(f"wip {number}", files)
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", f"pr{number}", "-m", f"{title} (#{number})")
    return r.head()


def _prov(c) -> dict:
    return json.loads(c.provenance)


def test_merge_titled_with_the_pr_title_is_a_pr(tmp_path):
    r = GitRepo(tmp_path / "r")
    base = _base(r)
    sha = _titled_merge(r, 206, "Fix rollover from ZB to 1.0 YB",
                        {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    res = mine_local(r.path, repo="r")
    (c,) = res.candidates
    assert (c.pr_number, c.base_commit) == (206, base)
    p = _prov(c)
    assert (p["merge_commit"], p["style"], p["form"], p["title"]) == (sha, "merge", "merge_title",
                                                                       "Fix rollover from ZB to 1.0 YB")
    assert res.stats["prs_merge_title"] == 1 and "skipped_non_pr_merge" not in res.stats
    assert "a + b" in c.patch and "test_add" in c.test_patch


def test_merge_branch_with_a_number_is_still_no_pr(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    r.git("checkout", "-q", "-b", "side")
    r.commit("side", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    r.git("checkout", "-q", "main")
    r.git("merge", "-q", "--no-ff", "side", "-m", "Merge branch 'side' (#3)")
    res = mine_local(r.path, repo="r", include_commits=False)
    assert res.candidates == [] and res.stats["skipped_non_pr_merge"] == 1
    assert res.skipped[r.head()] == "non_pr_merge"


def test_rebase_merge_is_one_change_over_its_commits(tmp_path):
    r = GitRepo(tmp_path / "r")
    base = _base(r)
    # PR 7 rebased onto main: two commits, each carrying the number; the fix and its test split
    # over them, so neither commit alone is the PR.
    r.commit("Fix add (#7)", {"pkg/core.py": FIXED})
    top = r.commit("Test add (#7)", {"tests/test_add.py": TEST_ADD})
    res = mine_local(r.path, repo="r")
    (c,) = res.candidates
    assert c.pr_number == 7 and c.base_commit == base
    p = _prov(c)
    assert (p["merge_commit"], p["style"], p["first_parent_commits"]) == (top, "rebase", 2)
    assert "a + b" in c.patch and "test_add" in c.test_patch
    assert res.stats["prs"] == 1 and res.stats["prs_rebase"] == 1 and res.stats["commits_scanned"] == 3


def test_trailer_names_the_pr_of_a_rebased_commit(tmp_path):
    r = GitRepo(tmp_path / "r")
    base = _base(r)
    r.commit("Fix add\n\nPR-URL: https://github.com/acme/pkg/pull/31",
             {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    (c,) = mine_local(r.path, repo="r", include_commits=False).candidates
    assert (c.pr_number, c.base_commit, _prov(c)["form"]) == (31, base, "rebase")


def test_direct_fix_commits_by_default_when_history_has_no_prs(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    fix = r.commit("Fix #387: add subtracted", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    r.commit("docs", {"README.md": "hi\n"})
    assert not history_has_prs(r.path)
    res = mine_local(r.path, repo="r")  # default: no PRs anywhere, so direct commits
    (c,) = res.candidates
    assert c.pr_number is None and _prov(c)["merge_commit"] == fix and _prov(c)["style"] == "commit"
    assert _prov(c)["linked_issues"] == [387]
    assert res.stats["commits_mode"] == "auto" and res.stats["commits_considered"] == 2
    assert "direct commits mined" in funnel(res.stats)
    assert mine_local(r.path, repo="r", include_commits=False).candidates == []
    # Once the history holds a PR, the default is PRs only; --commits still adds the direct ones.
    r.squash_pr(9, "Fix mul", {"pkg/core.py": FIXED.replace("a * b", "b * a"),
                               "tests/test_mul.py": "def test_mul():\n    pass\n"})
    assert history_has_prs(r.path)
    assert [c.pr_number for c in mine_local(r.path, repo="r").candidates] == [9]
    assert [c.pr_number for c in mine_local(r.path, repo="r", include_commits=True).candidates] == [9, None]


def test_mirror_honours_commits(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    r.squash_pr(2, "Tidy", {"pkg/util.py": "X = 1\n", "tests/test_u.py": "def test_u():\n    pass\n"})
    r.commit("Fix add", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    only_prs = mine_mirror(r.path, repo="r", include_commits=False)
    with_commits = mine_mirror(r.path, repo="r", include_commits=True)
    assert only_prs.stats["source_candidates"] == 1 and with_commits.stats["source_candidates"] == 2
    assert len(with_commits.candidates) == len(only_prs.candidates) + 1
    assert "a - b" in with_commits.candidates[0].patch.split("\n+", 1)[1]  # re-introduces the bug
    line = funnel(with_commits.stats)
    assert line.startswith("scanned 3 commits → PRs 1 (squash 1) + direct commits 1 → with tests and code 2 → "
                           "source candidates 2 → mirrored 2 → candidates 2")


def test_same_number_for_two_changes_gives_two_candidates(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    r.merge_pr(37, "Add mul guard", {"pkg/core.py": CORE.replace("a * b", "(a or 0) * b"),
                                     "tests/test_mul.py": "def test_mul():\n    pass\n"})
    r.merge_pr(37, "Fix add", {"pkg/core.py": FIXED.replace("a * b", "(a or 0) * b"),
                               "tests/test_add.py": TEST_ADD}, branch="other-37")
    res = mine_local(r.path, repo="r")
    assert sorted(c.pr_number for c in res.candidates) == [37, 37]
    assert res.stats["pr_number_reused"] == 1 and "skipped_duplicate_pr" not in res.stats


def test_the_same_change_merged_twice_is_one_candidate(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    first = r.squash_pr(12, "Fix add", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    r.commit("Revert it by hand", {"pkg/core.py": CORE, "tests/test_add.py": None})
    again = r.squash_pr(12, "Fix add", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    res = mine_local(r.path, repo="r", include_commits=False)
    (c,) = res.candidates
    assert _prov(c)["merge_commit"] == again  # the newest is kept
    assert res.stats["skipped_duplicate_pr"] == 1 and res.skipped[first] == "duplicate_pr"


def test_funnel_counts_every_step_and_names_skips(tmp_path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    _titled_merge(r, 1, "Fix add", {"pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    r.merge_pr(2, "Docs", {"docs/x.md": "x\n"})
    r.squash_pr(3, "No tests", {"pkg/core.py": FIXED + "\nY = 1\n"})
    r.commit("plain", {"pkg/core.py": FIXED + "\nY = 2\n"})
    res = mine_local(r.path, repo="r")
    s = res.stats
    assert (s["commits_scanned"], s["prs"], s["prs_merge_title"], s["prs_merge_pr"], s["prs_squash"]) == (5, 3, 1, 1, 1)
    assert (s["with_tests_and_code"], s["candidates"], s["not_pr"]) == (1, 1, 1)
    line = funnel(s)
    assert line.startswith("scanned 5 commits → PRs 3 (merge_pr 1, merge_title 1, squash 1) → "
                           "with tests and code 1 → candidates 1")
    assert "docs_only 1" in line and "no_tests 1" in line
    assert sorted(res.skipped.values()) == ["docs_only", "no_tests", "root_commit"]


@pytest.mark.parametrize("path", ["releasenotes/notes/fix-x-1234.yaml", "changelog.d/12.bugfix", "docs/x.py"])
def test_release_notes_are_docs_not_code(tmp_path, path):
    r = GitRepo(tmp_path / "r")
    _base(r)
    r.squash_pr(4, "Test and note", {"tests/test_add.py": "def test_x():\n    pass\n", path: "- fixed\n"})
    res = mine_local(r.path, repo="r")
    assert res.candidates == [] and res.stats["skipped_tests_only"] == 1


def test_message_catalogs_do_not_count_against_code_limits(tmp_path):
    from miners import Limits

    r = GitRepo(tmp_path / "r")
    _base(r)
    files = {f"pkg/locale/l{i}/LC_MESSAGES/pkg.po": f'msgid "a"\nmsgstr "{i}"\n' for i in range(12)}
    r.squash_pr(5, "Fix add and its messages", {**files, "pkg/core.py": FIXED, "tests/test_add.py": TEST_ADD})
    (c,) = mine_local(r.path, repo="r", limits=Limits(max_code_files=10)).candidates
    assert c.patch.count("diff --git") == 13


def test_commits_are_honoured_with_the_github_api_too(tmp_path, monkeypatch):
    """``factory mine --github --commits``: PRs from the API, direct fix commits from the local
    history, and a rebase-merged PR's own commits are not counted again as direct ones."""
    from github_standin import GitHubStandin
    from test_miners_github import _populate

    from factory.schema import RepoSpec
    from factory.store import RunStore
    from factory.task_stages import stage_mine

    r = GitRepo(tmp_path / "calc")
    core = '"""Calc."""\n\n\ndef add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n'
    r.commit("initial", {"calc.py": core, "tests/test_calc.py": "def test_ok():\n    pass\n",
                         "util.py": "A = 1\n\n\ndef g():\n    return A\n"})
    shas = {1: r.merge_pr(1, "Fix add", {"calc.py": core.replace("a - b", "a + b"),
                                         "tests/test_add.py": "def test_add():\n    pass\n"})}
    shas[2] = shas[5] = shas[7] = shas[9] = shas[1]  # the stand-in's other PRs point at PR 1 (same change)
    shas["base6"] = r.head()
    r.commit("Part 1: constant", {"util.py": "A = 3\n\n\ndef g():\n    return A\n"})
    shas[6] = r.commit("Part 2: test it", {"tests/test_g.py": "def test_g3():\n    pass\n",
                                            "util.py": "A = 3\n\n\ndef g():\n    return A + 0\n"})
    direct = r.commit("Fix #387: mul adds", {"calc.py": core.replace("a - b", "a + b").replace("a + b\n", "a * b\n", 2)
                                              .replace("return a * b\n\n\ndef mul", "return a + b\n\n\ndef mul"),
                                              "tests/test_mul.py": "def test_mul():\n    pass\n"})
    monkeypatch.setenv("GITHUB_TOKEN", "test-token")
    store = RunStore(tmp_path / "run")
    spec = RepoSpec.parse({"source": str(r.path)})
    with GitHubStandin() as gh:
        _populate(gh, shas)
        out = stage_mine(spec, store, github="acme/calc", github_url=gh.base_url, include_commits=True)
    assert out.ok, out.reason
    from factory.schema import Candidate
    from factory.store import read_records

    cands = read_records(store.repo(spec.key).candidates, Candidate)
    prs = sorted(c.pr_number for c in cands if c.pr_number is not None)
    commits = [json.loads(c.provenance)["merge_commit"] for c in cands if c.pr_number is None]
    assert 6 in prs and commits == [direct]  # "Part 2: test it" belongs to PR 6, not a direct commit
    assert out.detail["commit_candidates"] == 1 and out.detail["commits_considered"] >= 3
