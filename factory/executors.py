"""Executors: where a stage's work items run. The runner (``factory.pipeline``) hands them items;
what an item produces never depends on the executor.

``LocalExecutor`` runs items in a pool of processes on this machine, sized to its cores (one
item, or one worker, runs inline: its log lines and progress reach the console as they happen).
Items are keyed (stage, repository) and idempotent, since every stage skips finished outputs:
an item whose process died is run again, once, and finds whatever it had finished.

A cluster executor is a new module with the same ``run`` (``docs/extending.md``).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from factory.config import RunConfig
from factory.stage import Log, StageOutcome, WorkItem

__all__ = ["Executor", "LocalExecutor", "run_item"]


class Executor(Protocol):
    def run(self, cfg: RunConfig, run_dir: Path, items: list[WorkItem], *, log: Log = print,
            progress: Callable | None = None) -> Iterator[tuple[WorkItem, StageOutcome]]:
        """Run every item; yield (item, outcome) as each completes, in any order."""


def run_item(cfg: RunConfig, run_dir: str, item: WorkItem, log: Log = print, progress: Callable | None = None
             ) -> StageOutcome:
    """One item, in whatever process runs it: the stage's own function over the run directory."""
    from factory.stages import stage_named  # noqa: PLC0415  (the registry imports every stage module)
    from factory.store import RunStore  # noqa: PLC0415

    return stage_named(item.stage).run(cfg, RunStore(Path(run_dir)), item, log, progress)


@dataclass
class LocalExecutor:
    """A process pool on this machine (``workers``: default one per core)."""

    workers: int | None = None

    def size(self, n_items: int) -> int:
        return max(1, min(self.workers or os.cpu_count() or 1, n_items))

    def run(self, cfg: RunConfig, run_dir: Path, items: list[WorkItem], *, log: Log = print,
            progress: Callable | None = None) -> Iterator[tuple[WorkItem, StageOutcome]]:
        if self.size(len(items)) == 1:
            for item in items:
                yield item, run_item(cfg, str(run_dir), item, log, progress)
            return
        # spawn, not fork: the parent holds threads (the console, Docker's connection pool).
        ctx = multiprocessing.get_context("spawn")
        retry: list[WorkItem] = []
        with ProcessPoolExecutor(max_workers=self.size(len(items)), mp_context=ctx) as pool:
            pending = {pool.submit(run_item, cfg, str(run_dir), item): item for item in items}
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    item = pending.pop(fut)
                    try:
                        yield item, fut.result()
                    except BrokenProcessPool:
                        retry.append(item)
                    except Exception as e:  # a bug in a stage: its outcome, not the run's end
                        yield item, StageOutcome(item.stage, item.repo, ok=False,
                                                 reason=f"{e.__class__.__name__}: {e}")
        for item in retry:  # the process died under it: once more, here
            log(f"{item.key}: its worker process died; running it again")
            yield item, run_item(cfg, str(run_dir), item, log, progress)
