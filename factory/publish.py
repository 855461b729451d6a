"""Publishing: a run's instances, curated, as a Hugging Face dataset folder (and on the Hub).

``publish_run`` reads ``RUN/instances.parquet``, curates (``factory.curate``), removes benchmark
overlaps (``factory.decontam``), and writes the Hub layout::

    DIR/README.md                          dataset card: YAML metadata, columns, counts
    DIR/data/train-00000-of-00001.parquet  shards named as the Hub expects
    DIR/data/test-00000-of-00001.parquet   (when a repository is held out)

Every shard carries the explicit ``datasets.Features`` in its schema metadata, so
``datasets.load_dataset(DIR)`` and polars both read exact types. The folder is built in a
temporary sibling and renamed into place; a folder that holds another dataset is never
overwritten unless asked. With ``push_to_hub`` each shard is uploaded as soon as it is written
and one commit is made at the end (``factory.hub``).

``export_swebench`` writes the same curated rows as JSONL for SWE-bench's own harness, with
FAIL_TO_PASS / PASS_TO_PASS as JSON strings.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from factory.curate import CurateConfig, CurationReport, curate
from factory.decontam import DecontamReport, find_overlaps, load_benchmark
from factory.features import dataset_features  # noqa: F401  (re-exported: publish's callers use it)
from factory.publish_errors import (
    DatasetDirConflictError,
    EmptyRunError,
    HubPushError,
    InvalidInstancesError,
)
from factory.schema import ARROW_SCHEMAS, TaskInstance
from factory.store import RunStore, atomic_path

__all__ = [
    "MARKER_FILE",
    "SWEBENCH_COLUMNS",
    "PublishConfig",
    "PublishReport",
    "dataset_features",
    "export_swebench",
    "export_task_repo",
    "push_row_images",
    "parse_size",
    "prepare_rows",
    "publish_run",
    "read_instances",
]

MARKER_FILE = ".taskfactory.json"  # which run wrote this folder; lets a re-publish replace it
SWEBENCH_COLUMNS: tuple[str, ...] = (
    "instance_id", "repo", "base_commit", "patch", "test_patch", "problem_statement", "hints_text",
    "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "environment_setup_commit",
)
# Without these a row means nothing, so an empty one means an upstream stage is broken. (An empty
# image_name / base_commit is legitimate, a run validated without task images; curation drops it.)
_NONEMPTY = ("instance_id", "repo", "patch")
_INSTANCE_FIELDS = {f.name: f for f in dataclasses.fields(TaskInstance)}


@dataclass(frozen=True)
class PublishConfig:
    """How to curate and where to publish. The CLI maps its flags onto these fields."""

    curate: CurateConfig = field(default_factory=CurateConfig)
    benchmarks: tuple[str, ...] = ()  # files or Hub ids to decontaminate against
    similarity_threshold: float = 0.8
    max_shard_size: int | str = "500MB"  # of arrow data before compression, as datasets' push_to_hub counts
    license: str = ""  # the card's license; "" = from the repositories' own metadata (one: it; several: other)
    pretty_name: str = ""
    overwrite: bool = False  # replace a dataset folder that another run (or nobody) wrote
    push_to_hub: str | None = None  # OWNER/NAME
    private: bool = False
    hub_token: str | None = None  # default: HF_TOKEN
    hub_endpoint: str | None = None  # default: HF_ENDPOINT / huggingface.co
    push_images: str | None = None  # REGISTRY[/NAMESPACE]: push task images, rows name the pushed refs

    def __post_init__(self) -> None:
        parse_size(self.max_shard_size)  # fails early with the flag's name
        if not 0.0 < self.similarity_threshold <= 1.0:
            raise ValueError(f"similarity_threshold must be in (0, 1]; got {self.similarity_threshold}")
        if self.push_to_hub is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", self.push_to_hub):
            raise ValueError(f"--push-to-hub expects OWNER/NAME; got {self.push_to_hub!r}")


@dataclass
class PublishReport:
    run_dir: Path
    dataset_dir: Path | None
    num_instances: int  # read from the run
    num_published: int
    splits: dict[str, int]
    shards: list[str]  # paths relative to the dataset folder
    curation: CurationReport
    decontam: DecontamReport | None = None
    hub: Any = None  # factory.hub.HubReport when pushed
    images: Any = None  # factory.registry.PushReport when task images were pushed

    def summary(self) -> str:
        parts = [f"{self.num_published}/{self.num_instances} instances published"]
        parts += [f"{k}={v}" for k, v in self.splits.items()]
        dropped = dict(self.curation.dropped)
        if self.decontam:
            dropped.update(self.decontam.removed)
        if dropped:
            parts.append("dropped: " + ", ".join(f"{k}={v}" for k, v in sorted(dropped.items())))
        if self.hub is not None:
            parts.append(f"pushed to {self.hub.repo_id}@{self.hub.commit_oid[:12]}")
        if self.images is not None:
            parts.append(self.images.summary())
        return "; ".join(parts)


def parse_size(size: int | str) -> int:
    """Bytes from 500MB, 1.5GB, 200KiB or an int (SI units are powers of 1000, like the Hub's)."""
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"--max-shard-size must be positive; got {size}")
        return size
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*", size, flags=re.IGNORECASE)
    if not m:
        raise ValueError(f"--max-shard-size: cannot read {size!r} (examples: 500MB, 2GB, 100KiB)")
    unit = (m[2] or "B").upper()
    mult = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
            "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}[unit]
    value = int(float(m[1]) * mult)
    if value <= 0:
        raise ValueError(f"--max-shard-size must be positive; got {size!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Reading the run
# ---------------------------------------------------------------------------------------------


def read_instances(run_dir: Path) -> pl.DataFrame:
    """instances.parquet as a frame with exactly the TaskInstance schema.

    Columns that the dataclass gives a default may be absent (older runs) and are filled with
    it; a missing required column, a null in one, an empty id, repo or patch, or a duplicate
    instance id raises ``InvalidInstancesError``.
    """
    path = RunStore(run_dir).instances
    if not path.exists():
        raise EmptyRunError(f"{path} does not exist: run `factory validate {run_dir}` first")
    table = pq.read_table(path)
    if table.num_rows == 0:
        raise EmptyRunError(f"{path} holds no instances: nothing to publish")
    schema = ARROW_SCHEMAS[TaskInstance]
    missing = [n for n in schema.names if n not in table.column_names
               and _INSTANCE_FIELDS[n].default is dataclasses.MISSING
               and _INSTANCE_FIELDS[n].default_factory is dataclasses.MISSING]
    if missing:
        raise InvalidInstancesError(f"{path} lacks required TaskInstance columns {missing}")
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidInstancesError(f"{path}: column {f.name} is {col.type}, expected {f.type}") from exc
        else:
            default = _INSTANCE_FIELDS[f.name].default
            default = list(default) if isinstance(default, tuple) else default
            col = pa.array([default] * table.num_rows, type=f.type)
        cols.append(col)
    table = pa.Table.from_arrays(cols, schema=schema)
    ids = table.column("instance_id").to_pylist()
    for f in schema:
        nulls = table.column(f.name).null_count
        if nulls:
            bad = [ids[i] for i, v in enumerate(table.column(f.name).is_null().to_pylist()) if v][:5]
            raise InvalidInstancesError(f"{path}: {nulls} rows have no {f.name} (instance ids: {bad})")
    for name in _NONEMPTY:
        col = table.column(name).to_pylist()
        bad = [ids[i] for i, v in enumerate(col) if not v.strip()]
        if bad:
            raise InvalidInstancesError(f"{path}: {len(bad)} rows have an empty {name} (instance ids: {bad[:5]})")
    seen: set[Any] = set()
    dups = {i for i in ids if i in seen or seen.add(i)}
    if dups:
        raise InvalidInstancesError(f"{path}: duplicate instance_id values {sorted(dups)[:5]}")
    return pl.from_arrow(table)


def read_test_times(run_dir: Path) -> pl.DataFrame | None:
    """(instance_id, test_s) from every repository's validations.parquet; None when there are none.

    The verifiers name an instance ``{repo}__{candidate_id}``; both that and the bare candidate
    id are offered as keys, so either naming joins.
    """
    store = RunStore(run_dir)
    frames = []
    for key in store.repo_keys():
        path = store.repo(key).validations
        if path.exists():
            v = pl.read_parquet(path, columns=["candidate_id", "repo", "test_s"])
            v = v.with_columns(pl.col("test_s").cast(pl.Float64))
            frames.append(v.select(pl.col("candidate_id").alias("instance_id"), "test_s"))
            frames.append(v.select((pl.col("repo") + "__" + pl.col("candidate_id")).alias("instance_id"), "test_s"))
    if not frames:
        return None
    return pl.concat(frames).unique("instance_id", keep="first", maintain_order=True)


def repo_identities(run_dir: Path) -> dict:
    """Each repository key of the run -> ``factory.repo.RepoIdentity`` (owner/name, license).

    A repository whose checkout is gone keeps its key as its name and has no known license.
    """
    from factory.errors import FactoryError  # noqa: PLC0415
    from factory.repo import RepoIdentity, checkout, repo_identity  # noqa: PLC0415
    from factory.schema import RepoSpec  # noqa: PLC0415

    store = RunStore(run_dir)
    out = {}
    for key in store.repo_keys():
        raw = store.repo(key).read_spec()
        try:
            out[key] = repo_identity(checkout(RepoSpec.parse(raw))) if raw else RepoIdentity(key, "")
        except (FactoryError, ValueError, OSError):
            out[key] = RepoIdentity(key, "")
    return out


def card_license(identities: dict, configured: str = "") -> str:
    """The card's license: as configured, else the repositories' one license, ``other`` for several."""
    if configured:
        return configured
    found = {i.license for i in identities.values()}
    if found and "" not in found:
        return found.pop() if len(found) == 1 else "other"
    return "unknown" if found <= {""} else "other"


def _export_rows(run_dir: Path, config: PublishConfig, log: Callable[[str], None]):
    """What every export starts from: the curated rows, with their images pushed when asked
    (run, rows, rows in, curation report, decontamination report, pushed images or None)."""
    run = Path(run_dir).resolve()
    rows, num_in, creport, dreport = prepare_rows(run, config)
    rows = pytest_rows_only(rows, log)
    pushed_images = None
    if config.push_images:
        rows, pushed_images = push_row_images(rows, config.push_images, log=log)
    return run, rows, num_in, creport, dreport, pushed_images


def pytest_rows_only(rows: pl.DataFrame, log: Callable[[str], None]) -> pl.DataFrame:
    """The rows a SWE-bench export can carry: its eval script runs ``pytest -rA`` for the harness's
    ``parse_log_pytest``, which cannot read jest, vitest, mocha, node:test or ``go test`` output.
    Tasks of other languages are left out and counted, not given a script that cannot grade them
    (they travel as datasets, images and ``factory evaluate``)."""
    if "language" not in rows.columns:
        return rows
    other = rows.filter(pl.col("language").fill_null("python") != "python")
    if other.height:
        counts = other.group_by("language").len().sort("language").iter_rows()
        log(f"SWE-bench export: {other.height} task(s) left out, their runners have no SWE-bench log parser "
            f"here ({', '.join(f'{lang}: {n}' for lang, n in counts)}); publish them as a dataset instead")
    kept = rows.filter(pl.col("language").fill_null("python") == "python")
    if kept.height == 0 and rows.height:
        raise EmptyRunError("a SWE-bench export holds pytest tasks only, and this run has none "
                            "(publish it as a dataset: factory publish RUN)")
    return kept


_LANGUAGE_OF_SUFFIX = {".py": "python", ".go": "go", ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript",
                       ".cts": "typescript", ".js": "javascript", ".jsx": "javascript", ".mjs": "javascript",
                       ".cjs": "javascript"}


def language_of_patch(patch: str, recorded: str = "python") -> str:
    """The language of a task: that of the first file its gold patch changes whose suffix says one
    (``recorded`` when none does, or when validation recorded a language other than the default)."""
    if recorded and recorded != "python":
        return recorded
    for m in re.finditer(r"^diff --git a/(\S+) b/", patch, re.M):
        suffix = PurePosixPath(m.group(1)).suffix
        if suffix in _LANGUAGE_OF_SUFFIX and not m.group(1).endswith(".d.ts"):
            return _LANGUAGE_OF_SUFFIX[suffix]
    return recorded or "python"


def prepare_rows(run_dir: Path, config: PublishConfig) -> tuple[pl.DataFrame, int, CurationReport, DecontamReport | None]:
    """Read, name, curate and decontaminate; return (rows, rows read, curation report, decontam report).

    ``repo`` becomes what the repository calls itself (``owner/name`` from its git remote or its
    sdist's project URLs, else the package name) instead of the run's folder key.
    """
    df = read_instances(run_dir)
    df = df.with_columns(pl.Series("language", [language_of_patch(p, lang) for p, lang in
                                                df.select("patch", "language").iter_rows()], dtype=pl.String))
    names = {k: i.name for k, i in repo_identities(run_dir).items()}
    if names:
        df = df.with_columns(pl.col("repo").replace(names))
    num_in = df.height
    from factory.task_stages import stale_instance_ids  # noqa: PLC0415

    # Verdicts belong to candidates: rows whose candidate is no longer mined are not published.
    stale = stale_instance_ids(run_dir, list(df.select("instance_id", "repo", "provenance").iter_rows()))
    df = df.filter(~pl.col("instance_id").is_in(sorted(stale)))
    decontam = None
    if config.benchmarks:
        benches = [load_benchmark(b) for b in config.benchmarks]
        decontam = find_overlaps(df, benches, threshold=config.similarity_threshold)
        df = df.filter(~pl.col("instance_id").is_in(sorted(decontam.removed_ids)))
    rows, report = curate(df, config.curate, test_s=read_test_times(run_dir))
    report.num_in = num_in
    report.drop(sorted(stale), "stale_verdict")
    if rows.height == 0:
        reasons = dict(report.dropped)
        if decontam:
            reasons.update(decontam.removed)
        raise EmptyRunError(f"all {num_in} instances were dropped ({reasons}); loosen the filters")
    return rows, num_in, report, decontam


# ---------------------------------------------------------------------------------------------
# Writing the folder
# ---------------------------------------------------------------------------------------------


def _check_target(dataset_dir: Path, run_dir: Path, overwrite: bool) -> None:
    run = run_dir.resolve()
    target = dataset_dir.resolve()
    if target == run or target in run.parents:
        raise DatasetDirConflictError(f"{dataset_dir} contains the run itself; choose another --dataset-dir")
    if not target.exists():
        return
    if not target.is_dir():
        raise DatasetDirConflictError(f"{dataset_dir} exists and is not a folder")
    if not any(target.iterdir()):
        return
    marker = target / MARKER_FILE
    if marker.exists():
        try:
            owner = json.loads(marker.read_text()).get("run")
        except (json.JSONDecodeError, AttributeError):
            owner = None
        if owner == str(run) or overwrite:
            return
        raise DatasetDirConflictError(
            f"{dataset_dir} holds the dataset of another run ({owner}); pass overwrite (--overwrite) to replace it"
        )
    if overwrite:
        return
    raise DatasetDirConflictError(
        f"{dataset_dir} is not empty and was not written by factory publish; pass --overwrite to replace it"
    )


def _shard_tables(table: pa.Table, max_bytes: int) -> list[pa.Table]:
    num_shards = max(1, math.ceil(table.nbytes / max_bytes))
    num_shards = min(num_shards, max(1, table.num_rows))
    per = math.ceil(table.num_rows / num_shards)
    return [table.slice(i * per, per) for i in range(num_shards) if i * per < table.num_rows]


def _write_folder(
    rows: pl.DataFrame,
    tmp: Path,
    config: PublishConfig,
    card: Callable[[dict[str, int], dict[str, int]], str],
    on_file: Callable[[Path, str], None] | None,
) -> list[str]:
    features = dataset_features()
    schema = features.arrow_schema
    max_bytes = parse_size(config.max_shard_size)
    shards: list[str] = []
    split_bytes: dict[str, int] = {}
    split_rows: dict[str, int] = {}
    (tmp / "data").mkdir(parents=True)
    for split in ("train", "test"):
        part = rows.filter(pl.col("split") == split)
        if part.height == 0:
            continue
        table = part.select(list(features)).to_arrow().cast(schema)
        split_bytes[split] = table.nbytes
        split_rows[split] = table.num_rows
        pieces = _shard_tables(table, max_bytes)
        for i, piece in enumerate(pieces):
            rel = f"data/{split}-{i:05d}-of-{len(pieces):05d}.parquet"
            pq.write_table(piece, tmp / rel, compression="zstd")
            shards.append(rel)
            if on_file is not None:
                on_file(tmp / rel, rel)
    (tmp / "README.md").write_text(card(split_rows, split_bytes))
    if on_file is not None:
        on_file(tmp / "README.md", "README.md")
    return shards


def _swap_into_place(tmp: Path, dataset_dir: Path) -> None:
    """Rename the finished folder over the old one; the old one is removed only afterwards."""
    old = None
    if dataset_dir.exists():
        old = dataset_dir.with_name(f".{dataset_dir.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dataset_dir, old)
    os.replace(tmp, dataset_dir)
    if old is not None:
        shutil.rmtree(old)


def push_row_images(rows: pl.DataFrame, registry: str, log: Callable[[str], None] = lambda _m: None):
    """Push every row's task image to ``registry``; (rows naming the pushed refs, PushReport)."""
    from factory.registry import push_images  # noqa: PLC0415
    from verifiers.engine import ensure_engine  # noqa: PLC0415

    client = ensure_engine(quiet=True)
    report = push_images(client, rows["image_name"].unique().to_list(), registry, log=log)
    mapping = report.mapping()
    return rows.with_columns(pl.col("image_name").replace_strict(mapping, return_dtype=pl.String)), report


def publish_run(run_dir: str | os.PathLike[str], dataset_dir: str | os.PathLike[str] | None = None,
                config: PublishConfig | None = None, log: Callable[[str], None] = lambda _m: None) -> PublishReport:
    """Curate RUN's instances and write them as a dataset folder; push to the Hub if configured.

    ``dataset_dir`` defaults to RUN/dataset. Raises a ``PublishError`` subclass on bad input;
    on a failed push, the local folder is complete and ``HubPushError.local_dataset`` names it.
    """
    from factory.card import render_card

    config = config or PublishConfig()
    run = Path(run_dir).resolve()
    if not config.license:
        config = dataclasses.replace(config, license=card_license(repo_identities(run)))
    target = Path(dataset_dir).resolve() if dataset_dir is not None else RunStore(run).dataset
    _check_target(target, run, config.overwrite)
    rows, num_in, creport, dreport = prepare_rows(run, config)

    pusher = None
    pushed_images = None
    if config.push_images:  # before anything is written: the rows must name the pushed references
        rows, pushed_images = push_row_images(rows, config.push_images, log=log)
    push_error: BaseException | None = None
    if config.push_to_hub:
        from factory.hub import HubPusher

        pusher = HubPusher(config.push_to_hub, private=config.private, token=config.hub_token,
                           endpoint=config.hub_endpoint)
        pusher.start(overwrite=config.overwrite)  # auth and repo problems surface before any local work

    def on_file(path: Path, rel: str) -> None:
        nonlocal push_error
        if pusher is None or push_error is not None:
            return
        try:
            pusher.add(path, rel)
        except HubPushError as exc:  # keep writing locally; report the push failure at the end
            push_error = exc

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes 0700; a published folder is for others to read
    try:
        def card(split_rows: dict[str, int], split_bytes: dict[str, int]) -> str:
            return render_card(rows, creport, dreport, config, split_rows, split_bytes, run_yield_dir=run)

        shards = _write_folder(rows, tmp, config, card, on_file)
        if pushed_images is not None:
            from factory.registry import write_images_file  # noqa: PLC0415

            on_file(write_images_file(tmp, pushed_images), "images.json")
        marker = {"run": str(run), "written_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                  "num_rows": rows.height, "shards": shards}
        (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n")
        _swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)

    report = PublishReport(run_dir=run, dataset_dir=target, num_instances=num_in, num_published=rows.height,
                           splits=dict(creport.splits), shards=shards, curation=creport, decontam=dreport,
                           images=pushed_images)
    if pusher is not None:
        if push_error is not None:
            raise HubPushError(
                f"local dataset complete at {target}, but uploading to {config.push_to_hub} failed and nothing "
                f"was committed: {push_error}. Re-run to resume (the Hub keeps what was uploaded).",
                local_dataset=target,
            ) from push_error
        try:
            report.hub = pusher.commit(target, shards + ["README.md"] + (["images.json"] if pushed_images else []))
        except HubPushError as exc:
            exc.local_dataset = target
            raise
    return report


def export_swebench(run_dir: str | os.PathLike[str], out_file: str | os.PathLike[str],
                    config: PublishConfig | None = None, split: str | None = None,
                    log: Callable[[str], None] = lambda _m: None) -> PublishReport:
    """Write curated instances as SWE-bench JSONL (F2P/P2P as JSON strings), atomically.

    ``split`` restricts to one split; by default every published row is written. Each row also
    carries what SWE-bench 5's harness needs to run it as is (``image``, ``eval_script``,
    ``log_parser``, ``eval_type``; ``factory.swebench_export``); our extra columns (image_name,
    source, ...) follow, and the harness ignores them.
    """
    from factory.swebench_export import swebench_fields  # noqa: PLC0415

    config = config or PublishConfig()
    run, rows, num_in, creport, dreport, pushed_images = _export_rows(run_dir, config, log)
    if split is not None:
        rows = rows.filter(pl.col("split") == split)
        if rows.height == 0:
            raise EmptyRunError(f"split {split!r} has no rows (splits: {creport.splits})")
    out = Path(out_file)
    extra = [c for c in rows.columns if c not in SWEBENCH_COLUMNS]
    with atomic_path(out) as tmp, tmp.open("w") as fh:
        for rec in rows.select(*SWEBENCH_COLUMNS, *extra).iter_rows(named=True):
            harness = swebench_fields(rec)
            rec["FAIL_TO_PASS"] = json.dumps(list(rec["FAIL_TO_PASS"]))
            rec["PASS_TO_PASS"] = json.dumps(list(rec["PASS_TO_PASS"]))
            rec = {**{k: rec[k] for k in SWEBENCH_COLUMNS}, **harness, **{k: rec[k] for k in extra}}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return PublishReport(run_dir=run, dataset_dir=None, num_instances=num_in, num_published=rows.height,
                         splits=dict(creport.splits), shards=[str(out)], curation=creport, decontam=dreport,
                         images=pushed_images)


def export_task_repo(run_dir: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                     config: PublishConfig | None = None, dataset: str | None = None, tag_local: bool = False,
                     log: Callable[[str], None] = lambda _m: None):
    """Write SWE-bench 5's task repository (``factory.swebench_export.write_task_repo``) for the run.

    ``dataset`` (the name in ``sweb.yaml``) defaults to --push-to-hub's OWNER/NAME, else
    ``taskfactory/<run folder name>``. Returns (PublishReport, TaskRepoReport).
    """
    from factory.swebench_export import write_task_repo  # noqa: PLC0415

    config = config or PublishConfig()
    run, rows, num_in, creport, dreport, pushed_images = _export_rows(run_dir, config, log)
    client = None
    if tag_local:
        from verifiers.engine import ensure_engine  # noqa: PLC0415

        client = ensure_engine(quiet=True)
    name = dataset or config.push_to_hub or f"taskfactory/{run.name}"
    trep = write_task_repo(rows.to_dicts(), out_dir, run, name, client=client, tag_local=tag_local,
                           overwrite=config.overwrite)
    report = PublishReport(run_dir=run, dataset_dir=trep.out_dir, num_instances=num_in, num_published=rows.height,
                           splits=dict(creport.splits), shards=[], curation=creport, decontam=dreport,
                           images=pushed_images)
    return report, trep
