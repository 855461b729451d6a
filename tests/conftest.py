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
