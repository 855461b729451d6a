"""Images where the work lands (``factory.placement``): a node that lacks a repository's
environment image builds it with the very tag the run recorded, or pulls it from the registry
when one is configured; the node that built it pushes it there. Real engine, real registry."""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import make_repo

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_a_node_without_the_image_builds_it_then_pulls_it(tmp_path, docker_client, base_image):
    from factory.config import RunConfig
    from factory.placement import Placement, ensure_image_here
    from factory.registry import ensure_registry, registry_ref
    from factory.stage import WorkItem, ensure_env_image, load_env
    from factory.store import RunStore

    repo = tmp_path / "lib"
    marker = uuid.uuid4().hex[:8]  # a repository of its own: an image no other test shares
    make_repo(repo, {"lib.py": f"MARK = {marker!r}\n\n\ndef one():\n    return 1\n",
                     "test_lib.py": "from lib import one\n\n\ndef test_one():\n    assert one() == 1\n"})
    cfg = RunConfig.model_validate({"name": "place", "repos": [str(repo)]})
    spec = cfg.repo_specs()[0]
    store = RunStore(tmp_path / "run")
    tag = ensure_env_image(spec, store, log=lambda _m: None).tag
    assert load_env(store, spec.key).tag == tag
    reg = ensure_registry(root=tmp_path / "registry")
    pushed = registry_ref(reg.address, tag)
    try:
        assert ensure_image_here(docker_client, tag, spec) == "present"
        docker_client.images.remove(tag)  # as on a node that never built it
        assert ensure_image_here(docker_client, tag, spec, log=lambda _m: None) == "built"
        docker_client.images.get(tag)

        # the env item's node pushes what it built; another node pulls it instead of building
        placement = Placement(reg.address)
        from factory.stage import StageOutcome

        logs: list[str] = []
        placement.after(cfg, store, WorkItem("env", spec.key, spec), StageOutcome("env", spec.key, ok=True),
                        logs.append)
        assert any("pushed 1 image" in m for m in logs), logs
        docker_client.images.remove(tag)
        assert ensure_image_here(docker_client, tag, spec, reg.address, log=lambda _m: None) == "pulled"
        assert tag in docker_client.images.get(tag).tags
        # before a baseline item: nothing to fail when the image can be had
        docker_client.images.remove(tag)
        assert placement.before(cfg, store, WorkItem("baseline", spec.key, spec), lambda _m: None) is None
        docker_client.images.get(tag)
    finally:
        reg.stop()
        for ref in (pushed,):
            try:
                docker_client.images.remove(ref)
            except Exception:
                pass
