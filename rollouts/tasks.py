"""Task rows for sessions: from a run directory, ``instances.parquet``, a dataset folder or a Hub id."""

from __future__ import annotations

from pathlib import Path

from factory.errors import FactoryError

__all__ = ["load_tasks"]

NEEDED = ("instance_id", "image_name", "base_commit", "patch", "FAIL_TO_PASS", "PASS_TO_PASS")


def load_tasks(source: str | Path) -> dict[str, dict]:
    """``{instance_id: row}``; rows keep every column they have."""
    import polars as pl  # noqa: PLC0415

    p = Path(source)
    if p.is_dir() and (p / "instances.parquet").exists():
        files = [p / "instances.parquet"]
    elif p.is_dir():
        files = sorted(p.glob("data/*.parquet")) or sorted(p.glob("*.parquet"))
    elif p.suffix == ".parquet" and p.exists():
        files = [p]
    elif not p.exists() and "/" in str(source) and str(source).count("/") == 1:
        import datasets  # noqa: PLC0415

        dd = datasets.load_dataset(str(source))
        rows = [r for split in dd.values() for r in split]
        return _check({r["instance_id"]: r for r in rows}, str(source))
    else:
        raise FactoryError(f"{source}: not a run directory, instances.parquet, dataset folder or Hub id")
    if not files:
        raise FactoryError(f"{source}: no parquet shards")
    rows = [r for f in files for r in pl.read_parquet(f).to_dicts()]
    return _check({r["instance_id"]: r for r in rows}, str(source))


def _check(rows: dict[str, dict], source: str) -> dict[str, dict]:
    for r in rows.values():
        missing = [c for c in NEEDED if c not in r]
        if missing:
            raise FactoryError(f"{source}: rows lack {', '.join(missing)}")
        break
    return rows
