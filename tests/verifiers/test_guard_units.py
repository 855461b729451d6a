"""Grading's rules that need no Docker: the screen, the signed report, what a patch may add."""

from __future__ import annotations

import hashlib
import hmac
import json

from tests.verifiers.hostile import FORGE_PLUGIN, LIB_ATTACKS
from verifiers.grade import not_source, protected, shadows
from verifiers.sandbox import parse_report
from verifiers.screen import screen_patch


def _signed(records: list[dict], key: bytes) -> str:
    mac, lines = "", []
    for rec in records:
        mac = hmac.new(key, (mac + json.dumps(rec, sort_keys=True)).encode(), hashlib.sha256).hexdigest()
        lines.append(json.dumps({**rec, "mac": mac}))
    return "\n".join(lines) + "\n"


RECORDS = [{"type": "collected", "nodeids": ["t.py::a"]},
           {"type": "test", "nodeid": "t.py::a", "outcome": "passed", "duration": 0.1, "message": ""},
           {"type": "guard", "events": []}, {"type": "finish", "exitstatus": 0, "records": 4}]


def test_a_signed_report_parses_clean():
    rep = parse_report(_signed(RECORDS, b"k"), key=b"k")
    assert rep.integrity == [] and rep.guard == [] and rep.exitstatus == 0
    assert rep.results["t.py::a"].outcome == "passed"


def test_forged_dropped_and_unsigned_records_are_caught():
    text = _signed(RECORDS, b"k")
    assert parse_report(text, key=b"other").integrity  # signed with another key
    forged = text.replace('"outcome": "passed"', '"outcome": "failed"')
    assert any("not written by" in m for m in parse_report(forged, key=b"k").integrity)
    lines = text.splitlines()
    dropped = "\n".join(lines[:1] + lines[2:])
    assert parse_report(dropped, key=b"k").integrity  # the chain breaks after a dropped line
    no_finish = "\n".join(lines[:3])
    assert any("no finish record" in m for m in parse_report(no_finish, key=b"k").integrity)
    unguarded = _signed([RECORDS[0], RECORDS[1], {"type": "finish", "exitstatus": 0, "records": 3}], b"k")
    assert any("no guard record" in m for m in parse_report(unguarded, key=b"k").integrity)
    # Without a key (validation's runs), the same text parses as before.
    assert parse_report(forged).results["t.py::a"].outcome == "failed"


def test_protected_and_not_source_paths():
    for path in ("conftest.py", "src/pkg/conftest.py", "tests/test_x.py", "pkg/tox.ini", "docs/setup.cfg",
                 "sub/pyproject.toml", "src/sitecustomize.py", "x.pth"):
        assert protected(path), path
    assert not protected("src/pkg/module.py")
    for path in ("src/x.egg-info/entry_points.txt", "a/__pycache__/m.cpython-311.pyc", "m.pyc", "pkg/m.so",
                 "x-1.0.dist-info/METADATA", "build/lib/pkg/m.py", ".pytest_cache/v/x"):
        assert not_source(path), path
    assert not not_source("src/pkg/new_module.py") and not not_source("src/pkg/data.json")
    assert not not_source("src/pkg/build/steps.py")  # a package may have a build/ subpackage


def test_shadowing_new_modules():
    names = {"pytest", "json", "tf_report", "_pytest"}
    roots = {"", "src", "tests"}
    assert shadows("pytest.py", roots, names) and shadows("src/json.py", roots, names)
    assert shadows("_pytest/__init__.py", roots, names) and shadows("tests/json.py", roots, names)
    assert not shadows("src/pkg/json.py", roots, names)  # inside a package: pkg.json, no shadow
    assert not shadows("src/newmod.py", roots, names)


def test_screen_flags_each_library_attack_and_not_a_plain_fix():
    for name, (_, body) in LIB_ATTACKS.items():
        patch = "+++ b/src/lib.py\n@@ -1,0 +1,30 @@\n" + "".join("+" + line + "\n" for line in body.splitlines())
        assert screen_patch(patch), name
    conftest = "+++ b/conftest.py\n@@ -0,0 +1,8 @@\n" + "".join("+" + ln + "\n" for ln in FORGE_PLUGIN.splitlines())
    assert any("pytest hooks" in r for r in screen_patch(conftest))
    fix = ("--- a/src/lib.py\n+++ b/src/lib.py\n@@ -10,3 +10,3 @@\n     value = cache[key]\n"
           "-    return None\n+    return value\n")
    assert screen_patch(fix) == []


def test_grading_takes_a_record_from_any_row_shape():
    import json

    from factory.schema import TaskInstance
    from verifiers.grade import GradingTask

    row = {"instance_id": "r__1", "image_name": "img", "base_commit": "abc", "patch": "p",
           "FAIL_TO_PASS": json.dumps(["t.py::a"]), "PASS_TO_PASS": ["t.py::b"]}  # a SWE-bench JSONL row
    task = GradingTask.of(row)
    assert task.FAIL_TO_PASS == ("t.py::a",) and task.PASS_TO_PASS == ("t.py::b",) and task.test_patch == ""
    inst = TaskInstance(instance_id="r__1", repo="r", base_commit="abc", patch="p", test_patch="", problem_statement="",
                        hints_text="", created_at="", version="", FAIL_TO_PASS=("t.py::a",), PASS_TO_PASS=("t.py::b",),
                        environment_setup_commit="", image_name="img", source="mutation")
    assert GradingTask.of(inst) == task
    import pytest

    with pytest.raises(ValueError, match="image_name"):
        GradingTask.of({k: v for k, v in row.items() if k != "image_name"})


def test_node_ids_with_object_addresses_name_the_same_test_in_every_process():
    from verifiers.grade import stable_id

    a = "tests/test_time.py::test_naturaldate[test_input7-<tests.test_time.FakeDate object at 0x7f435e92fed0>]"
    b = "tests/test_time.py::test_naturaldate[test_input7-<tests.test_time.FakeDate object at 0x7f2f24ae9d50>]"
    assert stable_id(a) == stable_id(b) and stable_id("t.py::test_x[0x10]") == "t.py::test_x[0x10]"


def test_bytecode_is_guarded_where_imports_look_not_in_a_tests_own_scratch_folder(monkeypatch, tmp_path):
    """rope compiles a sample project under /tmp during its tests: that bytecode changes nothing
    the session imports, so the gold patch must not read as tampering; bytecode in /testbed, in
    grading's folders or in a sys.path folder still does."""
    from verifiers.plugin.tf_report import _Guard

    on_path = tmp_path / "site"
    monkeypatch.syspath_prepend(str(on_path))
    assert not _Guard._guarded_file("/tmp/ropetest-run-x/project-y/sampleproject/src/test.pyc")
    assert not _Guard._guarded_file("/tmp/scratch/__pycache__/mod.cpython-311.pyc")
    assert _Guard._guarded_file("/testbed/tests/__pycache__/__init__.cpython-311.pyc")
    assert _Guard._guarded_file("/tf-out/p/__pycache__/tfg_x.cpython-311.pyc")
    assert _Guard._guarded_file(str(on_path / "pkg" / "__pycache__" / "mod.cpython-311.pyc"))
    assert _Guard._guarded_file(str(on_path / "evil.pth"))
    assert _Guard._guarded_file("/testbed/setup.cfg") and not _Guard._guarded_file("/tmp/setup.cfg")
