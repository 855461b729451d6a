"""Curation: from a run's accepted instances to the rows that get published.

One polars pipeline over a frame with the TaskInstance columns:

1. difficulty features computed from the patch (lines and hunks changed, files touched) and
   the validation (F2P count, test time);
2. filters from ``CurateConfig`` (a task image to start from, F2P count, patch size, files
   touched);
3. one task per fix: dedupe by the normalised code change (whitespace, ``index`` lines, hunk line
   numbers, and docs, changelogs and release notes do not count), so a PR task and its mirror
   are one task; the survivor is chosen by source (a real PR first, then its mirror, then
   combined and injected bugs) and then instance id, and ``CurationReport.duplicate_of`` says
   which row each dropped one duplicated;
4. per-repository and per-operator caps, choosing deterministically by a stable hash of the
   instance id (never Python's salted ``hash()``);
5. a held-out split by repository, so no repository is in two splits.

Every dropped row carries a reason, and the reasons become counts in ``CurationReport``.
Decontamination against named benchmarks lives in ``factory.decontam``; writing the dataset in
``factory.publish``. This module does not read or write files.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import polars as pl

__all__ = [
    "FEATURE_COLUMNS",
    "CurateConfig",
    "CurationReport",
    "assign_splits",
    "curate",
    "code_change_key",
    "normalise_patch",
    "patch_stats",
    "stable_unit",
]

# Columns that curation adds to every row, in this order.
FEATURE_COLUMNS: tuple[str, ...] = (
    "num_lines_added",
    "num_lines_removed",
    "num_lines_changed",
    "num_hunks",
    "num_files_changed",
    "test_s",
    "split",
)

_HUNK_RE = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


@dataclass(frozen=True)
class CurateConfig:
    """Filters, caps and the split. ``None`` means no limit."""

    min_f2p: int = 1
    require_image: bool = True  # drop rows without image_name/base_commit (runs validated without task images)
    max_f2p: int | None = None
    max_lines_changed: int | None = None
    max_files_changed: int | None = None
    max_per_repo: int | None = None
    max_per_operator: int | None = None
    dedupe: bool = True
    test_fraction: float = 0.2  # share of repositories held out as the test split
    split_salt: str = "taskfactory-split-v1"

    def __post_init__(self) -> None:
        if not 0.0 <= self.test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in [0, 1); got {self.test_fraction} (see --test-fraction)")
        for name in ("max_f2p", "max_lines_changed", "max_files_changed", "max_per_repo", "max_per_operator"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0 or None; got {v}")
        if self.max_f2p is not None and self.max_f2p < self.min_f2p:
            raise ValueError(f"max_f2p ({self.max_f2p}) is below min_f2p ({self.min_f2p})")


@dataclass
class CurationReport:
    """What curation did: counts in and out, and each dropped instance with its reason."""

    num_in: int = 0
    num_out: int = 0
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    dropped_ids: list[tuple[str, str]] = field(default_factory=list)  # (instance_id, reason)
    duplicate_of: dict[str, str] = field(default_factory=dict)  # dropped instance_id -> the one kept
    splits: dict[str, int] = field(default_factory=dict)  # split -> rows
    split_repos: dict[str, list[str]] = field(default_factory=dict)  # split -> repositories
    single_repo: bool = False  # everything went to train because there is one repository

    def drop(self, ids: list[str], reason: str) -> None:
        if ids:
            self.dropped[reason] = self.dropped.get(reason, 0) + len(ids)
            self.dropped_ids.extend((i, reason) for i in ids)


def stable_unit(*parts: str) -> float:
    """A number in [0, 1) from a sha256 of the parts: the same on every machine and run."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def normalise_patch(patch: str) -> str:
    """The patch's substance: file headers and changed lines, with volatile parts removed.

    Drops ``index`` lines and hunk line numbers (a rebased copy of a fix is the same fix) and
    trailing whitespace; keeps context-free ``+``/``-`` lines and the file names they belong to.
    """
    out = []
    for line in patch.splitlines():
        if line.startswith(("index ", "similarity index", "new file mode", "deleted file mode", "old mode", "new mode")):
            continue
        if _HUNK_RE.match(line):
            out.append("@@")
            continue
        if line.startswith(("diff --git", "+++", "---", "+", "-")):
            out.append(line.rstrip())
    return "\n".join(out)


