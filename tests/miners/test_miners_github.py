"""mine_github through PyGithub against a local stand-in of the GitHub API."""

from __future__ import annotations

import json

import pytest
from github_standin import GitHubStandin, comment_json, commit_json, issue_json, pull_json
from miners_gitrepo import GitRepo

from miners import GitHubError, mine_github
from miners.issues import linked_issue_numbers

SLUG = "acme/calc"
CORE = '"""Calc."""\n\n\ndef add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a + b\n'


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    r = GitRepo(tmp_path_factory.mktemp("gh") / "calc")
    r.commit("initial", {"calc.py": CORE, "tests/test_calc.py": "def test_ok():\n    pass\n",
                         "util.py": "A = 1\n\n\ndef g():\n    return A\n"})
    shas = {}
    shas[1] = r.merge_pr(1, "Fix add", {"calc.py": CORE.replace("a - b", "a + b"),
                                        "tests/test_add.py": "def test_add():\n    pass\n"})
    shas[2] = r.squash_pr(2, "Fix mul", {"calc.py": CORE.replace("a - b", "a + b").replace("return a + b\n", "return a * b\n")
                                         .replace("def add(a, b):\n    return a * b", "def add(a, b):\n    return a + b"),
                                         "tests/test_mul.py": "def test_mul():\n    pass\n"})
    shas[5] = r.squash_pr(5, "Tidy", {"util.py": "A = 2\n\n\ndef g():\n    return A\n",
                                      "tests/test_util.py": "def test_g():\n    pass\n"})
    shas["base6"] = r.head()
    r.commit("Part 1: constant", {"util.py": "A = 3\n\n\ndef g():\n    return A\n"})
    shas[6] = r.commit("Part 2: test it", {"tests/test_g.py": "def test_g3():\n    pass\n",
                                            "util.py": "A = 3\n\n\ndef g():\n    return A + 0\n"})
    shas[7] = r.squash_pr(7, "Follow-up", {"util.py": "A = 4\n\n\ndef g():\n    return A + 0\n",
                                           "tests/test_g.py": "def test_g4():\n    pass\n"})
    shas[9] = r.squash_pr(9, "Document add", {"docs/add.rst": "add\n===\n"})
    return r, shas


def _populate(gh: GitHubStandin, shas: dict) -> None:
    repo = gh.add_repo("acme", "calc")
    base = gh.base_url
    p = lambda n, title, body, merged, sha: pull_json(base, "acme", "calc", n, title=title, body=body,  # noqa: E731
                                                      merged_at=merged, merge_commit_sha=sha)
    repo.pulls = [
        p(1, "Fix add", "This fixes #10. Also fixes #99 (a typo: no such issue).", "2023-11-15T00:00:00Z", shas[1]),
        p(2, "Fix mul", "Improve mul", "2023-11-16T00:00:00Z", shas[2]),
        p(3, "Abandoned", "fixes #10", None, None),
        p(4, "Lost to a force-push", "fixes #10", "2023-11-17T00:00:00Z", "d" * 40),
        p(5, "Tidy", "no issue here", "2023-11-18T00:00:00Z", shas[5]),
        p(6, "Two parts", "Closes acme/calc#12", "2023-11-19T00:00:00Z", shas[6]),
        p(7, "Follow-up", "fixes #3", "2023-11-20T00:00:00Z", shas[7]),  # #3 is a PR, not an issue
        p(9, "Document add", "fixes #10", "2023-11-21T00:00:00Z", shas[9]),  # docs only: skipped by its diff
    ]
    c = lambda sha, msg, date: commit_json(base, "acme", "calc", sha, message=msg, date=date)  # noqa: E731
    repo.commits = {1: [c("a" * 40, "Fix add", "2023-11-10T00:00:00Z")],
                    2: [c("b" * 40, "Fix mul", "2023-11-12T00:00:00Z")],
                    5: [c("e" * 40, "Tidy", "2023-11-12T00:00:00Z")],
                    6: [c("1" * 40, "Part 1: constant", "2023-11-13T00:00:00Z"),
                        c("2" * 40, "Part 2: test it", "2023-11-14T00:00:00Z")],
                    7: [c("3" * 40, "Follow-up", "2023-11-14T00:00:00Z")]}
    repo.issues = {
        10: issue_json(base, "acme", "calc", 10, title="add() subtracts", body="1 + 2 gives -1."),
        11: issue_json(base, "acme", "calc", 11, title="mul() adds", body="2 * 3 gives 5."),
        12: issue_json(base, "acme", "calc", 12, title="A should be 3", body="See spec."),
        3: issue_json(base, "acme", "calc", 3, title="Abandoned", body="", is_pull=True),
    }
    # three comments before PR #1's first commit (two pages of two: Link paging), one after
    repo.comments = {10: [comment_json(base, "acme", "calc", 10, 1, body="Maybe the operator?",
                                       created_at="2023-11-01T00:00:00Z"),
                          comment_json(base, "acme", "calc", 10, 2, body="Yes, `-` should be `+`.",
                                       created_at="2023-11-02T00:00:00Z"),
                          comment_json(base, "acme", "calc", 10, 3, body="I'll send a PR.",
                                       created_at="2023-11-03T00:00:00Z"),
                          comment_json(base, "acme", "calc", 10, 4, body="Fixed in #1, thanks!",
                                       created_at="2023-11-20T00:00:00Z")]}
    repo.closing = {2: [11]}  # linked in the UI only: GraphQL closingIssuesReferences


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, s: float) -> None:
        self.calls.append(s)


