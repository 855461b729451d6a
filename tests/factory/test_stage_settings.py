"""The run config's settings reach the stage functions they govern (``factory run`` is the only
way a config's values are used, so a setting dropped here is silently ignored)."""

from __future__ import annotations

from factory import stages
from factory.config import RunConfig
from factory.schema import RepoSpec
from factory.stage import WorkItem


def test_the_baseline_truth_limits_of_a_config_reach_the_baseline_stage(monkeypatch, tmp_path):
    seen = {}

    def capture(spec, store, **kwargs):
        seen.update(kwargs)
        return "captured"

    monkeypatch.setattr(stages, "stage_baseline", capture)
    cfg = RunConfig.model_validate({
        "repos": ["pypi:cachetools==5.5.0"],
        "baseline": {"reruns": 2, "coverage": False, "max_error_share": 0.2, "max_skip_share": 0.3,
                     "refuse_excess": False},
    })
    spec = RepoSpec.parse("pypi:cachetools==5.5.0")
    out = stages._baseline(cfg, store=None, item=WorkItem("baseline", spec.key, spec), log=print)
    assert out == "captured"
    assert (seen["reruns"], seen["coverage"]) == (2, False)
    truth = seen["truth"]
    assert (truth.max_error_share, truth.max_skip_share, truth.refuse) == (0.2, 0.3, False)
