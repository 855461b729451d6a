"""``RayExecutor``: the same work items on a Ray cluster (``pip install 'taskfactory[scale]'``).

Each repository item (env, baseline, mine, mutate, combine) and each batch of a repository's
candidates (validate, ``default_batch`` at a time) is one Ray task running
``factory.landing.run_packed``: the item's repository folder travels with it, the stage's own
function (the very ``run_item`` ``LocalExecutor`` runs) works over a scratch copy on the node, and
the task returns an ``ItemRecord`` — outcome, the files it wrote, its log. The driver is the one
writer: it lands each record in the run directory as it completes, so the run directory lives on
the driver's disk alone (no shared filesystem) and a resumed run finds what landed. Run-level
items (publish, train) read the whole run directory and run on the driver.

Where items run: nodes that can run containers advertise the custom resource
``taskfactory_docker`` (``ray start --resources '{"taskfactory_docker": 100}'``); an item whose
stage starts containers asks for one unit of it and for the CPUs its containers are given
(``Stage.cpus``: validate's workers × the sandbox's CPUs). A node lacking the repository's image
pulls or builds it first (``factory.placement``).

Faults: a task whose worker process or node dies is retried by Ray (``max_retries``) on what is
left, from the same packed inputs; since only a completed task's record lands, nothing is lost or
landed twice, and every container carries the run's label, so the run's closing ``sweep`` removes
what the dead worker left on any live node's engine.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from factory.config import RunConfig
from factory.errors import ConfigError
from factory.stage import Log, StageOutcome, WorkItem

__all__ = ["DEFAULT_BATCH", "DOCKER_RESOURCE", "RayExecutor", "RayStats"]

DOCKER_RESOURCE = "taskfactory_docker"
DEFAULT_BATCH = 8  # candidates per validate task: big enough to amortise a worker container's start


def _ray():
    try:
        import ray  # noqa: PLC0415
    except ImportError as e:
        raise ConfigError("--executor ray needs Ray: pip install 'taskfactory[scale]'") from e
    return ray


def _remote_item(cfg: RunConfig, inputs: dict[str, bytes], item: WorkItem, run_id: str, registry: str | None):
    import ray  # noqa: PLC0415

    from factory.landing import run_packed  # noqa: PLC0415
    from factory.placement import Placement  # noqa: PLC0415

    record = run_packed(cfg, inputs, item, run_id, placement=Placement(registry))
    record.node = f"{record.node}/{ray.get_runtime_context().get_node_id()[:8]}"  # two nodes may share a host
    return record


def _sweep_node(run_id: str) -> list[str]:
    from verifiers.engine import docker_client  # noqa: PLC0415
    from verifiers.isolation import RUN_LABEL, sweep_run  # noqa: PLC0415

    client = docker_client()
    ids = [c.id for c in client.containers.list(all=True, sparse=True, filters={"label": f"{RUN_LABEL}={run_id}"})]
    sweep_run(client, run_id)
    return ids


@dataclass
class RayStats:
    """What the executor spent, for ``bench/scale.py``: driver-side seconds packing inputs and
    landing records, bytes each way, tasks, and the nodes that ran them."""

    pack_s: float = 0.0
    land_s: float = 0.0
    bytes_in: int = 0
    bytes_out: int = 0
    tasks: int = 0
    task_s: float = 0.0  # the items' own seconds, as their outcomes report
    nodes: dict[str, int] = field(default_factory=dict)


@dataclass
class RayExecutor:
    """``address``: a cluster to join (``auto``: the one ``ray start`` made here); None starts a
    local Ray for this process, whose one node advertises the container resource when an engine
    answers. ``registry``: where nodes push and pull images (``factory.placement``)."""

    address: str | None = None
    max_retries: int = 3
    default_batch: int = DEFAULT_BATCH
    registry: str | None = None
    init_kwargs: dict = field(default_factory=dict)
    stats: RayStats = field(default_factory=RayStats)

    def _connect(self):
        ray = _ray()
        if not ray.is_initialized():
            kw = dict(self.init_kwargs)
            if self.address is None and "resources" not in kw and _engine_answers():
                kw["resources"] = {DOCKER_RESOURCE: 100}
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False, **kw)
        return ray

    def _options(self, nodes: list[dict], cfg: RunConfig, item: WorkItem) -> dict:
        from factory.stages import stage_named  # noqa: PLC0415

        stage = stage_named(item.stage)
        docker_nodes = [n for n in nodes if n.get("Resources", {}).get(DOCKER_RESOURCE)]
        pool = docker_nodes if stage.containers and docker_nodes else nodes
        # An item asks for its containers' CPUs, but never for more than the biggest node has
        # (Ray would hold it forever): a node smaller than the config's sandbox still takes it.
        most = max((n.get("Resources", {}).get("CPU", 1.0) for n in pool), default=1.0)
        opts = {"num_cpus": min(stage.cpus(cfg), most) if stage.containers else 1.0,
                "max_retries": self.max_retries, "retry_exceptions": False, "name": item.key}
        if stage.containers and docker_nodes:
            opts["resources"] = {DOCKER_RESOURCE: 1}
        return opts

    def run(self, cfg: RunConfig, run_dir: Path, items: list[WorkItem], *, log: Log = print,
            progress: Callable | None = None) -> Iterator[tuple[WorkItem, StageOutcome]]:
        from factory.executors import run_item  # noqa: PLC0415
        from factory.landing import land, pack_inputs, run_id_for  # noqa: PLC0415
        from factory.stages import stage_named  # noqa: PLC0415
        from factory.store import RunStore  # noqa: PLC0415

        for item in items:  # the run's own items read the whole run directory: here, on the driver
            if item.spec is None:
                yield item, run_item(cfg, str(run_dir), item, log, progress)
        items = [i for i in items if i.spec is not None]
        if not items:
            return
        ray = self._connect()
        run_id = run_id_for(cfg, run_dir)
        remote = ray.remote(_remote_item)
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {}
        for item in items:
            t0 = time.monotonic()
            inputs = pack_inputs(run_dir, item)
            self.stats.pack_s += time.monotonic() - t0
            self.stats.bytes_in += sum(len(b) for b in inputs.values())
            refs[remote.options(**self._options(nodes, cfg, item)).remote(cfg, inputs, item, run_id, self.registry)] = item
        pending = list(refs)
        store = RunStore(run_dir)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                item = refs[ref]
                try:
                    record = ray.get(ref)
                except Exception as e:  # failed for good (retries spent, or a bug): the item's outcome
                    yield item, StageOutcome(item.stage, item.repo, ok=False,
                                             reason=f"ray task failed: {e.__class__.__name__}: {str(e)[:300]}")
                    continue
                t0 = time.monotonic()
                land(run_dir, record)
                after = stage_named(item.stage).after_land
                if after is not None:
                    after(store)
                self.stats.land_s += time.monotonic() - t0
                self.stats.bytes_out += record.nbytes
                self.stats.tasks += 1
                self.stats.task_s += record.outcome.seconds
                self.stats.nodes[record.node] = self.stats.nodes.get(record.node, 0) + 1
                for line in record.logs:
                    log(line)
                yield item, record.outcome

    def sweep(self, run_id: str) -> int:
        """Remove the run's containers on every live node's engine; how many there were."""
        ray = _ray()
        if not ray.is_initialized():
            from factory.pipeline import _sweep_here  # noqa: PLC0415

            return _sweep_here(run_id)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: PLC0415

        nodes = [n for n in ray.nodes() if n.get("Alive")]
        with_docker = [n for n in nodes if n.get("Resources", {}).get(DOCKER_RESOURCE)] or nodes
        task = ray.remote(_sweep_node)
        refs = [task.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
                             ).remote(run_id) for n in with_docker]
        removed: set[str] = set()
        for ids in ray.get(refs, timeout=300):
            removed.update(ids)
        return len(removed)

    def close(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()


def _engine_answers() -> bool:
    try:
        from verifiers.engine import docker_client  # noqa: PLC0415

        docker_client()
        return True
    except Exception:  # no engine here: this node runs no container items
        return False
