"""The run config: one YAML file that names the repositories and each stage's settings.

Validated with pydantic at the boundary, so a malformed file fails before any work starts, with
a message that names the field. Every stage's settings are a small model with defaults; the CLI
only overrides fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from factory import defaults
from factory.errors import ConfigError
from factory.schema import RepoSpec

__all__ = ["BaselineConfig", "CombineSettings", "MineSettings", "MutateSettings", "RunConfig", "SandboxConfig", "ValidateSettings", "load_config",
           "DEFAULT_CONFIG"]

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "demo.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SandboxConfig(_Strict):
    timeout_s: float = Field(defaults.TEST_TIMEOUT_S, gt=0)
    mem: str = defaults.MEM
    pids: int = Field(defaults.PIDS, gt=0)
    cpus: float = Field(defaults.CPUS, gt=0)


class BaselineConfig(_Strict):
    reruns: int = Field(defaults.RERUNS, ge=1, le=20)
    coverage: bool = True
    # truth checks (verifiers.truth): tests that error above this share, or a test module that fails
    # to collect, refuse the baseline (or only warn, with refuse_excess false); skips above
    # max_skip_share warn
    max_error_share: float = Field(0.05, ge=0, le=1)
    max_skip_share: float = Field(0.05, ge=0, le=1)
    refuse_excess: bool = True


class MutateSettings(_Strict):
    seed: int = 0
    max_per_function: int = Field(3, ge=1)
    operators: list[str] | None = None
    max_candidates: int | None = Field(None, ge=1)


class MineSettings(_Strict):
    github: str | None = None  # OWNER/NAME: mine through the GitHub API (GITHUB_TOKEN)
    mirror: bool = False  # re-introduce each PR's fix on HEAD instead
    since: str | None = None
    max_candidates: int | None = Field(None, ge=1)
    commits: bool | None = None  # direct fix commits too (None: when the history has no PRs)


class CombineSettings(_Strict):
    seed: int = 0


class ValidateSettings(_Strict):
    strategy: str = Field(defaults.STRATEGY, pattern="^(selected|full)$")
    workers: int = Field(default_factory=defaults.cpu_cores, ge=1)  # default: fill the machine
    confirm_fraction: float = Field(defaults.CONFIRM_FRACTION, ge=0, le=1)  # the selected rule's audit
    allow_disagreement: bool = False  # an audit disagreement fails the stage unless this is set
    timeout_s: float | None = Field(None, gt=0)  # None: 10x the median baseline run, at least 60 s
    max_f2p: int = Field(defaults.MAX_F2P, ge=1)
    # candidates per work item (a batch a cluster node judges); None: the executor's own
    # (local: the whole repository in one item; ray: factory.executors_ray.DEFAULT_BATCH)
    batch: int | None = Field(None, ge=1)


class PublishSettings(_Strict):
    test_fraction: float = Field(0.2, ge=0, lt=1)
    max_per_repo: int | None = Field(None, ge=1)
    max_per_operator: int | None = Field(None, ge=1)
    overwrite: bool = True  # the run's own dataset folder is rewritten on every run


class TrainSettings(_Strict):
    recipe: str = "tiny"
    steps: int = Field(30, ge=1)
    seed: int = 0
    device: str | None = "cpu"


class RunConfig(_Strict):
    name: str = "run"
    repos: list[str | dict[str, Any]] = Field(min_length=1)
    sandbox: SandboxConfig = SandboxConfig()
    baseline: BaselineConfig = BaselineConfig()
    mutate: MutateSettings = MutateSettings()
    mine: MineSettings = MineSettings()
    combine: CombineSettings = CombineSettings()
    validate_: ValidateSettings = Field(ValidateSettings(), alias="validate")
    publish: PublishSettings = PublishSettings()
    train: TrainSettings = TrainSettings()
    stages: list[str] = ["env", "baseline", "mutate", "validate", "publish"]

    @field_validator("repos")
    @classmethod
    def _repos_parse(cls, v: list[Any]) -> list[dict[str, Any]]:
        out = []
        for i, item in enumerate(v):
            item = {"source": item} if isinstance(item, str) else item
            try:
                RepoSpec.parse(item)
            except (TypeError, ValueError) as e:
                raise ValueError(f"repos[{i}]: {e}") from e
            out.append(item)
        return out

    def repo_specs(self) -> list[RepoSpec]:
        return [RepoSpec.parse(r) for r in self.repos]


def load_config(path: str | Path) -> RunConfig:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p}: not valid YAML ({str(e).splitlines()[0]})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return RunConfig.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise ConfigError(f"{p}: {where}: {err['msg']}") from e
