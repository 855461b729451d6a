"""Fixtures for the mutators' tests (helpers live in mut_helpers.py)."""

from __future__ import annotations

import pytest
from mut_helpers import make_repo


@pytest.fixture
def repo_factory(tmp_path):
    """Make real git repositories in tmp_path: factory(files) -> (path, commit)."""
    counter = iter(range(1000))

    def factory(files):
        return make_repo(tmp_path / f"repo{next(counter)}", files)

    return factory