# Files that describe a change rather than make it: a PR that adds a release note is the same fix
# as its mirror, which carries code only.
_NOT_CODE_RE = re.compile(
    r"(^|/)(docs?|documentation|releasenotes|release-notes|changelog\.d|changes|newsfragments|news|\.changeset)/"
    r"|\.(md|rst|txt|adoc)$|(^|/)(changelog|changes|history|news|authors|contributors)([._-][^/]*)?$",
    re.IGNORECASE)
_SOURCE_RANK = {"pr": 0, "pr_mirror": 1, "combined": 2, "mutation": 3}


def code_change_key(patch: str) -> str:
    """A digest of the patch's code change: ``normalise_patch`` of its files that are not docs,
    changelogs or release notes (all of it when nothing else is left)."""
    sections = re.split(r"(?m)^(?=diff --git )", patch)
    code = [sec for sec in sections if sec.startswith("diff --git ")
            and not _NOT_CODE_RE.search(sec.split("\n", 1)[0].split(" b/", 1)[-1])]
    body = "".join(code) if code else patch
    return hashlib.sha256(normalise_patch(body).encode()).hexdigest()


def patch_stats(patch: str) -> tuple[int, int, int, int]:
    """(lines added, lines removed, hunks, files) of a unified diff."""
    added = removed = hunks = 0
    files: set[str] = set()
    for line in patch.splitlines():
        if line.startswith("diff --git "):
            files.add(line.split(" b/", 1)[-1])
        elif line.startswith("+++ "):
            name = line[4:].strip()
            if name != "/dev/null":
                files.add(name.removeprefix("b/"))
        elif line.startswith("--- "):
            name = line[4:].strip()
            if name != "/dev/null":
                files.add(name.removeprefix("a/"))
        elif line.startswith("@@"):
            hunks += 1
        elif line.startswith("+"):
            added += 1
        elif line.startswith("-"):
            removed += 1
    return added, removed, hunks, len(files)


def assign_splits(repos: list[str], test_fraction: float, salt: str) -> dict[str, str]:
    """Repository -> split, deterministic from the repository names and the salt.

    Repositories are ordered by a stable hash of (salt, name); the first
    ``round(n * test_fraction)`` of them (at least one, never all) are ``test``, the rest
    ``train``. So the held-out share is predictable even with a handful of repositories. A
    repository's split can change only when the set of repositories changes (keep the salt and
    the repository list fixed across versions of a dataset). With a single repository
    everything is train: nothing can be held out without sharing a repository.
    """
    unique = sorted(set(repos))
    if len(unique) < 2 or test_fraction <= 0:
        return {r: "train" for r in unique}
    order = sorted(unique, key=lambda r: (stable_unit(salt, r), r))
    num_test = min(len(unique) - 1, max(1, round(len(unique) * test_fraction)))
    held_out = set(order[:num_test])
    return {r: ("test" if r in held_out else "train") for r in unique}


def _add_features(df: pl.DataFrame) -> pl.DataFrame:
    stats = pl.col("patch").map_elements(
        lambda p: dict(zip(("a", "r", "h", "f"), patch_stats(p), strict=True)),
        return_dtype=pl.Struct({"a": pl.Int64, "r": pl.Int64, "h": pl.Int64, "f": pl.Int64}),
    )
    df = df.with_columns(stats.alias("_stats"))
    df = df.with_columns(
        pl.col("_stats").struct.field("a").alias("num_lines_added"),
        pl.col("_stats").struct.field("r").alias("num_lines_removed"),
        (pl.col("_stats").struct.field("a") + pl.col("_stats").struct.field("r")).alias("num_lines_changed"),
        pl.col("_stats").struct.field("h").alias("num_hunks"),
        pl.col("_stats").struct.field("f").alias("num_files_changed"),
        # The validation's own counts can be stale in hand-edited runs; the lists are the truth.
        pl.col("FAIL_TO_PASS").list.len().cast(pl.Int64).alias("num_f2p"),
        pl.col("PASS_TO_PASS").list.len().cast(pl.Int64).alias("num_p2p"),
    ).drop("_stats")
    if "test_s" not in df.columns:
        df = df.with_columns(pl.col("validation_s").alias("test_s"))
    else:
        df = df.with_columns(pl.col("test_s").fill_null(pl.col("validation_s")))
    return df


