"""``factory evaluate``: grade model patches on tasks, with SWE-bench's report layout.

DATASET is an ``instances.parquet``, a published dataset folder (``data/*.parquet``) or a Hub
dataset id; PREDICTIONS is SWE-bench's format: JSONL, a JSON list of objects with
``instance_id``, ``model_patch``, ``model_name_or_path``, or the JSON object keyed by instance id
that SWE-agent and mini-swe-agent write (``preds.json``). Writes, per model:

    RUN/evaluation/<model>/<instance_id>/{patch.diff, report.json, test_output.txt}
    RUN/evaluation/<model>.json        the summary (SWE-bench's report keys, plus ours)

A cached ``report.json`` short-circuits a re-run of that instance only while it was made from
the same patch (its SHA-256 is in the report): another patch under the same model name is graded
anew. A patch that does not apply is an error carrying git's message, as SWE-bench counts it; an
``instance_id`` the dataset lacks is named on the console and listed in ``unknown_ids``.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from factory import defaults
from factory.errors import ConfigError
from factory.store import RunStore, write_json

__all__ = ["load_instances", "load_predictions", "evaluate"]


def load_instances(dataset: str) -> dict[str, dict]:
    p = Path(dataset)
    rows: list[dict]
    if p.is_file() and p.suffix == ".parquet":
        import pyarrow.parquet as pq  # noqa: PLC0415

        rows = pq.read_table(p).to_pylist()
    elif p.is_file() and p.suffix in (".jsonl", ".json"):
        text = p.read_text()
        rows = json.loads(text) if p.suffix == ".json" else [json.loads(x) for x in text.splitlines() if x.strip()]
    elif p.is_dir() and sorted(p.glob("data/*.parquet")):
        # A local folder is read as it is now: datasets' cache can hold an older copy of it.
        import pyarrow.parquet as pq  # noqa: PLC0415

        rows = [r for shard in sorted(p.glob("data/*.parquet")) for r in pq.read_table(shard).to_pylist()]
    elif p.is_dir() or re.match(r"^[\w.-]+/[\w.-]+$", dataset):
        import datasets  # noqa: PLC0415

        dd = datasets.load_dataset(str(p) if p.is_dir() else dataset)
        rows = [r for split in dd.values() for r in split]
    else:
        raise ConfigError(f"{dataset}: not an instances.parquet, a dataset folder, or a Hub id (OWNER/NAME)")
    out = {}
    for r in rows:
        for k in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            if isinstance(r.get(k), str):  # the SWE-bench export writes them as JSON strings
                r[k] = json.loads(r[k])
        missing = [k for k in ("instance_id", "image_name", "base_commit", "FAIL_TO_PASS", "PASS_TO_PASS")
                   if k not in r]
        if missing:
            raise ConfigError(f"{dataset}: rows lack the columns {missing}")
        out[r["instance_id"]] = r
    return out


def load_predictions(path: Path) -> list[dict]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such predictions file")
    text = path.read_text()
    try:
        preds = json.loads(text)  # a JSON list, a preds.json object, or a one-line JSONL file
        if isinstance(preds, dict) and "instance_id" in preds:
            preds = [preds]
    except json.JSONDecodeError:
        try:
            preds = [json.loads(x) for x in text.splitlines() if x.strip()]
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not JSON, JSON lines or a preds.json object ({e})") from e
    if isinstance(preds, dict):  # SWE-agent / mini-swe-agent preds.json: {instance_id: prediction}
        preds = [{"instance_id": iid, **(p if isinstance(p, dict) else {"model_patch": p})}
                 for iid, p in preds.items()]
    if not isinstance(preds, list) or not all(isinstance(p, dict) for p in preds):
        raise ConfigError(f"{path}: predictions must be JSON objects (JSONL, a JSON list, or a preds.json object)")
    for i, p in enumerate(preds):
        if "instance_id" not in p or "model_name_or_path" not in p:
            raise ConfigError(f"{path}: prediction {i} lacks instance_id or model_name_or_path")
    return preds


def patch_digest(patch: str | None) -> str:
    return hashlib.sha256((patch or "").encode()).hexdigest()


def evaluate(dataset: str, predictions: Path, store: RunStore, *, workers: int = defaults.GRADE_WORKERS,
             timeout_s: float = defaults.GRADE_TIMEOUT_S,
             progress: Callable[[str, bool], None] | None = None,
             log: Callable[[str], None] = lambda _m: None) -> dict[str, dict]:
    """Grade every prediction; returns the summary per model (also written to disk)."""
    from verifiers.engine import ensure_engine  # noqa: PLC0415
    from verifiers.grade import grade_patch  # noqa: PLC0415
    from verifiers.sandbox import SandboxLimits  # noqa: PLC0415
    from verifiers.worker import LiveWorkers, sweep  # noqa: PLC0415

    instances = load_instances(dataset)
    preds = load_predictions(predictions)
    client = ensure_engine(quiet=True)
    session = f"evaluate-{secrets.token_hex(6)}"  # every grading container's label
    live = LiveWorkers()  # the graders' workers, shut when the run stops
    root = store.root / "evaluation"
    by_model: dict[str, list[dict]] = {}
    for p in preds:
        by_model.setdefault(str(p["model_name_or_path"]), []).append(p)

    summaries = {}
    for model, plist in by_model.items():
        mdir = root / _safe(model)
        results: dict[str, dict] = {}
        unknown = sorted({p["instance_id"] for p in plist if p["instance_id"] not in instances})
        if unknown:
            log(f"{model}: {len(unknown)} prediction(s) name instances {dataset} does not hold: "
                f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")

        def _one(p: dict, _mdir: Path = mdir) -> tuple[str, dict]:
            iid = p["instance_id"]
            idir = _mdir / _safe(iid)
            cached = idir / "report.json"
            digest = patch_digest(p.get("model_patch"))
            if cached.exists():
                rep = json.loads(cached.read_text())
                if rep.get(iid, {}).get("patch_sha256") == digest:
                    return iid, rep
            res = grade_patch(client, instances[iid], p.get("model_patch"), SandboxLimits(timeout_s=timeout_s),
                              session=session, live=live)
            idir.mkdir(parents=True, exist_ok=True)
            (idir / "patch.diff").write_text(p.get("model_patch") or "")
            (idir / "test_output.txt").write_text(res.test_output)
            rep = res.report()
            rep[iid]["patch_sha256"] = digest
            if res.error and not res.patch_applied and res.patch_exists and res.error.startswith("patch does not apply"):
                write_json(cached, rep)  # final, like any verdict of the patch itself
            elif not res.error:  # infrastructure errors are not cached: a re-run tries again
                write_json(cached, rep)
            else:
                cached.unlink(missing_ok=True)
            return iid, rep

        todo = [p for p in plist if p["instance_id"] in instances]
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        futures = [pool.submit(_one, p) for p in todo]
        try:
            for fut in futures:
                iid, rep = fut.result()
                results[iid] = rep[iid]
                if progress is not None:
                    progress(iid, rep[iid]["resolved"])
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM as one): grade nothing more. The queued grades are
            # cancelled and the running ones cut short: their workers shut (none starts another
            # container) and their containers removed (a cut grade is an infrastructure error: its
            # report is not cached, a re-run grades it again). Leaving the pool's block would
            # otherwise grade every queued prediction first.
            pool.shutdown(wait=False, cancel_futures=True)
            live.shut_all()
            sweep(client, session)
            # Only the grades that were running: a future cancelled by the shutdown never notifies
            # wait(), which would then sit out its whole timeout (it did: 15 s every stop).
            wait([f for f in futures if not f.cancelled()], timeout=15)
            sweep(client, session)
            raise
        pool.shutdown()
        submitted = sorted(p["instance_id"] for p in plist)
        empty = sorted(i for i, r in results.items() if not r["patch_exists"])
        errors = sorted(set(i for i, r in results.items() if r.get("error")) | set(unknown))
        resolved = sorted(i for i, r in results.items() if r["resolved"])
        completed = sorted(i for i, r in results.items() if r["patch_exists"] and not r.get("error"))
        unresolved = sorted(set(completed) - set(resolved))
        summary = {
            "total_instances": len(instances), "submitted_instances": len(submitted),
            "completed_instances": len(completed), "resolved_instances": len(resolved),
            "unresolved_instances": len(unresolved), "empty_patch_instances": len(empty),
            "error_instances": len(errors), "completed_ids": completed,
            "incomplete_ids": sorted(set(instances) - set(completed) - set(empty)),
            "empty_patch_ids": empty, "submitted_ids": submitted, "resolved_ids": resolved,
            "unresolved_ids": unresolved, "error_ids": errors, "unknown_ids": unknown,
            "tampered_ids": sorted(i for i, r in results.items() if r.get("tampered")),
            "suspicious_ids": sorted(i for i, r in results.items() if r.get("suspicious")),
            "schema_version": 3,
        }
        write_json(root / f"{_safe(model)}.json", summary)
        summaries[model] = summary
    return summaries


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "__", name)
