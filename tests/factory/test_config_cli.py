"""The run config and the ``factory`` command's contract: progress, one-line reasons, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from factory.config import DEFAULT_CONFIG, load_config
from factory.errors import ConfigError
from tests.conftest import make_repo

FACTORY = [sys.executable, "-m", "factory.cli"]


def test_the_bundled_default_config_is_valid():
    cfg = load_config(DEFAULT_CONFIG)
    assert cfg.repo_specs()[0].kind == "pypi"


@pytest.mark.parametrize("text,match", [
    ("repos: [", "not valid YAML"),
    ("- a\n- b\n", "mapping at the top level"),
    ("name: x\n", "repos: Field required"),
    ("repos: []\n", "repos"),
    ("repos: [{source: x, colour: red}]\n", "unknown repo spec keys"),
    ("repos: [x]\nbaseline: {reruns: 0}\n", "baseline.reruns"),
    ("repos: [x]\nsurprise: 1\n", "surprise"),
])
def test_malformed_configs_name_the_field(tmp_path, text, match):
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(p)


def _factory(*args, cwd=None):
    return subprocess.run([*FACTORY, *args], capture_output=True, text=True, cwd=cwd)


def test_a_bad_config_exits_2_with_one_line(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("repos: [")
    proc = _factory("run", str(p), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2
    assert "not valid YAML" in proc.stderr and proc.stderr.strip().count("\n") == 0


@pytest.mark.parametrize("command", ["validate", "publish"])
def test_validate_and_publish_take_the_run_as_argument_or_as_run_dir(tmp_path, command):
    """env, mine and mutate take --run-dir; a user carrying it on to validate or publish got
    "No such option". Both spellings now name the same run; neither, or two different runs,
    is a usage error (exit 2)."""
    run = tmp_path / "run"
    by_arg, by_option = _factory(command, str(run)), _factory(command, "--run-dir", str(run))
    assert by_arg.returncode == by_option.returncode == 1  # the run is empty: the same error both ways
    assert by_option.stderr.startswith(f"error: {run}") and by_arg.stderr == by_option.stderr
    neither, two = _factory(command), _factory(command, str(run), "--run-dir", str(tmp_path / "other"))
    assert neither.returncode == two.returncode == 2
    assert "name the run directory" in neither.stderr and "two runs named" in two.stderr


@pytest.mark.docker
def test_a_path_that_is_not_a_repository_fails_and_is_recorded(tmp_path, docker_client):
    run = tmp_path / "run"
    proc = _factory("env", "build", str(tmp_path), "--run-dir", str(run))
    assert proc.returncode == 1
    assert "not a git repository" in proc.stderr
    (failure,) = list(run.glob("repos/*/failure.json"))
    assert json.loads(failure.read_text())["env"]["reason_key"] == "not_a_repository"


@pytest.mark.docker
def test_env_build_twice_reuses_the_image_and_baseline_writes_the_run_dir(tmp_path, docker_client, base_image):
    repo = tmp_path / "repo"
    make_repo(repo, {"calc.py": "def double(x):\n    return 2 * x\n",
                     "test_calc.py": "from calc import double\n\ndef test_double():\n    assert double(2) == 4\n"})
    run = tmp_path / "run"
    first = _factory("env", "build", str(repo), "--run-dir", str(run))
    assert first.returncode == 0, first.stderr
    second = _factory("env", "build", str(repo), "--run-dir", str(run))
    assert second.returncode == 0 and "cache hit" in second.stdout
    base = _factory("env", "baseline", str(repo), "--run-dir", str(run), "--reruns", "2")
    assert base.returncode == 0, base.stderr
    (rd,) = list((run / "repos").iterdir())
    assert {p.name for p in rd.iterdir()} >= {"env.json", "baseline.parquet", "coverage.parquet", "baseline.json"}
    summary = json.loads((rd / "baseline.json").read_text())
    assert summary["num_tests"] == 1 and summary["outcomes"] == {"passed": 1}
    again = _factory("env", "baseline", str(repo), "--run-dir", str(run))
    assert again.returncode == 0 and "reused" in again.stderr


@pytest.mark.docker
def test_one_bad_repository_does_not_stop_the_others(tmp_path, docker_client, base_image):
    good = tmp_path / "good"
    make_repo(good, {"test_ok.py": "def test_ok():\n    assert True\n"})
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"name: two\nrepos: [{tmp_path / 'nope'}, {good}]\nbaseline: {{reruns: 1, coverage: false}}\nstages: [env, baseline]\n")
    proc = _factory("run", str(cfg), "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 1
    assert "1 stage(s) failed" in proc.stderr
    baselines = list(Path(tmp_path / "run").glob("repos/*/baseline.parquet"))
    assert len(baselines) == 1 and "good" in str(baselines[0])
