"""mine_mirror: fixes that still undo cleanly on HEAD become pr_mirror candidates on HEAD."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from miners_gitrepo import GitRepo

from miners import mine_local, mine_mirror

PAD = "".join(f"\n\ndef pad{i}():\n    return {i}\n" for i in range(4))
# a fix right at line 1 would be anchored to the file's start by git apply; real code has a header
CORE = '"""Core."""\n\nimport os\n\n\ndef add(a, b):\n    return a - b\n' + PAD + "\n\ndef mul(a, b):\n    return a + b\n"
CORE_ADD = CORE.replace("a - b", "a + b", 1)
CORE_BOTH = CORE_ADD.replace("def mul(a, b):\n    return a + b", "def mul(a, b):\n    return a * b")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = GitRepo(tmp_path_factory.mktemp("mirror") / "repo")
    r.commit("initial", {"pkg/core.py": CORE, "pkg/util.py": "def f():\n    return 1\n",
                         "tests/test_core.py": "def test_ok():\n    pass\n", "CHANGELOG.md": "start\n"})
    r.merge_pr(1, "Fix add", {"pkg/core.py": CORE_ADD,
                              "tests/test_add.py": "def test_add():\n    pass\n"})
    r.squash_pr(2, "Fix mul", {"pkg/core.py": CORE_BOTH,
                               "tests/test_mul.py": "def test_mul():\n    pass\n", "CHANGELOG.md": "start\nmul\n"})
    r.squash_pr(3, "Fix f", {"pkg/util.py": "def f():\n    return 2\n", "tests/test_f.py": "def test_f():\n    pass\n"})
    # later work: f rewritten (so #3 no longer undoes), core.py grows at the top, the changelog drifts
    core = (r.path / "pkg/core.py").read_text()
    r.commit("refactor", {"pkg/util.py": "def f():\n    return int('2')\n",
                          "pkg/core.py": "import math\n\nPI = math.pi\n\n\n" + core, "CHANGELOG.md": "new top\nstart\nmul\n"})
    return r


def test_reversible_fixes_are_mirrored_on_head(repo):
    res = mine_mirror(repo.path, repo="pkg")
    head = repo.head()
    assert res.stats["sources"] == 3
    assert res.stats["candidates"] == 2
    assert res.stats["skipped_not_reversible"] == 1
    assert {c.pr_number for c in res.candidates} == {1, 2}
    for c in res.candidates:
        assert c.origin == "pr_mirror" and c.base_commit == head and c.test_patch == ""
        assert repo.apply_check(head, c.patch).returncode == 0
        assert "CHANGELOG" not in c.patch  # only the code is undone
        prov = json.loads(c.provenance)
        assert prov["original_pr"] == c.pr_number and prov["original_base_commit"] != head
        assert prov["env_group"].startswith("deps-")
    by_pr = {c.pr_number: c for c in res.candidates}
    # the patch is re-diffed on HEAD: HEAD's line numbers (the 5 lines added on top), bug back in
    assert "@@ -9,7 +9,7 @@" in by_pr[1].patch  # the original PR had "@@ -4,7 +4,7 @@"
    assert "+    return a - b" in by_pr[1].patch and "-    return a + b" in by_pr[1].patch


def test_applying_the_mirror_brings_the_bug_back(repo, tmp_path):
    c = {c.pr_number: c for c in mine_mirror(repo.path, repo="pkg").candidates}[1]
    work = tmp_path / "w"
    subprocess.run(["git", "clone", "-q", str(repo.path), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "apply"], input=c.patch.encode(), check=True)
    assert "return a - b" in (work / "pkg/core.py").read_text()
    subprocess.run(["git", "-C", str(work), "apply", "--reverse"], input=c.patch.encode(), check=True)
    status = subprocess.run(["git", "-C", str(work), "status", "--porcelain"], capture_output=True, text=True,
                            env={**os.environ}).stdout
    assert status == ""


def test_given_candidates_keep_their_problem_statement(repo):
    src = mine_local(repo.path, repo="pkg").candidates
    assert all(c.problem_statement == "" for c in src)  # local history: no issue text, only commit messages
    issue = [type(c)(**{**c.__dict__, "problem_statement": f"Issue for #{c.pr_number}",
                        "provenance": json.dumps({**json.loads(c.provenance), "problem_statement_source": "issue"})})
             for c in src]
    res = mine_mirror(repo.path, repo="pkg", candidates=issue, max_candidates=1)
    assert len(res.candidates) == 1
    c = res.candidates[0]
    assert c.problem_statement == f"Issue for #{c.pr_number}"
    assert json.loads(c.provenance)["problem_statement_source"] == "issue"
    # A statement that is not an issue's text (an old run's commit message) is not carried over.
    old = [type(c)(**{**c.__dict__, "problem_statement": "Fix f: return 2"}) for c in src]
    (m,) = mine_mirror(repo.path, repo="pkg", candidates=old, max_candidates=1).candidates
    assert m.problem_statement == "" and json.loads(m.provenance)["problem_statement_source"] == "evidence"
    ids = {x.candidate_id for x in mine_mirror(repo.path, repo="pkg").candidates}
    assert c.candidate_id in ids  # same change on the same HEAD, same id
