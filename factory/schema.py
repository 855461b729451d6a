"""The data model: the records every stage reads and writes, and their arrow schemas.

Records are frozen dataclasses. Each record type that lands in a parquet file declares its arrow
schema next to it (``ARROW_SCHEMAS``), and ``to_table`` / ``from_table`` convert lists of records
to and from ``pyarrow.Table`` through that one schema, so a column never changes type between
the writer and the reader.

This module imports nothing of ours: it is the contract between the stage packages.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import typing
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa

__all__ = [
    "ARROW_SCHEMAS",
    "BaselineEntry",
    "BaselineSummary",
    "Candidate",
    "CoverageEntry",
    "EnvImage",
    "EnvSpec",
    "FileContent",
    "Outcome",
    "RepoSpec",
    "RunStatus",
    "TaskInstance",
    "TestResult",
    "TestRun",
    "Validation",
    "VerdictFile",
    "content_hash",
    "from_table",
    "to_table",
]

Outcome = Literal["passed", "failed", "error", "skipped", "xfail", "xpass"]
OUTCOMES: tuple[str, ...] = typing.get_args(Outcome)
# A run's status says whether the *infrastructure* did its job; a test's outcome is separate.
RunStatus = Literal["ok", "timeout", "oom", "infra_error", "no_tests", "collection_error", "aborted"]
Origin = Literal["pr", "pr_mirror", "mutation", "combined"]


def content_hash(*parts: Any, length: int = 16) -> str:
    """A stable hex digest of JSON-serialisable parts (never Python's salted ``hash()``)."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


# ---------------------------------------------------------------------------------------------
# Repositories and environments
# ---------------------------------------------------------------------------------------------

_PYPI_RE = re.compile(r"^pypi:(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!_-]+)$")
# npm:NAME@VERSION, NAME possibly scoped (@scope/name); an exact version, never a range or a tag.
_NPM_RE = re.compile(r"^npm:(?P<name>(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*)@(?P<version>\d+\.\d+\.\d+"
                     r"(?:[-+][0-9A-Za-z.+-]+)?)$")


@dataclass(frozen=True)
class RepoSpec:
    """Where code comes from, and overrides that win over what the verifiers detect.

    ``source`` is a local path, a git URL, ``pypi:NAME==VERSION`` (an sdist that ships its
    tests, unpacked into a fresh git repository), or ``npm:NAME@VERSION`` (likewise, the package
    tarball from the npm registry).
    """

    source: str
    name: str | None = None
    commit: str | None = None
    python: str = "3.11"
    install: tuple[str, ...] | None = None  # shell commands run in /testbed; replaces detection
    pre_install: tuple[str, ...] = ()  # commands run before detection's own (extra pins, ...)
    test_cmd: str | None = None  # replaces the default `python -m pytest`
    test_paths: tuple[str, ...] = ()  # restricts the suite to these paths
    system_packages: tuple[str, ...] = ()
    test_file_patterns: tuple[str, ...] = ()  # extra globs that mark test files

    @property
    def kind(self) -> Literal["pypi", "npm", "git", "path"]:
        if self.source.startswith("pypi:"):
            return "pypi"
        if self.source.startswith("npm:"):
            return "npm"
        if re.match(r"^(https?|git|ssh|file)://", self.source) or self.source.startswith("git@"):
            return "git"
        return "path"

    @property
    def pypi(self) -> tuple[str, str]:
        m = _PYPI_RE.match(self.source)
        if not m:
            raise ValueError(f"not a pypi spec (expected pypi:NAME==VERSION): {self.source!r}")
        return m["name"], m["version"]

    @property
    def npm(self) -> tuple[str, str]:
        m = _NPM_RE.match(self.source)
        if not m:
            raise ValueError(f"not an npm spec (expected npm:NAME@VERSION, an exact version): {self.source!r}")
        return m["name"], m["version"]

    @property
    def key(self) -> str:
        """A file-system-safe, human-readable name for the repository's run-directory folder."""
        if self.name:
            base = self.name
        elif self.kind in ("pypi", "npm"):
            n, v = self.pypi if self.kind == "pypi" else self.npm
            base = f"{n.lstrip('@')}-{v}"
        else:
            base = self.source.rstrip("/").removesuffix(".git").rsplit("/", 1)[-1] or "repo"
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "repo"
        return f"{safe}-{content_hash(self.source, self.commit, length=8)}"

    @classmethod
    def parse(cls, spec: str | dict[str, Any]) -> RepoSpec:
        """A RepoSpec from a CLI string or a config mapping; unknown keys are an error."""
        if isinstance(spec, str):
            return cls(source=spec)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"unknown repo spec keys {sorted(unknown)}; known: {sorted(known)}")
        if "source" not in spec:
            raise ValueError("a repo spec needs 'source' (a path, git URL or pypi:NAME==VERSION)")
        kw = dict(spec)
        for k in ("install", "pre_install", "test_paths", "system_packages", "test_file_patterns"):
            if k in kw and kw[k] is not None:
                v = kw[k]
                kw[k] = (v,) if isinstance(v, str) else tuple(v)
        if kw.get("python") is not None:
            kw["python"] = str(kw["python"])
        return cls(**kw)


