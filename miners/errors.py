"""The miners' exception tree: catch ``MinerError`` for anything a miner raises on purpose.

::

    FactoryError (factory.errors)
    └── MinerError              anything a miner raises on purpose
        ├── GitError            a git command failed (bad repository, unknown ref, ...)
        ├── GitHubError         the GitHub API failed in a way waiting cannot fix (auth, 404 repo)
        └── MissingDependency   an optional library (PyGithub) is not installed

Expected trouble with one change (binary diff, non-UTF-8 path, a PR whose commit is gone) is not
an exception: the change is skipped and the reason counted in the stats.
"""

from __future__ import annotations

from factory.errors import FactoryError

__all__ = ["GitError", "GitHubError", "MinerError", "MissingDependency"]


class MinerError(FactoryError):
    """Base of every error a miner raises on purpose (a ``FactoryError``: the CLI reports it)."""

    reason = "mine_failed"


class GitError(MinerError):
    """A git command failed."""


class GitHubError(MinerError):
    """The GitHub API failed for good (not a rate limit: those are waited out).

    ``status`` is the HTTP status when there was one (None for connection errors).
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MissingDependency(MinerError, ImportError):
    """An optional dependency is missing; the message names the pip extra to install."""
