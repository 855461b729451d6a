"""Suite discovery: where the project put its tests, as pytest would find them (or not)."""

from __future__ import annotations

from verifiers.detect import detect_install
from verifiers.discover import discover_suite


def _write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


TEST = "def test_x():\n    assert True\n"


def test_default_patterns_need_no_options(tmp_path):
    _write(tmp_path, {"tests/test_a.py": TEST, "pkg/__init__.py": ""})
    s = discover_suite(tmp_path)
    assert s.test_files == ("tests/test_a.py",) and s.extra_python_files == ()
    assert detect_install(tmp_path).test_cmd == "python -m pytest"


def test_tests_slash_test_py_is_found_and_pytest_told(tmp_path):
    _write(tmp_path, {"src/tests/test.py": TEST, "src/decorator.py": "def f():\n    pass\n"})
    s = discover_suite(tmp_path)
    assert s.test_files == ("src/tests/test.py",)
    assert s.extra_python_files == ("tests.py", "test.py")
    assert detect_install(tmp_path).test_cmd == "python -m pytest -o 'python_files=test_*.py *_test.py tests.py test.py'"


def test_a_top_level_tests_py(tmp_path):
    _write(tmp_path, {"tests.py": TEST, "slugify.py": ""})
    assert discover_suite(tmp_path).test_files == ("tests.py",)


def test_testpaths_and_python_files_from_the_config(tmp_path):
    _write(tmp_path, {"setup.cfg": "[tool:pytest]\ntestpaths = checks missing\npython_files = check_*.py\n",
                      "checks/check_a.py": TEST, "tests/test_ignored.py": TEST})
    s = discover_suite(tmp_path)
    assert s.config_file == "setup.cfg"
    assert s.test_files == ("checks/check_a.py",)
    assert s.missing_testpaths == ("missing",)
    assert any("missing" in n for n in detect_install(tmp_path).notes)


def test_a_python_files_pattern_with_a_folder_matches_the_path_as_pytest_does(tmp_path):
    """PyGithub 2.5.0: `python_files = "tests/*.py"`, no testpaths, and a doc/conf.py that must not
    be collected (it failed to import and the baseline refused the suite)."""
    _write(tmp_path, {"pyproject.toml": '[tool.pytest.ini_options]\npython_files = "tests/*.py"\n',
                      "tests/Repository.py": TEST, "tests/sub/tests/Nested.py": TEST,
                      "doc/conf.py": "open('../github/MainClass.py')\n", "github/MainClass.py": ""})
    s = discover_suite(tmp_path)
    assert s.test_files == ("tests/Repository.py", "tests/sub/tests/Nested.py")
    assert s.extra_python_files == ()
    assert detect_install(tmp_path).test_cmd == "python -m pytest"


def test_pytest_ini_wins_over_pyproject(tmp_path):
    _write(tmp_path, {"pytest.ini": "[pytest]\naddopts = --timeout=30\n",
                      "pyproject.toml": "[tool.pytest.ini_options]\naddopts = '--cov'\n", "test_a.py": TEST})
    s = discover_suite(tmp_path)
    assert s.config_file == "pytest.ini" and s.plugins == ("pytest-timeout",)


def test_unittest_style_files_in_a_tests_folder(tmp_path):
    _write(tmp_path, {"tests/__init__.py": "", "tests/basics.py": "import unittest\nclass T(unittest.TestCase):\n"
                                                                    "    def test_a(self):\n        pass\n"})
    s = discover_suite(tmp_path)
    assert s.test_files == ("tests/basics.py",) and s.extra_python_files == ("*.py",)


def test_nothing_found_is_said(tmp_path):
    _write(tmp_path, {"pkg/__init__.py": ""})
    assert not discover_suite(tmp_path).found


def test_ini_keys_that_only_a_plugin_knows_and_anyio_trio_backends(tmp_path):
    _write(tmp_path, {"pyproject.toml": "[tool.pytest.ini_options]\ntrio_mode = true\ntimeout = 60\n",
                      "tests/conftest.py": "import pytest\n\n@pytest.fixture(params=['asyncio', 'trio'])\n"
                                           "def anyio_backend(request):\n    return request.param\n",
                      "tests/test_a.py": TEST})
    s = discover_suite(tmp_path)
    assert set(s.plugins) == {"pytest-trio", "pytest-timeout"}
    assert "trio" in s.imports


def test_optional_and_python2_imports_are_not_installed(tmp_path):
    _write(tmp_path, {"tests/test_a.py": "import sys\ntry:\n    import numpy\nexcept ImportError:\n    numpy = None\n"
                                         "if sys.version_info < (3,):\n    import StringIO\n"
                                         "import cStringIO as legacy  # py2 name at top level\n"
                                         "import attr\n\n"
                                         "def test_x():\n    import pytest\n    np = pytest.importorskip('scipy')\n"
                                         "    import scipy\n"})
    assert discover_suite(tmp_path).imports == ("attr",)


def test_coverage_plugins_come_with_cov_in_addopts(tmp_path):
    _write(tmp_path, {"pytest.ini": "[pytest]\naddopts = --cov=pkg\n", ".coveragerc": "[run]\nplugins = Cython.Coverage\n",
                      "tests/test_a.py": TEST})
    assert discover_suite(tmp_path).plugins == ("pytest-cov", "Cython")