@pytest.fixture
def standin(clone):
    with GitHubStandin() as gh:
        _populate(gh, clone[1])
        yield gh


def _mine(clone, gh, tmp_path, **kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("token", "test-token")
    return mine_github(clone[0].path, SLUG, repo="calc", cache_dir=tmp_path / "cache", base_url=gh.base_url,
                       per_page=2, clock=lambda: 1_000.0, **kw)


def test_merged_prs_with_linked_issues_become_candidates(clone, standin, tmp_path):
    r, shas = clone
    res = _mine(clone, standin, tmp_path)
    by_pr = {c.pr_number: c for c in res.candidates}
    assert sorted(by_pr) == [1, 2, 6]
    c1 = by_pr[1]
    assert c1.problem_statement == "add() subtracts\n1 + 2 gives -1."
    # all three earlier comments (two pages), and not the one after the PR's first commit
    assert c1.hints_text == "Maybe the operator?\n\nYes, `-` should be `+`.\n\nI'll send a PR."
    assert len(standin.requests("/api/v3/repos/acme/calc/issues/10/comments")) == 2
    assert c1.base_commit == r.head(f"{shas[1]}^1") and c1.created_at == "2023-11-15T00:00:00Z"
    assert json.loads(c1.provenance)["linked_issues"] == [10]
    assert json.loads(c1.provenance)["links"]["pull"] == "https://github.com/acme/calc/pull/1"
    assert by_pr[2].problem_statement == "mul() adds\n2 * 3 gives 5."  # from closingIssuesReferences
    c6 = by_pr[6]  # rebase-merged: base is two commits back, and both commits are in the patch
    assert c6.base_commit == shas["base6"] and json.loads(c6.provenance)["style"] == "rebase"
    assert "A = 3" in c6.patch and "return A + 0" in c6.patch and "tests/test_g.py" in c6.test_patch
    for c in res.candidates:
        assert r.apply_check(c.base_commit, c.patch + c.test_patch).returncode == 0
    s = res.stats
    assert s["pulls_listed"] == 8 and s["prs"] == 7
    assert s["skipped_docs_only"] == 1
    # a PR its diff rules out costs no request: nothing was asked about #9
    assert not [p for p in standin.requests() if "/pulls/9" in p]
    assert len(standin.requests("/api/graphql")) == 5  # 1, 2, 5, 6 and 7: the PRs whose diff was kept
    assert s["skipped_not_merged"] == 1
    assert s["skipped_merge_commit_missing"] == 1
    assert s["skipped_no_linked_issue"] == 2
    assert s["linked_issue_missing"] == 1  # "#99" answered 404: counted, the PR still counts via #10
    # paging: four pages of two, each asked for once, found through Link/page parameters
    pages = standin.requests("/api/v3/repos/acme/calc/pulls")
    assert len([p for p in pages if "/commits" not in p]) == 4


def test_standin_link_headers_drive_plain_pygithub_paging(standin):
    import github

    g = github.Github(base_url=standin.base_url, per_page=3, retry=None, seconds_between_requests=None, lazy=True)
    numbers = [p.number for p in g.get_repo(SLUG).get_pulls(state="closed", direction="asc")]
    assert numbers == [1, 2, 3, 4, 5, 6, 7, 9]


@pytest.mark.parametrize("status", [403, 429])
def test_rate_limit_is_waited_out_not_fatal(clone, standin, tmp_path, status):
    sleeps = Sleeps()
    standin.rate_limit_next(2, status=status, reset_at=1_100)
    res = _mine(clone, standin, tmp_path, sleep=sleeps)
    assert sleeps.calls == [101.0, 101.0]  # until X-RateLimit-Reset (+1 s), with our clock at 1000
    assert res.stats["rate_limit_waits"] == 2
    assert sorted(c.pr_number for c in res.candidates) == [1, 2, 6]


def test_a_spent_quota_is_waited_for_before_asking(clone, standin, tmp_path):
    sleeps = []

    def sleep(s: float) -> None:  # time passes: a new window opens, resetting 100 s later each time
        sleeps.append(s)
        standin.set_quota(5, reset_at=standin.reset_at + 100)

    standin.set_quota(5, reset_at=1_200)
    res = _mine(clone, standin, tmp_path, sleep=sleep)
    assert standin.refused == 0  # never refused: we waited when the headers said 0 were left
    assert sleeps[:2] == [201.0, 301.0]  # until each window's X-RateLimit-Reset (+1 s), clock at 1000
    assert res.stats["rate_limit_waits"] == len(sleeps) >= 4  # 21 requests, 5 a window
    assert sorted(c.pr_number for c in res.candidates) == [1, 2, 6]


def test_secondary_limit_waits_retry_after_and_server_errors_are_retried(clone, standin, tmp_path):
    sleeps = Sleeps()
    standin.secondary_limit_next(1, retry_after=37)
    standin.fail_next(1, status=502)
    pages = []
    res = _mine(clone, standin, tmp_path, sleep=sleeps, progress=pages.append)
    assert sleeps.calls == [37.0, 2.0]  # Retry-After, then a short backoff for the 502
    assert sorted(c.pr_number for c in res.candidates) == [1, 2, 6]
    assert [p["pages"] for p in pages] == [1, 2, 3, 4]


def test_rerun_costs_no_requests(clone, standin, tmp_path):
    first = _mine(clone, standin, tmp_path)
    n = len(standin.log)
    second = _mine(clone, standin, tmp_path)
    assert len(standin.log) == n
    assert [c.candidate_id for c in second.candidates] == [c.candidate_id for c in first.candidates]
    assert [c.problem_statement for c in second.candidates] == [c.problem_statement for c in first.candidates]


def test_interrupted_run_resumes_without_repeating_requests(clone, standin, tmp_path):
    part = _mine(clone, standin, tmp_path, max_candidates=1)
    assert len(part.candidates) == 1
    rest = _mine(clone, standin, tmp_path)
    assert sorted(c.pr_number for c in rest.candidates) == [1, 2, 6]
    paths = standin.requests("/api/v3")  # (GraphQL shares one path; its count is checked below)
    assert len(paths) == len(set(paths))  # nothing asked twice
    assert len(standin.requests("/api/graphql")) == 5  # once per merged PR found locally


def test_a_lost_list_page_is_asked_for_by_number(clone, standin, tmp_path):
    first = _mine(clone, standin, tmp_path)
    (tmp_path / "cache" / "acme__calc" / "pulls" / "page-00001.json").unlink()
    n = len(standin.log)
    again = _mine(clone, standin, tmp_path)
    assert [c.candidate_id for c in again.candidates] == [c.candidate_id for c in first.candidates]
    lists = [p for p in standin.requests()[n:] if p.startswith("/api/v3/repos/acme/calc/pulls?")]
    assert len(lists) == 3 and "page=2" in lists[0]  # pages 2, 3 and 4 again; none of the PR details
    assert len(standin.requests()[n:]) == 3


def test_refresh_picks_up_new_prs_and_reuses_pr_cache(clone, standin, tmp_path):
    _mine(clone, standin, tmp_path)
    standin.repos[SLUG].pulls.append(pull_json(standin.base_url, "acme", "calc", 8, title="New", body="fixes #10",
                                               merged_at="2023-12-01T00:00:00Z", merge_commit_sha="f" * 40))
    n = len(standin.log)
    res = _mine(clone, standin, tmp_path, refresh=True)
    new = standin.requests()[n:]
    assert all("/pulls/1/" not in p for p in new)  # per-PR data came from the cache
    assert res.stats["skipped_merge_commit_missing"] == 2


def test_token_from_environment_is_sent(clone, standin, tmp_path, monkeypatch):
    monkeypatch.setenv("GITHUB_TOKEN", "s3cret")
    _mine(clone, standin, tmp_path, max_pages=1, token=None)
    assert standin.auth and all(a and a.endswith("s3cret") for a in standin.auth)


def test_without_a_token_graphql_is_not_asked(clone, standin, tmp_path, monkeypatch):
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    res = _mine(clone, standin, tmp_path, token=None)
    assert standin.requests("/api/graphql") == []
    assert sorted(c.pr_number for c in res.candidates) == [1, 6]  # #2 was linked only in the UI
    again = _mine(clone, standin, tmp_path)  # with a token, the cached PRs get their UI links
    assert sorted(c.pr_number for c in again.candidates) == [1, 2, 6]


def test_unknown_repository_raises_github_error(clone, standin, tmp_path):
    with pytest.raises(GitHubError):
        mine_github(clone[0].path, "acme/missing", repo="x", cache_dir=tmp_path, base_url=standin.base_url,
                    sleep=Sleeps())


def test_not_a_repository_or_bad_slug_raise_miner_error(standin, tmp_path):
    from miners import MinerError

    with pytest.raises(MinerError, match="not a git repository"):
        mine_github(tmp_path, SLUG, repo="x", cache_dir=tmp_path / "c", base_url=standin.base_url)
    with pytest.raises(MinerError, match="OWNER/NAME"):
        mine_github(tmp_path, "not a slug", repo="x", cache_dir=tmp_path / "c", base_url=standin.base_url)


def test_since_and_require_issue(clone, standin, tmp_path):
    res = _mine(clone, standin, tmp_path, since="2023-11-18", require_issue=False)
    assert sorted(c.pr_number for c in res.candidates) == [5, 6, 7]
    c5 = {c.pr_number: c for c in res.candidates}[5]
    # No linked issue: the PR's own title names the fix, so it is provenance, not the task's text;
    # validation writes the statement from the failing tests.
    assert c5.problem_statement == ""
    prov = json.loads(c5.provenance)
    assert prov["problem_statement_source"] == "evidence"
    assert prov["commit_message"].startswith("Tidy")
    assert res.stats["skipped_before_since"] == 4 - 1  # 1, 2, 4 merged earlier; 3 was never merged


def test_linked_issue_numbers():
    text = "Fixes #1, closes acme/calc#2 and resolves https://github.com/acme/calc/issues/3; fixes other/x#4; #5"
    assert linked_issue_numbers(text, SLUG) == [1, 2, 3]
    assert linked_issue_numbers("FIXED: #7 and fix #7", SLUG) == [7]
    assert linked_issue_numbers("Fixes #1, closes acme/calc#2, prefixes #3") == [1]  # no slug: only "#N"
