"""Oracle trajectories for a run's tasks, and the Hugging Face dataset that carries them.

``build_trajectories`` solves each task (``direct`` and ``recovery`` variants) in sessions run in
parallel, keeps reward-1 trajectories as ``OUT/trajectories/<instance>.<variant>.json`` (a rerun
skips what exists) and lists the rest with why in ``OUT/skipped.json``.
``write_dataset`` writes ``OUT/data/train-*.parquet`` and a card: one row per trajectory with
``instance_id, variant, source, reward, num_turns, num_calls, tools`` (JSON schema list),
``messages`` (the record's messages as JSON) and ``text_<format>`` per format (``-`` → ``_``),
the trainer's input (``trainer.data.trajectory_samples``).
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from factory.errors import FactoryError
from rollouts.record import Trajectory
from rollouts.templates import FORMATS, AmbiguousText, render

__all__ = ["build_trajectories", "load_trajectories", "text_column", "write_dataset"]

VARIANTS = ("direct", "recovery")


def text_column(fmt: str) -> str:
    return "text_" + fmt.replace("-", "_")


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def build_trajectories(rows: list[dict], out: Path, runtime, variants=VARIANTS, workers: int = 2, seed: int = 0,
                       replay_check: bool = True, progress=None) -> tuple[list[Trajectory], dict[str, str]]:
    """(kept trajectories, {"<instance>.<variant>": why not}) for ``rows``; ``progress(done, total, key)``.

    With ``replay_check`` each kept trajectory is replayed in a fresh session and kept only if the
    replay's reward is 1 too."""
    from rollouts.oracle import Unsolved, replay, solve  # noqa: PLC0415

    tdir = out / "trajectories"
    tdir.mkdir(parents=True, exist_ok=True)
    skipped_path = out / "skipped.json"
    skipped: dict[str, str] = json.loads(skipped_path.read_text()) if skipped_path.exists() else {}
    jobs = [(r, v) for r in rows for v in variants]
    kept: list[Trajectory] = []
    lock = threading.Lock()

    def one(row: dict, variant: str) -> tuple[str, Trajectory | None, str]:
        key = f"{row['instance_id']}.{variant}"
        path = tdir / f"{key}.json"
        if path.exists():
            return key, Trajectory.from_json(path.read_text()), ""
        try:
            with runtime.open(row) as s:
                t = solve(s, row, variant, seed)
        except Unsolved as e:
            return key, None, str(e)
        except FactoryError as e:
            return key, None, f"infrastructure: {e}"
        if replay_check:
            reward, diffs = replay(runtime, row, t)
            if reward != 1.0:
                return key, None, f"replay gave reward {reward:g}"
            t.meta["replay_reward"] = reward
            t.meta["replay_differences"] = diffs
        _atomic(path, json.dumps(t.to_dict(), ensure_ascii=False, indent=1))
        return key, t, ""

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futs = [pool.submit(one, r, v) for r, v in jobs]
        for fut in as_completed(futs):
            key, t, why = fut.result()
            with lock:
                done += 1
                if t is not None:
                    kept.append(t)
                    skipped.pop(key, None)
                else:
                    skipped[key] = why
                _atomic(skipped_path, json.dumps(dict(sorted(skipped.items())), indent=1))
            if progress:
                progress(done, len(jobs), key)
    kept.sort(key=lambda t: (t.meta.get("instance_id", ""), t.meta.get("variant", "")))
    return kept, skipped


def load_trajectories(folder: Path) -> list[Trajectory]:
    """Every ``*.json`` record under ``folder`` (or ``folder/trajectories``), sorted by file name."""
    folder = Path(folder)
    if (folder / "trajectories").is_dir():
        folder = folder / "trajectories"
    return [Trajectory.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))]


def write_dataset(trajs: list[Trajectory], out: Path, formats: list[str], name: str = "trajectories") -> Path:
    """A Hub-layout dataset folder (``data/train-00000-of-00001.parquet`` + README.md)."""
    import datasets  # noqa: PLC0415

    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise FactoryError(f"unknown format(s) {', '.join(unknown)}; known: {', '.join(FORMATS)}")
    if not trajs:
        raise FactoryError("no trajectories to write")
    rows = []
    unrendered: list[str] = []
    for t in trajs:
        d = t.to_dict()
        row = {"instance_id": t.meta.get("instance_id", ""), "variant": t.meta.get("variant", ""),
               "source": t.meta.get("source", ""), "reward": float(t.meta.get("reward", 0.0) or 0.0),
               "num_turns": len(t.messages), "num_calls": t.num_calls,
               "tools": json.dumps(d["tools"], ensure_ascii=False),
               "messages": json.dumps(d["messages"], ensure_ascii=False)}
        for f in formats:
            try:
                row[text_column(f)] = render(f, t)
            except AmbiguousText as e:  # this format cannot hold this trajectory unambiguously
                row[text_column(f)] = None
                unrendered.append(f"{row['instance_id']}.{row['variant']}: {e}")
        rows.append(row)
    feats = datasets.Features({
        "instance_id": datasets.Value("string"), "variant": datasets.Value("string"), "source": datasets.Value("string"),
        "reward": datasets.Value("float64"), "num_turns": datasets.Value("int64"), "num_calls": datasets.Value("int64"),
        "tools": datasets.Value("string"), "messages": datasets.Value("string"),
        **{text_column(f): datasets.Value("string") for f in formats}})
    ds = datasets.Dataset.from_list(rows, features=feats)
    if unrendered:  # said beside the data: a null text column means "this format cannot hold it"
        (out / "unrendered.json").parent.mkdir(parents=True, exist_ok=True)
        (out / "unrendered.json").write_text(json.dumps(unrendered, indent=1))
    (out / "data").mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out / "data" / "train-00000-of-00001.parquet"))
    cols = ", ".join(f"`{text_column(f)}`" for f in formats)
    (out / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: data/train-*\n---\n\n"
        f"# {name}\n\n{len(rows)} agent trajectories on verified coding tasks (taskfactory `rollouts`), every one "
        f"graded reward {min(r['reward'] for r in rows):g} or better by the hardened grader.\n\n"
        f"Columns: `instance_id`, `variant` (direct / recovery / imported), `source`, `reward`, `num_turns`, "
        f"`num_calls`, `tools` (JSON schema list), `messages` (JSON: role, content, tool_calls, name), and the "
        f"whole trajectory rendered as one training text per tool-call format: {cols}.\n")
    return out
