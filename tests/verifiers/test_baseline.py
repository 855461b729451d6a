"""The baseline, end to end in containers, and its aggregation rules on their own."""

from __future__ import annotations

import pytest

from factory.errors import BaselineError
from factory.repo import checkout
from factory.schema import RepoSpec, TestResult, TestRun
from tests.conftest import make_repo
from tests.verifiers.sample_repo import EXPECTED, SAMPLE_FILES
from verifiers.baseline import aggregate, run_baseline, stable_passing
from verifiers.images import build_env_image


def _run(**outcomes: str) -> TestRun:
    return TestRun("ok", 1, 0.1, tuple(TestResult(n, o) for n, o in outcomes.items()), tuple(outcomes))


def test_a_test_that_changes_outcome_is_flaky_and_not_stable_passing():
    runs = [_run(a="passed", b="passed"), _run(a="passed", b="failed"), _run(a="passed", b="passed")]
    entries = aggregate(["a", "b"], runs)
    assert [(e.nodeid, e.outcome, e.flaky) for e in entries] == [("a", "passed", False), ("b", "flaky", True)]
    assert entries[1].outcomes == ("passed", "failed", "passed")
    assert stable_passing(entries) == {"a"}


def test_a_test_missing_from_a_run_counts_as_failed():
    runs = [_run(a="passed", b="passed"), TestRun("ok", 1, 0.1, (TestResult("a", "passed"),), ("a", "b"))]
    entries = {e.nodeid: e for e in aggregate(["a", "b"], runs)}
    assert entries["b"].outcomes == ("passed", "failed")
    assert entries["b"].flaky


def test_results_for_tests_collection_never_listed_are_refused():
    with pytest.raises(BaselineError) as ei:
        aggregate(["a"], [_run(a="passed", ghost="passed")])
    assert ei.value.reason == "nodeid_mismatch"


def test_random_parameter_ids_are_flaky_and_the_rest_of_the_suite_goes_on():
    collected = ["t.py::test_x[N111]", "t.py::test_x[plain]", "t.py::test_y"]
    runs = [_run(**{"t.py::test_x[N222]": "passed", "t.py::test_x[plain]": "passed", "t.py::test_y": "passed"}),
            _run(**{"t.py::test_x[N333]": "passed", "t.py::test_x[plain]": "passed", "t.py::test_y": "failed"})]
    entries = {e.nodeid: e for e in aggregate(collected, runs)}
    assert entries["t.py::test_x[N111]"].flaky and entries["t.py::test_x[N111]"].outcome == "flaky"
    assert entries["t.py::test_x[plain]"].outcome == "passed" and not entries["t.py::test_x[plain]"].flaky
    assert entries["t.py::test_y"].flaky
    # An unknown id of a function collection never parametrized is still a disagreement.
    with pytest.raises(BaselineError):
        aggregate(["t.py::test_y"], [_run(**{"t.py::test_y[N1]": "passed"})])


@pytest.mark.docker
def test_a_suite_with_random_parameter_ids_gets_a_baseline(docker_client, base_image, tmp_path):
    """rdflib's case: ids built from uuid4 differ in every process (collection and each run)."""
    make_repo(tmp_path, {
        "pkg/__init__.py": "def one():\n    return 1\n",
        "tests/test_ids.py": ("import uuid\n\nimport pytest\n\nfrom pkg import one\n\n\n"
                              "@pytest.mark.parametrize('node', [uuid.uuid4().hex, 'fixed'])\n"
                              "def test_node(node):\n    assert one() == 1\n\n\n"
                              "def test_one():\n    assert one() == 1\n"),
    })
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=2)
    by_id = {e.nodeid: e for e in base.entries}
    assert by_id["tests/test_ids.py::test_one"].outcome == "passed"
    assert by_id["tests/test_ids.py::test_node[fixed]"].outcome == "passed"
    random_ids = [n for n in by_id if n.startswith("tests/test_ids.py::test_node[") and not n.endswith("[fixed]")]
    assert len(random_ids) == 1 and by_id[random_ids[0]].flaky
    assert len(base.renamed) == 2 and base.summary().num_renamed == 2


@pytest.mark.docker
def test_baseline_lists_every_collected_test_once_with_coverage(docker_client, base_image, tmp_path):
    make_repo(tmp_path, SAMPLE_FILES)
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    base = run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=2)
    nodeids = [e.nodeid for e in base.entries]
    assert len(nodeids) == len(set(nodeids))
    assert base.collect_only_q == nodeids  # exactly what `pytest --collect-only -q` printed
    assert {e.nodeid: e.outcome for e in base.entries} == EXPECTED
    cov = {(c.file, c.line): c.nodeids for c in base.coverage}
    # `return hi` in clamp runs only under TestClamp::test_high.
    assert cov[("sample/__init__.py", 9)] == ("tests/test_basic.py::TestClamp::test_high",)
    assert "tests/test_basic.py::test_add" in cov[("sample/__init__.py", 2)]


@pytest.mark.docker
def test_a_suite_with_no_tests_is_refused_with_its_reason(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {"lib.py": "X = 1\n"})
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    with pytest.raises(BaselineError) as ei:
        run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1)
    assert ei.value.reason == "no_tests"


@pytest.mark.docker
def test_a_suite_that_cannot_import_is_a_collection_error(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {"test_broken.py": "import no_such_module\n\ndef test_x():\n    pass\n"})
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    with pytest.raises(BaselineError) as ei:
        run_baseline(docker_client, env.tag, env.spec.test_cmd, reruns=1)
    assert ei.value.reason == "collection_error"
    assert "test_broken.py" in str(ei.value)


@pytest.mark.parametrize("addopts", ["", "--verbose", "-vv"])
def test_collect_only_prints_node_ids_whatever_the_projects_verbosity(tmp_path, addopts):
    """Faker 30.8's setup.cfg has ``addopts = --verbose``: our ``-q`` only cancelled it, collection
    printed a tree of ``<Function ...>`` lines, and the baseline refused the suite (node ids from
    the report differ from collect-only). The collect command sets the verbosity outright."""
    import subprocess
    import sys

    from verifiers.baseline import _collect_only_q
    from verifiers.sandbox import pytest_command

    (tmp_path / "setup.cfg").write_text(f"[tool:pytest]\naddopts = {addopts}\n")
    (tmp_path / "test_x.py").write_text(
        "import pytest\n\n@pytest.mark.parametrize('n', [1, 2])\ndef test_a(n):\n    pass\n\n"
        "class TestB:\n    def test_c(self):\n        pass\n")
    cmd = pytest_command(f"{sys.executable} -m pytest", collect_only=True, plugins=())
    out = subprocess.run(cmd, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120).stdout
    assert _collect_only_q(out) == ["test_x.py::test_a[1]", "test_x.py::test_a[2]", "test_x.py::TestB::test_c"], out
