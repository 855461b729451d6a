"""Render published tasks into token samples: repair (prompt -> gold patch) and fill-in-the-middle.

Reads any dataset with the TaskInstance columns (local folder or Hub id, `datasets.load_dataset`).
Only the documented columns are read; `start_files` holds the broken start state of every file the
gold `patch` touches. What this module is not for: packing (`trainer.packing`) or batching.

A task that cannot be rendered (a patch that does not apply, a file too long) is dropped with a
reason, counted in `RenderStats.dropped`; only an unusable dataset raises (`trainer.errors`).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field

from trainer.config import DataConfig
from trainer.errors import DatasetError, EmptySplitError, MissingColumnsError
from trainer.patches import PatchError, apply_file_patch, parse_patch
from trainer.tokenizer import EOT, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, IM_END, IM_START

__all__ = ["REQUIRED_COLUMNS", "RenderStats", "Sample", "Task", "fixed_files", "load_splits", "load_trajectory_texts",
           "mix", "render_fim", "render_repair", "tasks_from_split", "text_corpus", "tokenize_tasks",
           "trajectory_sample"]

REQUIRED_COLUMNS = ("instance_id", "repo", "problem_statement", "patch", "start_files")
SYSTEM_PROMPT = "You repair bugs in software repositories. Reply with a unified diff that fixes the issue."


@dataclass(frozen=True)
class Task:
    instance_id: str
    repo: str
    problem_statement: str
    patch: str
    start_files: tuple[tuple[str, str], ...]  # (path, broken content)


@dataclass(frozen=True)
class Sample:
    """Token ids and, per token, whether it is a prediction target.

    Trajectories (multi-turn) also give ``head``, the length of the system turn that holds the tool
    definitions, and ``breaks``, where each later turn starts: packing splits a trajectory longer
    than a row only at turn boundaries and repeats the head at the front of every piece."""
    ids: tuple[int, ...]
    loss: tuple[bool, ...]
    kind: str  # "repair" | "fim" | "trajectory"
    head: int = 0
    breaks: tuple[int, ...] = ()


@dataclass
class RenderStats:
    num_tasks: int = 0
    num_repair: int = 0
    num_fim: int = 0
    dropped: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict:
        return {"num_tasks": self.num_tasks, "num_repair": self.num_repair, "num_fim": self.num_fim,
                **{f"dropped_{k}": v for k, v in sorted(self.dropped.items())}}


def load_splits(dataset: str) -> dict:
    """`{split: datasets.Dataset}` for a local folder or Hub id, each checked for the needed columns.

    `train` must exist and be non-empty; any other present split (the held-out `test`) must be
    non-empty too.
    """
    import datasets

    try:
        dd = datasets.load_dataset(dataset)
    except FileNotFoundError as e:
        raise DatasetError(f"cannot load dataset {dataset!r}: {e}") from e
    except ValueError as e:  # datasets refuses a split whose shards hold no rows
        m = re.search(r'Instruction "([^"]+)" corresponds to no data', str(e))
        if m is None:
            raise
        raise EmptySplitError(f"dataset {dataset!r} split {m.group(1)!r} has no rows") from e
    if not isinstance(dd, datasets.DatasetDict):
        dd = datasets.DatasetDict({"train": dd})
    if "train" not in dd:
        raise EmptySplitError(f"dataset {dataset!r} has no 'train' split (splits: {', '.join(dd) or 'none'})")
    for name, split in dd.items():
        missing = [c for c in REQUIRED_COLUMNS if c not in split.column_names]
        if missing:
            raise MissingColumnsError(name, missing, list(split.column_names))
        if len(split) == 0:
            raise EmptySplitError(f"dataset {dataset!r} split {name!r} has no rows")
    return dict(dd)


def tasks_from_split(split) -> list[Task]:
    tasks = []
    for row in split.select_columns(list(REQUIRED_COLUMNS)):
        files = tuple((f["path"], f["content"]) for f in (row["start_files"] or []))
        tasks.append(Task(row["instance_id"], row["repo"], row["problem_statement"] or "", row["patch"] or "", files))
    return tasks


def fixed_files(task: Task) -> dict[str, str]:
    """Apply the gold patch to the start files: {path: fixed content} (deleted files left out)."""
    start = dict(task.start_files)
    out = {}
    for fp in parse_patch(task.patch):
        if fp.new_path is None:
            continue
        old = start.get(fp.old_path, "") if fp.old_path else ""
        if fp.old_path and fp.old_path not in start:
            raise PatchError(f"start_files lacks {fp.old_path}, which the patch modifies")
        out[fp.new_path] = apply_file_patch(old, fp)
    return out


def render_repair(task: Task, max_file_chars: int) -> tuple[str, str]:
    """(prompt, target): problem statement and broken files in, the gold patch out (chat format)."""
    parts = [task.problem_statement.strip(), "", f"Repository: {task.repo}"]
    for path, content in task.start_files:
        if len(content) > max_file_chars:
            continue
        parts += ["", f"### {path}", "```", content.rstrip("\n"), "```"]
    user = "\n".join(parts)
    prompt = (f"{IM_START}system\n{SYSTEM_PROMPT}{IM_END}\n"
              f"{IM_START}user\n{user}{IM_END}\n{IM_START}assistant\n")
    return prompt, f"{task.patch}{IM_END}"


def _stable_int(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()[:8], "big")


def render_fim(task: Task, seed: int) -> list[tuple[str, str, str]]:
    """(prefix, suffix, middle) per fixed file; the middle is one repaired region (a hunk's new lines),
    chosen by a stable hash of (seed, instance, path)."""
    fixed = fixed_files(task)
    out = []
    for fp in parse_patch(task.patch):
        if fp.new_path is None or not fp.hunks:
            continue
        lines = fixed[fp.new_path].splitlines(keepends=True)
        hunk = fp.hunks[_stable_int(seed, task.instance_id, fp.new_path) % len(fp.hunks)]
        start, end = hunk.new_changed_range()
        start, end = min(start, len(lines)), min(end, len(lines))
        out.append(("".join(lines[:start]), "".join(lines[end:]), "".join(lines[start:end])))
    return out


def tokenize_tasks(tasks: list[Task], tokenizer, cfg: DataConfig, seed: int) -> tuple[list[Sample], RenderStats]:
    """Repair and FIM samples for `tasks`, in dataset order, with drop reasons counted."""
    stats = RenderStats(num_tasks=len(tasks))
    sid = {t: tokenizer.convert_tokens_to_ids(t) for t in (EOT, FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE)}
    samples: list[Sample] = []

    def enc(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"] if text else []

    for task in tasks:
        if not task.patch.strip():
            stats.dropped["empty_patch"] += 1
            continue
        try:
            fims = render_fim(task, seed) if cfg.fim_rate > 0 else []
        except PatchError:
            stats.dropped["patch_does_not_apply"] += 1
            continue
        omitted = sum(len(content) > cfg.max_file_chars for _, content in task.start_files)
        if omitted:
            stats.dropped["file_omitted_from_prompt_too_long"] += omitted
        prompt, target = render_repair(task, cfg.max_file_chars)
        p, t = enc(prompt), enc(target) + [sid[EOT]]
        samples.append(Sample(tuple(p + t), tuple([False] * len(p) + [True] * len(t)), "repair"))
        stats.num_repair += 1
        for i, (prefix, suffix, middle) in enumerate(fims):
            if cfg.fim_rate < 1 and (_stable_int(seed, task.instance_id, "fim", i) % 10_000) >= cfg.fim_rate * 10_000:
                continue
            head = [sid[FIM_PREFIX]] + enc(prefix) + [sid[FIM_SUFFIX]] + enc(suffix) + [sid[FIM_MIDDLE]]
            tail = enc(middle) + [sid[EOT]]
            head_loss = cfg.fim_loss == "all"
            samples.append(Sample(tuple(head + tail), tuple([head_loss] * len(head) + [True] * len(tail)), "fim"))
            stats.num_fim += 1
    return samples, stats


def text_corpus(tasks: list[Task]):
    """Texts a tokenizer is trained on: statements, start files, fixed files and patches."""
    for task in tasks:
        yield task.problem_statement
        yield task.patch
        for _, content in task.start_files:
            yield content


# -- trajectories (multi-turn tool use) -----------------------------------------------------------

TRAJECTORY_TEXT_PREFIX = "text_"


def load_trajectory_texts(dataset: str, formats: list[str] | None = None) -> list[str]:
    """The rendered texts of a trajectory dataset (``rollouts`` writes it: one ``text_<format>``
    column per tool-call format), every row in every chosen format (default: every format present)."""
    import datasets

    try:
        dd = datasets.load_dataset(dataset)
    except FileNotFoundError as e:
        raise DatasetError(f"cannot load trajectory dataset {dataset!r}: {e}") from e
    split = dd["train"] if isinstance(dd, datasets.DatasetDict) else dd
    present = [c for c in split.column_names if c.startswith(TRAJECTORY_TEXT_PREFIX)]
    if not present:
        raise MissingColumnsError("train", ["text_<format>"], list(split.column_names))
    cols = present if not formats else [TRAJECTORY_TEXT_PREFIX + f.replace("-", "_") for f in formats]
    missing = [c for c in cols if c not in present]
    if missing:
        raise MissingColumnsError("train", missing, list(split.column_names))
    if len(split) == 0:
        raise EmptySplitError(f"trajectory dataset {dataset!r} has no rows")
    return [row[c] for row in split.select_columns(cols) for c in cols]


def trajectory_sample(text: str, tokenizer) -> Sample:
    """One multi-turn sample: targets are the assistant turns' bodies and their end marker only."""
    def enc(t: str) -> list[int]:
        return tokenizer(t, add_special_tokens=False)["input_ids"] if t else []

    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    ids: list[int] = []
    loss: list[bool] = []
    starts: list[int] = []
    for piece in text.split(IM_START)[1:]:
        starts.append(len(ids))
        header, _, rest = piece.partition("\n")
        body = rest[:-len(IM_END) - 1] if rest.endswith(IM_END + "\n") else rest
        head_ids = enc(IM_START + header + "\n")
        if header == "assistant":
            parts = [(head_ids, False), (enc(body) + [im_end], True), (enc("\n"), False)]
        else:
            parts = [(head_ids + enc(body) + [im_end] + enc("\n"), False)]
        for p, target in parts:
            ids += p
            loss += [target] * len(p)
    ids.append(tokenizer.convert_tokens_to_ids(EOT))
    loss.append(False)
    head = starts[1] if len(starts) > 1 else len(ids)
    return Sample(tuple(ids), tuple(loss), "trajectory", head, tuple(starts[1:]))


def mix(sources: dict[str, tuple[list[Sample], float]], seed: int) -> tuple[list[Sample], dict]:
    """Samples of every source so that each source's share of the tokens is its weight's share.

    The total stays the sources' total; a source above its share loses a seeded subset of its
    samples, one below it is repeated (whole copies, then a seeded subset)."""
    tokens = {n: sum(len(s.ids) for s in ss) for n, (ss, _) in sources.items()}
    total = sum(tokens.values())
    wsum = sum(w for n, (ss, w) in sources.items() if ss and w > 0)
    if wsum <= 0:
        raise DatasetError("mixture weights are all zero (or every source is empty)")
    out: list[Sample] = []
    stats: dict = {}
    for name, (ss, w) in sources.items():
        target = total * w / wsum if ss and w > 0 else 0.0
        chosen: list[Sample] = []
        if target > 0:
            reps = int(target // tokens[name])
            chosen = list(ss) * reps
            left = target - reps * tokens[name]
            order = sorted(range(len(ss)), key=lambda i: _stable_int(seed, name, i))
            acc = 0
            for i in order:
                if acc >= left:
                    break
                chosen.append(ss[i])
                acc += len(ss[i].ids)
        got = sum(len(s.ids) for s in chosen)
        out += chosen
        stats[name] = {"weight": w, "samples": len(ss), "tokens": tokens[name], "mixed_samples": len(chosen),
                       "mixed_tokens": got}
    mixed = sum(v["mixed_tokens"] for v in stats.values()) or 1
    for v in stats.values():
        v["share"] = round(v["mixed_tokens"] / mixed, 4)
    return out, stats
