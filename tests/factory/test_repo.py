"""Checkouts from a local path, a git URL and a PyPI sdist; bad sources fail with one reason."""

from __future__ import annotations

import pytest

from factory.errors import NotARepository, SdistError
from factory.repo import checkout, is_test_file
from factory.schema import RepoSpec
from tests.conftest import make_repo
from tests.factory.pypi_standin import make_sdist, package_index


def test_a_local_repository_at_head_and_at_a_named_commit(tmp_path):
    first = make_repo(tmp_path, {"a.py": "x = 1\n"})
    second = make_repo(tmp_path, {"a.py": "x = 2\n"}, message="two")
    assert checkout(RepoSpec(str(tmp_path))).commit == second
    co = checkout(RepoSpec(str(tmp_path), commit=first))
    assert co.commit == first
    assert co.tracked_files() == ["a.py"]


def test_a_path_that_is_not_a_repository(tmp_path):
    with pytest.raises(NotARepository, match="not a git repository"):
        checkout(RepoSpec(str(tmp_path)))
    with pytest.raises(NotARepository, match="no such directory"):
        checkout(RepoSpec(str(tmp_path / "missing")))
    make_repo(tmp_path / "r", {"a.py": ""})
    with pytest.raises(NotARepository, match="cannot resolve commit"):
        checkout(RepoSpec(str(tmp_path / "r"), commit="deadbeef"))


def test_a_git_url_is_cloned_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path / "cache"))
    sha = make_repo(tmp_path / "upstream", {"m.py": "y = 1\n"})
    co = checkout(RepoSpec(f"file://{tmp_path / 'upstream'}"))
    assert co.commit == sha
    assert str(co.path).startswith(str(tmp_path / "cache"))


def test_an_sdist_becomes_a_repository_with_the_same_commit_everywhere(tmp_path, monkeypatch):
    sdist = make_sdist("demo", "1.0", {"demo/__init__.py": "X = 1\n", "tests/test_demo.py": "def test(): pass\n"})
    with package_index({("demo", "1.0"): sdist}) as url:
        monkeypatch.setenv("TASKFACTORY_PYPI_JSON", url)
        monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path / "c1"))
        one = checkout(RepoSpec("pypi:demo==1.0"))
        monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path / "c2"))
        two = checkout(RepoSpec("pypi:demo==1.0"))
    assert one.commit == two.commit  # fixed author and date: same tree, same commit, same image tag
    assert sorted(one.tracked_files()) == ["demo/__init__.py", "tests/test_demo.py"]


def test_sdist_failures_name_their_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path))
    no_tests = make_sdist("notests", "1.0", {"notests/__init__.py": "X = 1\n"})
    with package_index({("notests", "1.0"): no_tests, ("wheelonly", "2.0"): None}) as url:
        monkeypatch.setenv("TASKFACTORY_PYPI_JSON", url)
        with pytest.raises(SdistError, match="ships no tests") as ei:
            checkout(RepoSpec("pypi:notests==1.0"))
        assert ei.value.reason == "sdist_without_tests"
        with pytest.raises(SdistError, match="no sdist"):
            checkout(RepoSpec("pypi:wheelonly==2.0"))
        with pytest.raises(SdistError, match="no such release"):
            checkout(RepoSpec("pypi:notests==9.9"))
        with pytest.raises(SdistError, match="no such project"):
            checkout(RepoSpec("pypi:nothing==1.0"))
    assert not list((tmp_path / "sdists").glob("notests*"))  # nothing half-made is left behind


@pytest.mark.parametrize("path,expected", [
    ("tests/test_x.py", True), ("pkg/tests/helpers.py", True), ("test_x.py", True), ("pkg/x_test.py", True),
    ("conftest.py", True), ("pkg/conftest.py", True), ("pkg/testing.py", False), ("pkg/x.py", False),
    ("src/latest.py", False), ("tests.py", True), ("test.py", True), ("src/contest.py", False),
])
def test_test_files_are_told_apart(path, expected):
    assert is_test_file(path) is expected
