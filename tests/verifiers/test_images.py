"""Environment images: content-hash tags, cache hits, recorded install failures."""

from __future__ import annotations

import pytest

from factory.errors import InstallFailed
from factory.repo import checkout
from factory.schema import RepoSpec
from tests.conftest import make_repo
from verifiers.images import build_env_image, env_spec_for

pytestmark = pytest.mark.docker

FILES = {
    "setup.py": "from setuptools import setup\nsetup(name='tiny', version='1.0', py_modules=['tiny'],"
                " extras_require={'test': ['pytest']})\n",
    "tiny.py": "def one():\n    return 1\n",
    "test_tiny.py": "from tiny import one\n\ndef test_one():\n    assert one() == 1\n",
}


def test_second_build_is_a_cache_hit_and_a_changed_tree_is_not(docker_client, base_image, tmp_path):
    make_repo(tmp_path, FILES)
    co = checkout(RepoSpec(source=str(tmp_path)))
    first = build_env_image(docker_client, co, log=lambda _m: None)
    second = build_env_image(docker_client, co, log=lambda _m: None)
    assert not first.cached and second.cached
    assert first.tag == second.tag and first.image_id == second.image_id
    assert second.build_seconds < first.build_seconds
    assert any(line.startswith("pytest==") for line in first.pip_freeze)
    assert "python -m pip install -e '.[test]'" in first.spec.install

    make_repo(tmp_path, {"tiny.py": "def one():\n    return 1  # changed\n"}, message="change")
    changed = env_spec_for(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    assert changed.tag != first.tag


def test_overrides_win_over_detection(docker_client, base_image, tmp_path):
    make_repo(tmp_path, FILES)
    spec = RepoSpec(source=str(tmp_path), install=("echo custom-install",))
    es = env_spec_for(docker_client, checkout(spec), log=lambda _m: None)
    assert es.install == ("echo custom-install",)
    assert es.detected_from == ("repo spec",)


def test_a_repository_that_fails_to_install_says_why(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {**FILES, "setup.py": "raise SystemExit('this package refuses to build')\n"})
    co = checkout(RepoSpec(source=str(tmp_path)))
    with pytest.raises(InstallFailed) as ei:
        build_env_image(docker_client, co, log=lambda _m: None)
    assert "install failed" in str(ei.value)
    assert "refuses to build" in ei.value.log_tail


def test_the_image_holds_one_commit_and_no_remote(docker_client, base_image, tmp_path):
    make_repo(tmp_path, FILES)
    make_repo(tmp_path, {"tiny.py": "def one():\n    return 1\n\n\ndef two():\n    return 2\n"}, message="later")
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    out = docker_client.containers.run(
        env.tag, ["bash", "-c", "git log --all --oneline | wc -l; git remote | wc -l; git status --porcelain | wc -l"],
        remove=True, network_disabled=True).decode().split()
    assert out == ["1", "0", "0"]
