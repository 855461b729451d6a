"""Truth checks: the package under test imports from /testbed, and a baseline's errors and skips
are counted, explained, and refused above the threshold."""

from __future__ import annotations

import pytest

from factory.schema import BaselineEntry, TestResult, TestRun
from verifiers.truth import TruthLimits, check_baseline, judge_install, packages_under_test

LOG = """+ python -m pip install -e .
Successfully installed mypkg-0.0.0
+ python -m pip install -r requirements-dev.txt
Collecting mypkg==1.2 (from sphinx-mypkg-theme==3->-r requirements-dev.txt (line 2))
Successfully installed mypkg-1.2 sphinx-mypkg-theme-3
"""


def test_a_copy_from_the_index_is_package_shadowed_and_names_who_installed_it():
    packages = {"mypkg": {"file": "/opt/venv/lib/python3.11/site-packages/mypkg/__init__.py",
                          "dists": [{"name": "mypkg", "version": "1.2", "direct_url": ""}]}}
    t = judge_install(packages, LOG)
    assert t.problem is not None and t.problem.key == "package_shadowed"
    assert "mypkg 1.2" in t.problem.cause
    assert "python -m pip install -r requirements-dev.txt" in t.problem.cause
    assert "sphinx-mypkg-theme" in t.problem.cause


def test_a_package_in_testbed_passes_and_an_import_error_only_warns():
    t = judge_install({"a": {"file": "/testbed/src/a/__init__.py", "dists": []},
                       "b": {"error": "ImportError: needs a display", "dists": []}})
    assert t.problem is None and t.warnings == ("b does not import outside the suite: ImportError: needs a display",)


def test_packages_under_test_skip_tests_and_tooling(tmp_path):
    for rel in ("src/pkg/__init__.py", "src/tests/test.py", "src/mod.py", "setup.py", "docs/conf.py",
                "src/ns/sub/__init__.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    assert packages_under_test(tmp_path) == ["mod", "ns.sub", "pkg"]


def test_flat_layout_modules_are_code_not_scripts(tmp_path):
    (tmp_path / "six.py").write_text("def f():\n    pass\n")
    (tmp_path / "test_six.py").write_text("def test_f():\n    pass\n")
    (tmp_path / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    (tmp_path / "fabfile.py").write_text("def deploy():\n    pass\n")
    assert packages_under_test(tmp_path) == ["six"]


def _baseline(outcomes: dict[str, tuple[str, str]]):
    entries = [BaselineEntry(nodeid=n, outcome=o, duration_s=0.0, flaky=False, outcomes=(o,)) for n, (o, _m) in outcomes.items()]
    run = TestRun("ok", 1, 1.0, tuple(TestResult(n, o, 0.0, m) for n, (o, m) in outcomes.items()))
    return entries, [run]


def test_errors_above_the_share_refuse_with_the_top_reason():
    outcomes = {f"t.py::ok{i}": ("passed", "") for i in range(18)}
    outcomes |= {"t.py::e1": ("error", "fixture 'mocker' not found"), "t.py::e2": ("error", "fixture 'mocker' not found")}
    entries, runs = _baseline(outcomes)
    v = check_baseline(entries, runs, [])
    assert v.refusal is not None and v.refusal.key == "errors_above_threshold"
    assert "2 of 20 tests error (10% > 5%)" in v.refusal.cause and "mocker" in v.refusal.cause
    assert v.checks["top_error_reasons"] == [("fixture 'mocker' not found", 2)]
    assert check_baseline(entries, runs, [], TruthLimits(refuse=False)).refusal is None  # warn only
    assert check_baseline(entries, runs, [], TruthLimits(max_error_share=0.2)).refusal is None


def test_collection_errors_refuse_and_name_the_module():
    entries, runs = _baseline({"t.py::ok": ("passed", "")})
    v = check_baseline(entries, runs, [("tests/test_b.py", "E   ModuleNotFoundError: No module named 'trio'")])
    assert v.refusal.key == "collection_errors"
    assert "tests/test_b.py" in v.refusal.cause and v.refusal.fix == "pre_install: [python -m pip install trio]"


def test_skips_above_the_share_warn_with_reasons_and_suggestions():
    outcomes = {f"t.py::ok{i}": ("passed", "") for i in range(10)}
    outcomes |= {f"t.py::s{i}": ("skipped", "('/testbed/t.py', 3, 'Skipped: msgfmt not found: translations "
                                             "are not compiled')") for i in range(2)}
    entries, runs = _baseline(outcomes)
    v = check_baseline(entries, runs, [])
    assert v.refusal is None
    assert v.warnings == ("2 of 12 tests skip (17% > 5%), mostly: msgfmt not found: translations are not compiled",)
    assert any("gettext" in s for s in v.suggestions)


def test_a_mostly_failing_suite_warns_with_the_top_reason():
    reason = "httpretty.errors.UnmockedError: Failed to socket.shutdown because a real socket does not exist"
    outcomes = {f"t.py::ok{i}": ("passed", "") for i in range(2)}
    outcomes |= {f"t.py::f{i}": ("failed", reason) for i in range(8)}
    entries, runs = _baseline(outcomes)
    v = check_baseline(entries, runs, [])
    assert v.refusal is None and v.checks["failed_share"] == 0.8
    assert v.warnings == (f"8 of 10 tests fail on the clean tree (80% > 20%), mostly: {reason}",)
    few = {f"t.py::ok{i}": ("passed", "") for i in range(9)} | {"t.py::f": ("failed", reason)}
    assert check_baseline(*_baseline(few), []).warnings == ()


@pytest.mark.docker
def test_a_package_replaced_from_pypi_is_caught_in_a_real_image(docker_client, base_image, tmp_path):
    """The user's own recipe installs six from PyPI over the editable six in /testbed."""
    from factory.errors import InstallFailed
    from factory.repo import checkout
    from factory.schema import RepoSpec
    from tests.conftest import make_repo
    from verifiers.images import build_env_image

    make_repo(tmp_path, {"setup.py": "from setuptools import setup\nsetup(name='six', version='0.0.1', py_modules=['six'])\n",
                         "six.py": "def here():\n    return True\n", "test_six.py": "import six\n\ndef test_here():\n"
                         "    assert six.here()\n"})
    spec = RepoSpec(source=str(tmp_path), install=("python -m pip install -e .", "python -m pip install six==1.16.0"))
    with pytest.raises(InstallFailed) as ei:
        build_env_image(docker_client, checkout(spec), log=lambda _m: None)
    assert ei.value.reason == "package_shadowed"
    assert "six 1.16.0" in str(ei.value) and "site-packages" in str(ei.value)
    # detection's own recipe puts /testbed's copy back last
    (tmp_path / "requirements-test.txt").write_text("six==1.16.0\n")
    make_repo(tmp_path, {}, message="a test requirement that pins the package itself")
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    assert env.checks["packages"]["six"]["file"] == "/testbed/six.py"


def test_a_direct_install_is_named_too():
    log = "+ python -m pip install -e .\n+ python -m pip install mypkg==1.2\nCollecting mypkg==1.2\n"
    t = judge_install({"mypkg": {"file": "/opt/venv/lib/python3.11/site-packages/mypkg/__init__.py",
                                 "dists": [{"name": "mypkg", "version": "1.2", "direct_url": ""}]}}, log)
    assert "by `python -m pip install mypkg==1.2`" in t.problem.cause
    assert "required by" not in t.problem.cause
