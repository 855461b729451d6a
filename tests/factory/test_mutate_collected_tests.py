"""The mutate stage never injects bugs into the files the suite collected tests from, whatever
their names (rope 1.13.0 names its test modules `*test.py` under `ropetest/`)."""

from __future__ import annotations

from factory.repo import checkout
from factory.schema import BaselineEntry, Candidate, CoverageEntry, RepoSpec
from factory.store import RunStore, read_records, write_records
from factory.task_stages import stage_mutate
from tests.conftest import make_repo

CALC = "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    return min(x, hi)\n"
CHECK = ("from calc import clamp\n\n\ndef test_high():\n    got = clamp(50, 0, 10)\n    want = 10\n"
         "    assert got == want\n")


def test_files_the_suite_collected_are_never_mutated(tmp_path):
    root = tmp_path / "repo"
    make_repo(root, {"calc/__init__.py": CALC, "checks/clampcheck.py": CHECK})
    spec = RepoSpec(source=str(root))
    store = RunStore(tmp_path / "run")
    rd = store.repo(spec.key)
    rd.root.mkdir(parents=True, exist_ok=True)
    test = "checks/clampcheck.py::test_high"
    write_records(rd.baseline, [BaselineEntry(test, "passed", 0.01, False, ("passed",))], BaselineEntry)
    lines = [("calc/__init__.py", n) for n in (2, 3, 4)] + [("checks/clampcheck.py", n) for n in (5, 6, 7)]
    write_records(rd.coverage, [CoverageEntry(f, n, (test,)) for f, n in lines], CoverageEntry)
    assert checkout(spec).commit
    outcome = stage_mutate(spec, store)
    assert outcome.ok, outcome.reason
    files = {c.file for c in read_records(rd.candidates, Candidate)}
    assert files == {"calc/__init__.py"}, files
    assert outcome.detail["skipped_test_file"] == 1, outcome.detail