@dataclass(frozen=True)
class EnvSpec:
    """How one repository snapshot is installed: everything that determines its image."""

    repo: str  # RepoSpec.key
    commit: str  # the commit whose tree is at /testbed
    base_image: str  # the base image's id (content), not only its tag
    python: str
    install: tuple[str, ...]  # shell commands, run in /testbed
    detected_from: tuple[str, ...]  # which files the recipe came from, for the log
    test_cmd: str
    system_packages: tuple[str, ...] = ()
    plugin_digest: str = ""  # our pytest report plugin is baked in; its content counts
    dockerfile_digest: str = ""  # how the image is assembled (the verifiers' template) counts too
    language: str = "python"  # "javascript", "typescript", "go": which verifiers.langs module builds it
    env: tuple[str, ...] = ()  # "KEY=VALUE" set for install and tests (an sdist's version for scm tools);
    # counted through dockerfile_digest, which renders it

    @property
    def tag(self) -> str:
        digest = content_hash(
            self.base_image, self.repo, self.commit, self.install, self.system_packages,
            self.test_cmd, self.plugin_digest, self.dockerfile_digest, length=20,
        )
        return f"taskfactory/env:{digest}"


@dataclass(frozen=True)
class EnvImage:
    """A built environment image and what was learned building it (``env.json``)."""

    tag: str
    image_id: str
    spec: EnvSpec
    build_seconds: float
    cached: bool
    pip_freeze: tuple[str, ...] = ()
    install_log_tail: str = ""
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)  # truth checks after install (verifiers.truth)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EnvImage:
        spec = data["spec"]
        spec = EnvSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.items()})
        return cls(**{**data, "spec": spec, "pip_freeze": tuple(data.get("pip_freeze", ()))})


# ---------------------------------------------------------------------------------------------
# Test runs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TestResult:
    """One test: its canonical pytest node id, exactly as ``pytest --collect-only -q`` prints it."""

    __test__ = False  # keep pytest from collecting this class

    nodeid: str
    outcome: Outcome
    duration_s: float = 0.0
    message: str = ""  # the failure's one-line summary, for problem statements


@dataclass(frozen=True)
class TestRun:
    """One execution of a test command in a sandbox.

    ``status`` is about the infrastructure (did the run happen and finish?); only when it is
    ``ok`` do the results say anything about the code under test.
    """

    __test__ = False

    status: RunStatus
    exit_code: int | None
    wall_s: float
    results: tuple[TestResult, ...] = ()
    collected: tuple[str, ...] = ()
    log_tail: str = ""
    reason: str = ""

    def by_nodeid(self) -> dict[str, TestResult]:
        return {r.nodeid: r for r in self.results}

    def outcomes(self) -> dict[str, str]:
        """Outcome per collected test; a collected test with no result counts as failed."""
        got = {r.nodeid: r.outcome for r in self.results}
        return {n: got.get(n, "failed") for n in (self.collected or tuple(got))}