def _drop_where(df: pl.DataFrame, mask: pl.Expr, reason: str, report: CurationReport) -> pl.DataFrame:
    gone = df.filter(mask)
    report.drop(gone["instance_id"].to_list(), reason)
    return df.filter(~mask)


def _cap(df: pl.DataFrame, by: str, cap: int, reason: str, report: CurationReport, salt: str) -> pl.DataFrame:
    ranked = df.with_columns(
        pl.col("instance_id").map_elements(lambda i: stable_unit(salt, by, i), return_dtype=pl.Float64).alias("_key")
    ).with_columns(pl.col("_key").rank("ordinal").over(by).alias("_rank"))
    return _drop_where(ranked, pl.col("_rank") > cap, reason, report).drop("_key", "_rank")


def curate(df: pl.DataFrame, config: CurateConfig, test_s: pl.DataFrame | None = None) -> tuple[pl.DataFrame, CurationReport]:
    """Filter, dedupe, cap and split; return the kept rows (with ``FEATURE_COLUMNS``) and a report.

    ``df`` has the TaskInstance columns. ``test_s`` is an optional frame (instance_id, test_s) of
    per-instance test time from the validations; where it is missing, ``validation_s`` is used.
    The output is sorted by (split, repo, instance_id), so the same input always publishes the
    same bytes.
    """
    report = CurationReport(num_in=df.height)
    if test_s is not None and test_s.height:
        df = df.join(test_s.unique("instance_id", keep="first"), on="instance_id", how="left")
    df = _add_features(df).sort("repo", "instance_id")

    if config.require_image:
        no_image = (pl.col("image_name").str.strip_chars() == "") | (pl.col("base_commit").str.strip_chars() == "")
        df = _drop_where(df, no_image, "no_task_image", report)
    df = _drop_where(df, pl.col("num_f2p") < config.min_f2p, "too_few_f2p", report)
    if config.max_f2p is not None:
        df = _drop_where(df, pl.col("num_f2p") > config.max_f2p, "too_many_f2p", report)
    if config.max_lines_changed is not None:
        df = _drop_where(df, pl.col("num_lines_changed") > config.max_lines_changed, "patch_too_large", report)
    if config.max_files_changed is not None:
        df = _drop_where(df, pl.col("num_files_changed") > config.max_files_changed, "too_many_files", report)

    if config.dedupe:
        df = df.with_columns(
            pl.col("patch").map_elements(code_change_key, return_dtype=pl.String).alias("_norm"),
            pl.col("source").replace_strict(_SOURCE_RANK, default=len(_SOURCE_RANK), return_dtype=pl.Int64)
            .alias("_rank"),
        ).sort("_norm", "_rank", "repo", "instance_id")
        df = df.with_columns(pl.col("instance_id").first().over("_norm").alias("_kept"))
        dup = pl.col("instance_id") != pl.col("_kept")  # the best source, then (repo, instance_id), wins
        report.duplicate_of.update(dict(df.filter(dup).select("instance_id", "_kept").iter_rows()))
        df = _drop_where(df, dup, "duplicate_patch", report)
        df = df.drop("_norm", "_rank", "_kept").sort("repo", "instance_id")

    if config.max_per_repo is not None:
        df = _cap(df, "repo", config.max_per_repo, "repo_cap", report, config.split_salt)
    if config.max_per_operator is not None:
        # Rows without an operator (pull requests) are capped as their own group, by source.
        df = df.with_columns(
            pl.when(pl.col("operator") == "").then(pl.col("source")).otherwise(pl.col("operator")).alias("_op")
        )
        df = _cap(df, "_op", config.max_per_operator, "operator_cap", report, config.split_salt).drop("_op")

    repos = df["repo"].unique().to_list()
    split_of = assign_splits(repos, config.test_fraction, config.split_salt)
    report.single_repo = len(repos) == 1
    df = df.with_columns(pl.col("repo").replace_strict(split_of, return_dtype=pl.String, default="train").alias("split"))
    df = df.sort("split", "repo", "instance_id", descending=[True, False, False])  # train first
    for name, group in df.group_by("split", maintain_order=True):
        split_name = name[0]
        report.splits[split_name] = group.height
        report.split_repos[split_name] = sorted(group["repo"].unique().to_list())
    report.num_out = df.height
    return df, report
