"""A small real project whose suite exercises every outcome and awkward node id we must read."""

SAMPLE_FILES = {
    "pyproject.toml": """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "sample"
version = "0.1.0"

[project.optional-dependencies]
test = ["pytest"]

[tool.setuptools]
packages = ["sample"]

[tool.pytest.ini_options]
testpaths = ["tests"]
""",
    "sample/__init__.py": """\
def add(a, b):
    return a + b


def clamp(x, lo, hi):
    if x < lo:
        return lo
    if x > hi:
        return hi
    return x
""",
    "tests/test_basic.py": """\
import pytest

from sample import add, clamp


def test_add():
    assert add(2, 3) == 5


def test_wrong():
    assert add(1, 1) == 3, "one and one make three"


@pytest.mark.parametrize("value", ["a b", "x[y]", "c::d"])
def test_strings(value):
    assert isinstance(value, str)


@pytest.mark.parametrize("n", [1, 2], ids=["one two", "three [four]"])
def test_ids(n):
    assert n in (1, 2)


class TestClamp:
    def test_low(self):
        assert clamp(-5, 0, 10) == 0

    def test_high(self):
        assert clamp(50, 0, 10) == 10


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False


@pytest.mark.xfail(reason="fixed already")
def test_xpass():
    assert True


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_setup_error(broken):
    pass
""",
    "tests/test_net.py": """\
import socket


def test_network_is_reachable():
    socket.create_connection(("1.1.1.1", 53), timeout=3).close()
""",
    "slow/test_sleep.py": """\
import time


def test_sleeps_forever():
    time.sleep(600)
""",
    "slow/test_memory.py": """\
def test_eats_memory():
    blocks = []
    for _ in range(64):
        blocks.append(bytearray(64 * 1024 * 1024))
""",
}

EXPECTED = {
    "tests/test_basic.py::test_add": "passed",
    "tests/test_basic.py::test_wrong": "failed",
    "tests/test_basic.py::test_strings[a b]": "passed",
    "tests/test_basic.py::test_strings[x[y]]": "passed",
    "tests/test_basic.py::test_strings[c::d]": "passed",
    "tests/test_basic.py::test_ids[one two]": "passed",
    "tests/test_basic.py::test_ids[three [four]]": "passed",
    "tests/test_basic.py::TestClamp::test_low": "passed",
    "tests/test_basic.py::TestClamp::test_high": "passed",
    "tests/test_basic.py::test_skipped": "skipped",
    "tests/test_basic.py::test_xfail": "xfail",
    "tests/test_basic.py::test_xpass": "xpass",
    "tests/test_basic.py::test_setup_error": "error",
    "tests/test_net.py::test_network_is_reachable": "failed",
}
