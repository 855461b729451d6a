"""The one exception tree of taskfactory; catch at the level you can handle.

    FactoryError                 anything we raise on purpose; its message is the one-line reason
    ├── ConfigError              a malformed config or spec (the message names the field)
    ├── RepoError                a source that cannot become a checkout
    │   ├── NotARepository       a path that is not a git repository
    │   └── SdistError           a PyPI sdist that is missing, or ships no tests
    ├── EngineUnavailable        no Docker engine, and none could be started here
    ├── ImageError               a base or environment image could not be built
    │   └── InstallFailed        the repository's own install failed (a property of the repo)
    ├── BaselineError            the suite gave nothing to trust (no tests, collection broke, ...)
    ├── MinerError               (miners.errors) a miner's own failure: git, the GitHub API, a missing extra
    ├── MutatorError             (mutators.errors) a mutator's own failure; its ConfigError is also ours
    ├── WorkerFault              (verifiers.worker) a worker container or the engine failed: retried
    └── PublishError, RegistryError, RebuildError   (factory.publish_errors, .registry, .rebuild)

Expected outcomes of running untrusted code (a test run that times out, a container that dies)
are *results* (``TestRun.status``), never exceptions. Like ``schema``, this module imports
nothing of ours, so every stage package may use it.
"""

from __future__ import annotations

__all__ = [
    "BaselineError",
    "ConfigError",
    "EngineUnavailable",
    "FactoryError",
    "ImageError",
    "InstallFailed",
    "NotARepository",
    "RepoError",
    "SdistError",
]


class FactoryError(Exception):
    """Base of everything taskfactory raises on purpose. ``reason`` is a short machine key."""

    reason = "error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class ConfigError(FactoryError):
    reason = "bad_config"


class RepoError(FactoryError):
    reason = "bad_repo"


class NotARepository(RepoError):
    reason = "not_a_repository"


class SdistError(RepoError):
    reason = "bad_sdist"


class EngineUnavailable(FactoryError):
    reason = "engine_unavailable"


class ImageError(FactoryError):
    reason = "image_build_failed"


class InstallFailed(ImageError):
    """The repository's install commands failed; ``log_tail`` is the end of the build log."""

    reason = "install_failed"

    def __init__(self, message: str, *, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class BaselineError(FactoryError):
    reason = "baseline_failed"
