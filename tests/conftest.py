"""Shared fixtures: real git repositories in temporary folders, and a real Docker engine.

Tests that need Docker take the ``docker_client`` fixture, which starts (or installs) the engine
through ``verifiers.engine.ensure_engine`` — the same code a user's ``make engine`` runs.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
}


def make_repo(root: Path, files: dict[str, str], message: str = "initial") -> str:
    """Write ``files`` into a new git repository at ``root``, commit, and return the commit id."""
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    env = {**os.environ, **GIT_ENV}
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(root), "commit", "-q", "-m", message], check=True, env=env)
    return subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture(scope="session")
def docker_client():
    from verifiers.engine import ensure_engine

    return ensure_engine(quiet=True)


@pytest.fixture(scope="session")
def base_image(docker_client):
    from verifiers.images import ensure_base_image

    return ensure_base_image(docker_client, "3.11", log=lambda _m: None)


class NewContainers:
    """The containers matching ``filters`` that appear after this is made: what a process under
    test started (a stopped run must leave none), and what its test removes at the end."""

    def __init__(self, client, filters: dict) -> None:
        self.client, self.filters = client, filters
        self.before = {c.id for c in client.containers.list(all=True, filters=filters)}

    def running(self) -> list:
        return [c for c in self.client.containers.list(filters=self.filters) if c.id not in self.before]

    def left(self) -> list:
        return [c for c in self.client.containers.list(all=True, filters=self.filters) if c.id not in self.before]

    def remove(self) -> None:
        for c in self.left():
            c.remove(force=True)


def bug_patch(repo: Path, path: str, new_text: str) -> str:
    """The diff that turns the committed ``path`` into ``new_text`` (the tree is left clean)."""
    p = repo / path
    old = p.read_text()
    p.write_text(new_text)
    diff = subprocess.run(["git", "-C", str(repo), "diff"], capture_output=True, text=True, check=True).stdout
    p.write_text(old)
    return diff


@pytest.fixture(scope="session")
def sample(docker_client, base_image, tmp_path_factory):
    """The sample project (tests/verifiers/sample_repo.py): checkout, env image, baseline, coverage."""
    from factory.repo import checkout
    from factory.schema import RepoSpec
    from tests.verifiers.sample_repo import SAMPLE_FILES
    from verifiers.baseline import run_baseline
    from verifiers.images import build_env_image

    root = tmp_path_factory.mktemp("validate-sample")
    make_repo(root, SAMPLE_FILES)
    co = checkout(RepoSpec(source=str(root)))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1)
    cov = {}
    for c in base.coverage:
        cov.setdefault((c.file, c.line), c.nodeids)
    return root, co, env, base, cov
