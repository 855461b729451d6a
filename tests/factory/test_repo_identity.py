"""``repo`` as owner/name and the card's license, from what the repositories themselves say."""

from __future__ import annotations

import subprocess

import yaml

from factory.curate import CurateConfig
from factory.publish import PublishConfig, card_license, publish_run, repo_identities
from factory.repo import RepoIdentity, checkout, forge_name, repo_identity
from factory.schema import RepoSpec
from factory.store import RunStore
from tests.conftest import make_repo


def test_forge_names_from_remotes_and_project_urls():
    assert forge_name("git@github.com:tkem/cachetools.git") == "tkem/cachetools"
    assert forge_name("https://github.com/tkem/cachetools/") == "tkem/cachetools"
    assert forge_name("https://gitlab.com/group/proj.git") == "group/proj"
    assert forge_name("https://cachetools.readthedocs.io/") is None


def test_local_repo_with_a_github_remote_and_a_pyproject_license(tmp_path):
    make_repo(tmp_path / "lib", {"pyproject.toml": '[project]\nname = "lib"\nlicense = "MIT"\n', "lib.py": "x = 1\n"})
    subprocess.run(["git", "-C", str(tmp_path / "lib"), "remote", "add", "origin", "git@github.com:acme/lib.git"],
                   check=True)
    assert repo_identity(checkout(RepoSpec(source=str(tmp_path / "lib")))) == RepoIdentity("acme/lib", "mit")


def test_sdist_metadata_names_owner_and_license(tmp_path):
    pkg = ("Metadata-Version: 2.1\nName: widget\nVersion: 1.0\nHome-page: https://widget.example.org\n"
           "Project-URL: Source, https://github.com/widgets/widget\n"
           "Classifier: License :: OSI Approved :: Apache Software License\n\nbody\n")
    make_repo(tmp_path / "w", {"PKG-INFO": pkg, "widget.py": "x = 1\n"})
    assert repo_identity(checkout(RepoSpec(source=str(tmp_path / "w")))) == RepoIdentity("widgets/widget", "apache-2.0")


def test_no_metadata_falls_back_to_the_name_and_no_license(tmp_path):
    make_repo(tmp_path / "plain", {"a.py": "x = 1\n"})
    assert repo_identity(checkout(RepoSpec(source=str(tmp_path / "plain")))) == RepoIdentity("plain", "")


def test_card_license_rules():
    mit, apache, none = RepoIdentity("a/a", "mit"), RepoIdentity("b/b", "apache-2.0"), RepoIdentity("c", "")
    assert card_license({"a": mit}) == "mit"
    assert card_license({"a": mit, "b": apache}) == "other"
    assert card_license({"c": none}) == "unknown"
    assert card_license({"a": mit, "c": none}) == "other"
    assert card_license({"a": mit}, configured="cc-by-4.0") == "cc-by-4.0"


def test_published_rows_and_card_use_the_repositorys_own_names(tmp_path):
    """A run whose repository is a local clone of acme/lib (MIT): rows say acme/lib, the card mit."""
    from tests.factory import test_publish_fixtures as fx

    make_repo(tmp_path / "lib", {"pyproject.toml": '[project]\nname = "lib"\nlicense = {text = "MIT"}\n'})
    subprocess.run(["git", "-C", str(tmp_path / "lib"), "remote", "add", "origin", "https://github.com/acme/lib"],
                   check=True)
    spec = RepoSpec(source=str(tmp_path / "lib"))
    instances = [fx.make_instance(i, repo=spec.key) for i in range(3)]
    run = fx.make_run(tmp_path / "run", instances)
    RunStore(run).repo(spec.key).write_spec(spec)
    assert repo_identities(run)[spec.key] == RepoIdentity("acme/lib", "mit")
    publish_run(run, tmp_path / "ds", PublishConfig(curate=CurateConfig(min_f2p=0, dedupe=False, test_fraction=0.0)))
    import polars as pl

    assert set(pl.read_parquet(tmp_path / "ds" / "data" / "*.parquet")["repo"]) == {"acme/lib"}
    meta = yaml.safe_load((tmp_path / "ds" / "README.md").read_text().split("---\n")[1])
    assert meta["license"] == "mit"
