"""Containers carry their run's label, and a sweep by run removes what a killed worker left."""

from __future__ import annotations

import uuid

import pytest

from verifiers.isolation import RUN_ENV, RUN_LABEL, Limits, container_kwargs, run_labels, sweep_run


def test_labels_only_inside_a_run(monkeypatch):
    monkeypatch.delenv(RUN_ENV, raising=False)
    assert "labels" not in container_kwargs(Limits())  # callers that label containers themselves keep working
    assert container_kwargs(Limits(), labels={"a": "b"})["labels"] == {"a": "b"}
    monkeypatch.setenv(RUN_ENV, "demo-123")
    assert run_labels() == {RUN_LABEL: "demo-123"}
    assert container_kwargs(Limits(), labels={"a": "b"})["labels"] == {RUN_LABEL: "demo-123", "a": "b"}


@pytest.mark.docker
def test_sweep_by_run_removes_only_that_runs_containers(docker_client, base_image, monkeypatch):
    from verifiers.worker import Worker

    run, other = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(RUN_ENV, run)
    mine = Worker(docker_client, base_image, Limits(), session="s1")
    mine.start()  # as a worker process killed mid-validate leaves it: running, never closed
    monkeypatch.setenv(RUN_ENV, other)
    theirs = Worker(docker_client, base_image, Limits(), session="s2")
    theirs.start()
    try:
        assert mine.container.labels[RUN_LABEL] == run and mine.container.labels["taskfactory.session"] == "s1"
        assert sweep_run(docker_client, run) == 1
        assert not docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run}"})
        assert docker_client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={other}"})
    finally:
        theirs.close()
        sweep_run(docker_client, run)