@dataclass(frozen=True)
class BaselineEntry:
    """One row of ``baseline.parquet``: a test's stable outcome over the reruns, or ``flaky``."""

    nodeid: str
    outcome: str  # one of OUTCOMES, or "flaky"
    duration_s: float
    flaky: bool
    outcomes: tuple[str, ...] = ()  # per rerun, in order


@dataclass(frozen=True)
class CoverageEntry:
    """One row of ``coverage.parquet``: the tests that execute one line of one source file."""

    file: str  # repository-relative posix path
    line: int
    nodeids: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Candidates and tasks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileContent:
    path: str
    content: str


@dataclass(frozen=True)
class Candidate:
    """A proposed task: a change on a repository snapshot that the verifiers will judge.

    For mutations ``patch`` introduces the bug (its reverse is the gold fix); for pull requests
    ``patch`` is the PR's code change (the gold fix) and ``test_patch`` its tests.
    """

    candidate_id: str
    repo: str
    base_commit: str
    origin: Origin
    patch: str
    test_patch: str = ""
    operator: str = ""
    file: str = ""
    symbol: str = ""
    start_line: int = 0
    end_line: int = 0
    seed: int = 0
    covering_tests: tuple[str, ...] = ()
    pr_number: int | None = None
    problem_statement: str = ""
    hints_text: str = ""
    created_at: str = ""
    parents: tuple[str, ...] = ()  # candidate ids a combined bug was built from
    provenance: str = "{}"  # JSON: anything else worth keeping (links, explanation, ...)


@dataclass(frozen=True)
class Validation:
    """One row of ``validations.parquet``: the verdict on one candidate, with its reason."""

    candidate_id: str
    repo: str
    verdict: Literal["accepted", "rejected", "error"]
    reason: str
    FAIL_TO_PASS: tuple[str, ...] = ()
    PASS_TO_PASS: tuple[str, ...] = ()
    strategy: str = ""
    num_runs: int = 0
    apply_s: float = 0.0
    test_s: float = 0.0
    total_s: float = 0.0
    detail: str = ""
    # How FAIL_TO_PASS / PASS_TO_PASS were obtained: "selected" (only the tests that execute the
    # changed lines ran; the rest of PASS_TO_PASS is the baseline's) or "full" (the whole suite ran).
    lists: str = ""


@dataclass(frozen=True)
class TaskInstance:
    """A verified task; a superset of SWE-bench's columns so its tools read it as is."""

    instance_id: str
    repo: str
    base_commit: str
    patch: str  # the gold fix, in SWE-bench's sense
    test_patch: str
    problem_statement: str
    hints_text: str
    created_at: str
    version: str
    FAIL_TO_PASS: tuple[str, ...]
    PASS_TO_PASS: tuple[str, ...]
    environment_setup_commit: str
    image_name: str
    source: Origin
    start_files: tuple[FileContent, ...] = ()  # start-state content of each file `patch` touches
    upstream_commit: str = ""
    operator: str = ""
    provenance: str = "{}"
    num_f2p: int = 0
    num_p2p: int = 0
    validation_s: float = 0.0
    language: str = "python"  # python, javascript, typescript, go (publish derives it from the patch's files)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskInstance:
        kw = dict(data)
        for k in ("FAIL_TO_PASS", "PASS_TO_PASS"):
            kw[k] = tuple(kw[k])
        kw["start_files"] = tuple(f if isinstance(f, FileContent) else FileContent(**f)
                                  for f in kw.get("start_files", ()))
        return cls(**kw)


