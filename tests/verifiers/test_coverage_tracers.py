"""The coverage map's two tracers give one map: sys.monitoring (Python 3.12+) and coverage.py's.

The plugin maps with ``sys.monitoring`` where the image's Python has it (each line once per test,
re-armed at every test switch) and with coverage.py's C tracer elsewhere. Both run here on the same
Python 3.13 image and the same suite, and their maps must be the same map; a 3.11 image must get
coverage.py. The suite has what a per-test map gets wrong when a line is credited only once per
process (coverage.py's own ``sysmon`` core): lines run by several tests, loops, a generator, a
class body, a thread, and a test file (not measured)."""

from __future__ import annotations

import pytest

from factory.repo import checkout
from factory.schema import RepoSpec
from tests.conftest import make_repo
from verifiers.images import build_env_image
from verifiers.sandbox import pytest_command, run_tests

pytestmark = pytest.mark.docker

FILES = {
    "pyproject.toml": (
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "trc"\nversion = "0.1.0"\n\n[tool.setuptools]\npackages = ["trc"]\n'
    ),
    "trc/__init__.py": (
        "import threading\n\n\n"
        "def sign(x):\n    if x < 0:\n        return -1\n    if x > 0:\n        return 1\n    return 0\n\n\n"
        "def total(n):\n    t = 0\n    for i in range(n):\n        t += sign(i - 1)\n    return t\n\n\n"
        "def evens(n):\n    for i in range(n):\n        if i % 2 == 0:\n            yield i\n\n\n"
        "class Box:\n    size = 3\n\n    def grow(self):\n        self.size += 1\n        return self.size\n\n\n"
        "def in_thread():\n    out = []\n    th = threading.Thread(target=lambda: out.append(sign(-5)))\n"
        "    th.start()\n    th.join()\n    return out[0]\n"
    ),
    "tests/test_trc.py": (
        "from trc import Box, evens, in_thread, sign, total\n\n\n"
        "def test_sign_negative():\n    assert sign(-2) == -1\n\n\n"
        "def test_sign_zero():\n    assert sign(0) == 0\n\n\n"
        "def test_total():\n    assert total(4) == 1\n\n\n"
        "def test_evens():\n    assert list(evens(5)) == [0, 2, 4]\n\n\n"
        "def test_box():\n    assert Box().grow() == 4\n\n\n"
        "def test_thread():\n    assert in_thread() == -1\n"
    ),
}


@pytest.fixture(scope="module")
def images(docker_client, tmp_path_factory):
    root = tmp_path_factory.mktemp("tracers")
    make_repo(root, FILES)
    out = {}
    for py in ("3.13", "3.11"):
        co = checkout(RepoSpec(source=str(root), python=py))
        out[py] = build_env_image(docker_client, co, log=lambda _m: None).tag
    return out


def _map(docker_client, image, **env):
    run, rep = run_tests(docker_client, image, pytest_command("python -m pytest"), env={"TF_COVERAGE": "1", **env})
    assert run.status == "ok" and len(rep.results) == 6, run.log_tail
    return rep.tracer, rep.coverage


def test_monitoring_and_coverage_py_make_the_same_map(docker_client, images):
    tracer, mon = _map(docker_client, images["3.13"])
    assert tracer == "monitoring"
    tracer_cov, cov = _map(docker_client, images["3.13"], TF_COVERAGE_CORE="coverage")
    assert tracer_cov == "coverage.py"
    assert mon == cov
    assert set(mon) == {"trc/__init__.py"}  # test files are not measured
    lines = mon["trc/__init__.py"]
    # sign's first comparison runs in five tests; credited once per process it would name one
    assert lines[5] == ["tests/test_trc.py::test_sign_negative", "tests/test_trc.py::test_sign_zero",
                        "tests/test_trc.py::test_thread", "tests/test_trc.py::test_total"]
    assert lines[22] == ["tests/test_trc.py::test_evens"]  # inside the generator
    assert lines[29] == ["tests/test_trc.py::test_box"]  # a method
    assert lines[26] == ["<outside tests>"]  # the class body ran at import


def test_an_older_python_maps_with_coverage_py(docker_client, images):
    tracer, _ = _map(docker_client, images["3.11"])
    assert tracer == "coverage.py"
