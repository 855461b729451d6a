"""Fixtures shared by the verifiers' tests: each other-language runner's small project, built
once a session (an environment image and a baseline), and its bug validated into a task. The
runner tests (``test_lang_runners.py``) and the guard's tests (``langs/test_lang_guard.py``) both
grade that task; building it once halves their Docker time."""

from __future__ import annotations

import pytest

from factory.repo import checkout
from factory.schema import Candidate, RepoSpec
from tests.conftest import bug_patch, make_repo
from tests.verifiers.lang_fixtures import ALL


@pytest.fixture(scope="session", params=sorted(ALL))
def lang_project(request, docker_client, tmp_path_factory):
    """(fixture, repository root, checkout, environment, baseline of two runs) for one runner."""
    from verifiers.baseline import run_baseline  # noqa: PLC0415
    from verifiers.images import build_env_image  # noqa: PLC0415

    fx = ALL[request.param]
    root = tmp_path_factory.mktemp(f"lang-{request.param}")
    make_repo(root, fx["files"])
    co = checkout(RepoSpec(source=str(root)))
    env = build_env_image(docker_client, co, log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=2)
    return fx, root, co, env, base


@pytest.fixture(scope="session")
def lang_task(docker_client, lang_project):
    """(fixture, task): the fixture's bug, validated (it must be accepted) into a task."""
    from verifiers.validate import ValidateConfig, validate_candidates  # noqa: PLC0415

    fx, root, co, env, base = lang_project
    path, text = fx["bug"]
    cov = [c for c in base.coverage if c.file == path]
    cand = Candidate("bug1", co.key, co.commit, "mutation", bug_patch(root, path, text),
                     covering_tests=tuple(sorted({n for c in cov for n in c.nodeids})))
    got = []
    vals = validate_candidates(docker_client, env, base.entries, [cand], ValidateConfig(workers=1),
                               on_result=lambda v, i: got.append(i))
    assert vals[0].verdict == "accepted", vals[0]
    return fx, got[0]
