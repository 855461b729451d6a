"""Install groups: candidates whose base commits share dependency files share one environment."""

from __future__ import annotations

import json

from miners_gitrepo import GitRepo

from miners import EnvGrouper, env_group_key, group_candidates, mine_local


def _pr(r: GitRepo, n: int, extra: dict | None = None) -> str:
    return r.squash_pr(n, f"Fix {n}", {"pkg/core.py": f"X = {n}\n", "tests/test_core.py": f"def test_{n}():\n    pass\n",
                                       **(extra or {})})


def test_dependency_changes_split_groups(tmp_path):
    r = GitRepo(tmp_path / "r")
    r.commit("init", {"pkg/core.py": "X = 0\n", "pyproject.toml": "[project]\nname='p'\n",
                      "requirements-dev.txt": "pytest\n", "requirements/docs.txt": "sphinx\n"})
    _pr(r, 1)
    _pr(r, 2)
    _pr(r, 3, {"pyproject.toml": "[project]\nname='p'\ndependencies=['attrs']\n"})  # base: old deps
    _pr(r, 4)  # base: new deps
    r.commit("docs tweak", {"README.md": "hi\n"})  # not a dependency file: no new group
    _pr(r, 5)
    res = mine_local(r.path, repo="p")
    groups = group_candidates(res.candidates)
    assert len(groups) == 2
    sizes = sorted(len(g.candidates) for g in groups.values())
    assert sizes == [2, 3]
    new = next(g for g in groups.values() if len(g.candidates) == 2)
    assert {c.pr_number for c in new.candidates} == {4, 5}
    # the image is built at the newest base of the group
    assert new.setup_commit == next(c for c in res.candidates if c.pr_number == 5).base_commit
    prov = json.loads(res.candidates[0].provenance)
    assert prov["env_files"] == ["pyproject.toml", "requirements-dev.txt", "requirements/docs.txt"]


def test_key_is_content_not_commit(tmp_path):
    r = GitRepo(tmp_path / "r")
    a = r.commit("a", {"setup.py": "setup()\n", "x.py": "1\n"})
    b = r.commit("b", {"x.py": "2\n"})
    c = r.commit("c", {"setup.py": "setup(name='x')\n"})
    d = r.commit("d", {"setup.py": "setup()\n"})  # back to a's content
    g = EnvGrouper(r.path)
    assert g.key(a) == g.key(b) == g.key(d) != g.key(c)
    assert env_group_key(r.path, a) == g.key(a)


def test_tag_buckets(tmp_path):
    r = GitRepo(tmp_path / "r")
    a = r.commit("a", {"x.py": "1\n"})
    r.git("tag", "v1.4.2")
    b = r.commit("b", {"x.py": "2\n"})
    r.git("tag", "v1.5.0")
    c = r.commit("c", {"x.py": "3\n"})
    g = EnvGrouper(r.path, mode="tag")
    assert g.key(a) == "tag-v1.4" and g.key(b) == g.key(c) == "tag-v1.5"
    r2 = GitRepo(tmp_path / "r2")
    assert EnvGrouper(r2.path, mode="tag").key(r2.commit("x", {"a": "1\n"})) == "tag-none"


def test_ungrouped_candidates_get_their_own_group():
    from factory.schema import Candidate

    c = Candidate(candidate_id="x", repo="r", base_commit="b", origin="pr", patch="", provenance="{}")
    assert list(group_candidates([c])) == ["ungrouped"]


def test_non_utf8_names_in_the_root_tree_do_not_break_keys(tmp_path):
    r = GitRepo(tmp_path / "r")
    (r.path / b"caf\xe9.txt".decode("utf-8", "surrogateescape")).write_bytes(b"x\n")
    r.write({"setup.cfg": "[metadata]\n"})
    r.git("add", "-A")
    sha = r.commit("odd")
    key = EnvGrouper(r.path).key(sha)
    assert key.startswith("deps-")
