"""``RayExecutor``: the same work items on a Ray cluster (``pip install 'taskfactory[scale]'``).

Each item is one Ray task running ``factory.executors.run_item`` — the very function
``LocalExecutor`` runs — so the executor changes where work runs, never what it produces. Items
are idempotent (every stage skips finished outputs), so Ray's retry of a task whose worker or node
died (``max_retries``) duplicates nothing. Nodes that can run containers may advertise the custom
resource ``taskfactory_docker``; when the cluster has it, every item asks for one unit of it.

As built, workers write into the run directory themselves, which therefore must be reachable from
every node (one machine, or a shared filesystem); landing records through the driver is the
cluster issue's next step (``docs/DESIGN.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from factory.config import RunConfig
from factory.errors import ConfigError
from factory.stage import Log, StageOutcome, WorkItem

__all__ = ["RayExecutor"]

DOCKER_RESOURCE = "taskfactory_docker"


def _ray():
    try:
        import ray  # noqa: PLC0415
    except ImportError as e:
        raise ConfigError("--executor ray needs Ray: pip install 'taskfactory[scale]'") from e
    return ray


@dataclass
class RayExecutor:
    """``address``: a cluster to join (``auto``: the one ``ray start`` made here); None starts a
    local Ray for this process. ``num_cpus`` per item (each item runs containers of its own)."""

    address: str | None = None
    num_cpus: float = 1.0
    max_retries: int = 2
    init_kwargs: dict = field(default_factory=dict)

    def _connect(self):
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False,
                     include_dashboard=False, **self.init_kwargs)
        return ray

    def run(self, cfg: RunConfig, run_dir: Path, items: list[WorkItem], *, log: Log = print,
            progress: Callable | None = None) -> Iterator[tuple[WorkItem, StageOutcome]]:
        if not items:
            return
        ray = self._connect()
        from factory.executors import run_item  # noqa: PLC0415

        resources = {DOCKER_RESOURCE: 1} if ray.cluster_resources().get(DOCKER_RESOURCE) else {}
        remote = ray.remote(num_cpus=self.num_cpus, max_retries=self.max_retries, resources=resources)(run_item)
        refs = {remote.remote(cfg, str(Path(run_dir).resolve()), item): item for item in items}
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                item = refs[ref]
                try:
                    yield item, ray.get(ref)
                except Exception as e:  # the task failed for good (retries spent): the item's outcome
                    yield item, StageOutcome(item.stage, item.repo, ok=False,
                                             reason=f"ray task failed: {e.__class__.__name__}: {str(e)[:300]}")

    def close(self) -> None:
        ray = _ray()
        if ray.is_initialized():
            ray.shutdown()
