"""Real builds on the toolchain base: a C extension is compiled and used from /testbed; a missing
header and an unsatisfiable Python fail with their reason key and the override to try."""

from __future__ import annotations

import pytest

from factory.errors import InstallFailed
from factory.repo import checkout
from factory.schema import RepoSpec
from tests.conftest import make_repo
from verifiers.images import build_env_image, env_spec_for

pytestmark = pytest.mark.docker

SETUP = ("from setuptools import setup, Extension\n"
         "setup(name='cext', version='1.0', packages=['cext'],\n"
         "      ext_modules=[Extension('cext._fast', ['cext/_fast.c'])])\n")
C_OK = ("#include <Python.h>\n"
        "static PyObject *answer(PyObject *s, PyObject *a) { return PyLong_FromLong(42); }\n"
        "static PyMethodDef M[] = {{\"answer\", answer, METH_NOARGS, \"\"}, {0}};\n"
        "static struct PyModuleDef D = {PyModuleDef_HEAD_INIT, \"_fast\", 0, -1, M};\n"
        "PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&D); }\n")
TEST = "from cext._fast import answer\n\ndef test_answer():\n    assert answer() == 42\n"


def test_a_c_extension_is_built_in_place_and_imported_from_testbed(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {"setup.py": SETUP, "cext/__init__.py": "", "cext/_fast.c": C_OK, "tests/test_fast.py": TEST})
    env = build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    assert env.checks["packages"]["cext"]["file"] == "/testbed/cext/__init__.py"
    out = docker_client.containers.run(env.tag, ["python", "-c", "import cext._fast as f; print(f.__file__)"],
                                       remove=True, working_dir="/tmp").decode()
    assert out.startswith("/testbed/cext/_fast.") and out.strip().endswith(".so")


def test_a_missing_header_names_the_debian_package(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {"setup.py": SETUP, "cext/__init__.py": "", "cext/_fast.c": "#include <gmp.h>\n" + C_OK,
                         "tests/test_fast.py": TEST})
    with pytest.raises(InstallFailed) as ei:
        build_env_image(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    assert ei.value.reason == "missing_header"
    assert "gmp.h" in str(ei.value) and "system_packages: [libgmp-dev]" in str(ei.value)
    assert "\x1b[" not in ei.value.log_tail


def test_no_python_on_offer_is_python_unsatisfiable(docker_client, base_image, tmp_path):
    make_repo(tmp_path, {"pyproject.toml": "[project]\nname = 'future'\nversion = '1'\nrequires-python = '>=3.15'\n",
                         "future_pkg.py": "", "test_future.py": "def test_x():\n    pass\n"})
    with pytest.raises(InstallFailed) as ei:
        env_spec_for(docker_client, checkout(RepoSpec(source=str(tmp_path))), log=lambda _m: None)
    assert ei.value.reason == "python_unsatisfiable"
    assert ">=3.15" in str(ei.value) and "3.13.5" in str(ei.value)