@dataclass(frozen=True)
class BaselineSummary:
    """``repos/<key>/baseline.json``: what the baseline saw, for people and for the stages after it
    (validation derives its run limit from ``run_wall_s``)."""

    num_tests: int
    outcomes: dict[str, int]
    num_flaky: int
    run_wall_s: tuple[float, ...]
    suite_test_s: tuple[float, ...] = ()
    collect_wall_s: float = 0.0
    coverage_wall_s: float = 0.0
    coverage_lines: int = 0
    collect_errors: tuple[str, ...] = ()
    run_notes: tuple[str, ...] = ()
    # Ids the runs reported that collection did not list: a parametrized test's random ids (the
    # first 20, and how many); those tests count as flaky (verifiers.baseline.aggregate).
    renamed_ids: tuple[str, ...] = ()
    num_renamed: int = 0
    image: str = ""
    reruns: int = 0
    wall_s: float = 0.0
    checks: dict[str, Any] = dataclasses.field(default_factory=dict)  # truth checks (verifiers.truth): shares, reasons
    warnings: tuple[str, ...] = ()  # what a user should know before trusting this baseline

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BaselineSummary:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names}
        return cls(**kw)


@dataclass(frozen=True)
class VerdictFile:
    """``repos/<key>/validations/<candidate_id>.json``: the verdict on one candidate and, when it
    was accepted, the task it made. Validation writes one the moment a verdict is known; the
    parquet files and ``instances.parquet`` are assembled from them."""

    validation: Validation
    instance: TaskInstance | None = None

    @property
    def accepted(self) -> bool:
        return self.validation.verdict == "accepted" and self.instance is not None

    def to_json(self) -> dict[str, Any]:
        return {"validation": dataclasses.asdict(self.validation),
                "instance": dataclasses.asdict(self.instance) if self.instance else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VerdictFile:
        v = dict(data["validation"])
        v["FAIL_TO_PASS"], v["PASS_TO_PASS"] = tuple(v.get("FAIL_TO_PASS", ())), tuple(v.get("PASS_TO_PASS", ()))
        inst = data.get("instance")
        return cls(Validation(**v), TaskInstance.from_json(inst) if inst else None)


# ---------------------------------------------------------------------------------------------
# Arrow schemas and conversion
# ---------------------------------------------------------------------------------------------

_FILES = pa.list_(pa.struct([("path", pa.string()), ("content", pa.string())]))


def _arrow_type(tp: Any) -> pa.DataType:
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _arrow_type(args[0])
    if origin is Literal or tp is str:
        return pa.string()
    if tp is int:
        return pa.int64()
    if tp is float:
        return pa.float64()
    if tp is bool:
        return pa.bool_()
    if origin is tuple:
        (inner, _ellipsis) = typing.get_args(tp)
        if inner is FileContent:
            return _FILES
        return pa.list_(_arrow_type(inner))
    raise TypeError(f"no arrow type for {tp!r}")


def _schema_of(cls: type) -> pa.Schema:
    hints = typing.get_type_hints(cls, globalns={**globals(), "Outcome": Outcome})
    return pa.schema([pa.field(f.name, _arrow_type(hints[f.name])) for f in dataclasses.fields(cls)])


ARROW_SCHEMAS: dict[type, pa.Schema] = {
    cls: _schema_of(cls)
    for cls in (BaselineEntry, CoverageEntry, Candidate, Validation, TaskInstance, TestResult)
}


def _to_row(obj: Any) -> dict[str, Any]:
    row = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if isinstance(v, tuple):
            v = [dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x for x in v]
        row[f.name] = v
    return row


def to_table(records: list[Any], cls: type | None = None) -> pa.Table:
    """Records of one type to a table with that type's declared schema (empty lists too)."""
    if cls is None:
        if not records:
            raise ValueError("to_table needs cls for an empty list")
        cls = type(records[0])
    schema = ARROW_SCHEMAS[cls]
    return pa.Table.from_pylist([_to_row(r) for r in records], schema=schema)


def from_table(table: pa.Table, cls: type) -> list[Any]:
    """Rows back into records; list columns become tuples, file lists become FileContent."""
    names = {f.name for f in dataclasses.fields(cls)}
    out = []
    for row in table.to_pylist():
        kw = {}
        for k, v in row.items():
            if k not in names:
                continue
            if isinstance(v, list):
                v = tuple(FileContent(**x) if isinstance(x, dict) else x for x in v)
            kw[k] = v
        out.append(cls(**kw))
    return out
