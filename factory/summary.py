"""The per-repository summary a run of many repositories ends with: what each one gave, and
where and why the ones that gave nothing stopped.

Read from the run directory (so a resumed run's table covers the repositories an earlier run
finished) plus this run's outcomes (for the seconds spent): candidates, verdicts, tasks, yield
(tasks per judged candidate), and for a repository that failed, the stage and the reason its
``failure.json`` records.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from factory.config import RunConfig
from factory.stage import StageOutcome
from factory.store import RunStore, read_json, write_json

__all__ = ["RepoSummary", "repo_summaries", "summary_table", "write_summary"]


@dataclass
class RepoSummary:
    repo: str
    status: str  # ok | failed | skipped (finished earlier) | not run
    candidates: int = 0
    judged: int = 0
    tasks: int = 0
    failed_stage: str = ""
    reason: str = ""
    seconds: float = 0.0

    @property
    def yield_(self) -> float | None:
        return self.tasks / self.judged if self.judged else None


def _count_rows(path) -> int:
    if not path.exists():
        return 0
    import pyarrow.parquet as pq  # noqa: PLC0415

    return pq.read_metadata(path).num_rows


def _verdicts(store: RunStore, key: str) -> tuple[int, int]:
    d = store.repo(key).root / "validations"
    judged = tasks = 0
    for p in d.glob("*.json") if d.is_dir() else ():
        try:
            v = json.loads(p.read_text())["validation"]["verdict"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        judged += v in ("accepted", "rejected")
        tasks += v == "accepted"
    return judged, tasks


def repo_summaries(cfg: RunConfig, store: RunStore, outcomes: list[StageOutcome]) -> list[RepoSummary]:
    """One row per configured repository, in the config's order."""
    rows = []
    for spec in cfg.repo_specs():
        key = spec.key
        rd = store.repo(key)
        mine = [o for o in outcomes if o.repo == key]
        judged, tasks = _verdicts(store, key)
        row = RepoSummary(key, "ok", _count_rows(rd.candidates), judged, tasks,
                          seconds=round(sum(o.seconds for o in mine), 1))
        bad = next((o for o in mine if not o.ok), None)
        failures = read_json(rd.failure) if rd.failure.exists() else {}
        if bad is not None:
            row.status, row.failed_stage, row.reason = "failed", bad.stage, bad.reason
            row.reason = (failures.get(bad.stage) or {}).get("reason", bad.reason)
        elif not mine:
            row.status = "finished earlier" if (rd.root / "finished.json").exists() else "not run"
            if failures:
                row.failed_stage, info = next(iter(failures.items()))
                row.reason = info.get("reason", "")
        rows.append(row)
    return rows


def summary_table(rows: list[RepoSummary], title: str = "repositories"):
    """A rich Table: repository, status, candidates, judged, tasks, yield, failed stage: why."""
    from rich.table import Table  # noqa: PLC0415

    t = Table(title=title, show_header=True)
    for col, just in (("repository", "left"), ("status", "left"), ("candidates", "right"), ("judged", "right"),
                      ("tasks", "right"), ("yield", "right"), ("s", "right"), ("failed at: why", "left")):
        t.add_column(col, justify=just, overflow="fold")
    for r in rows:
        y = f"{r.yield_:.0%}" if r.yield_ is not None else "-"
        why = f"{r.failed_stage}: {r.reason[:160]}" if r.failed_stage else ""
        t.add_row(r.repo, r.status, str(r.candidates), str(r.judged), str(r.tasks), y, f"{r.seconds:.0f}", why)
    total_t, total_j = sum(r.tasks for r in rows), sum(r.judged for r in rows)
    t.add_row("[bold]all[/]", f"{sum(r.status in ('ok', 'finished earlier') for r in rows)}/{len(rows)} ok",
              str(sum(r.candidates for r in rows)), str(total_j), str(total_t),
              f"{total_t / total_j:.0%}" if total_j else "-", f"{sum(r.seconds for r in rows):.0f}", "")
    return t


def write_summary(store: RunStore, rows: list[RepoSummary]) -> None:
    """``RUN/summary.json``: the table as data."""
    write_json(store.root / "summary.json", [{**asdict(r), "yield": r.yield_} for r in rows])
