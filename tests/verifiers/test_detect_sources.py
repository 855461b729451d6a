"""Detection reads what projects really use: PKG-INFO versions, tox factors, other extra names,
the suite's own configuration, CI system packages; the package under test is installed last."""

from __future__ import annotations

from verifiers.detect import detect_install, pkg_info_version, tox_env_deps
from verifiers.discover import discover_suite


def _write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


PKG_INFO = "Metadata-Version: 2.1\nName: x\nVersion: 2.4.1\nRequires-Python: >=3.8\n\nbody\n"


def test_an_sdist_version_is_told_to_scm_tools(tmp_path):
    _write(tmp_path, {"PKG-INFO": PKG_INFO, "pyproject.toml": "[build-system]\nrequires=['setuptools_scm']\n"})
    r = detect_install(tmp_path)
    assert pkg_info_version(tmp_path) == "2.4.1"
    assert "SETUPTOOLS_SCM_PRETEND_VERSION=2.4.1" in r.env
    assert "PDM_BUILD_SCM_VERSION=2.4.1" in r.env
    assert "PKG-INFO version 2.4.1" in r.detected_from


def test_a_git_checkout_without_pkg_info_sets_no_version(tmp_path):
    _write(tmp_path, {"pyproject.toml": "[project]\nname='x'\n"})
    assert detect_install(tmp_path).env == ()


def test_tox_factor_conditions_are_evaluated_for_the_env_that_runs_the_tests(tmp_path):
    _write(tmp_path, {"tox.ini": """
[tox]
envlist = lint, py{39,311,315t}-unit, docs
[testenv]
deps =
    pytest
    py39: mock
    unit-!py315t: hypothesis
    py315t: nogil-only
    lint: ruff
    !unit: never
    git+https://github.com/o/r.git#egg=r
    .[speedups]
extras = tests
"""})
    t = tox_env_deps(tmp_path, "3.11")
    assert t.env == "py311-unit"
    assert t.deps == ("pytest", "hypothesis")
    assert t.extras == ("tests", "speedups")
    assert any("github.com" in n and "only PyPI" in n for n in t.notes)


def test_tox_extras_join_the_editable_install(tmp_path):
    _write(tmp_path, {"setup.py": "setup(name='x')\n", "tox.ini": "[testenv]\nextras = testing\ncommands = pytest\n"})
    assert detect_install(tmp_path).commands[0] == "python -m pip install -e '.[testing]'"


def test_extras_with_other_names(tmp_path):
    _write(tmp_path, {"pyproject.toml": "[project]\nname='x'\n[project.optional-dependencies]\n"
                                        "all = ['numpy']\ndocs = ['sphinx']\n"})
    assert detect_install(tmp_path).commands[0] == "python -m pip install -e '.[all]'"
    _write(tmp_path, {"pyproject.toml": "[project]\nname='x'\n[project.optional-dependencies]\n"
                                        "all = ['numpy']\ntests-extra = ['pytest-mock']\n"})
    assert detect_install(tmp_path).commands[0] == "python -m pip install -e '.[tests-extra]'"


def test_the_suites_own_config_names_plugins_and_imports(tmp_path):
    _write(tmp_path, {
        "pyproject.toml": "[project]\nname='mypkg'\n[tool.pytest.ini_options]\n"
                          "addopts = '--cov=mypkg -n 2 --strict-markers'\nrequired_plugins = ['pytest-timeout>=2']\n",
        "src/mypkg/__init__.py": "",
        "tests/conftest.py": "import trio\nimport yaml\nimport mypkg\nimport helpers\npytest_plugins = ['pytest_mock']\n",
        "tests/helpers.py": "",
        "tests/test_a.py": "import os\nfrom dateutil import tz\n\ndef test_a():\n    pass\n",
    })
    s = discover_suite(tmp_path)
    assert s.config_file == "pyproject.toml"
    assert set(s.plugins) == {"pytest-cov", "pytest-xdist", "pytest-timeout>=2", "pytest-mock"}
    assert s.imports == ("dateutil", "trio", "yaml")  # not os, not the project, not a test helper
    cmds = detect_install(tmp_path).commands
    assert any(c.startswith("for d in pytest-cov") for c in cmds)
    probe = next(c for c in cmds if c.startswith("missing=$("))
    assert "python-dateutil" in probe and "PyYAML" in probe and "'trio'" in probe


def test_the_project_is_reinstalled_last_when_requirement_files_follow(tmp_path):
    _write(tmp_path, {"setup.py": "setup(name='x')\n", "requirements-test.txt": "pytest\n",
                      "requirements-dev.txt": "x==0.1  # through the docs\n"})
    cmds = detect_install(tmp_path).commands
    assert cmds == ("python -m pip install -e .", "python -m pip install -r requirements-test.txt",
                    "python -m pip install --no-deps -e .")  # dev requirements only without test ones


def test_ci_apt_packages_and_compile_steps(tmp_path):
    _write(tmp_path, {
        "setup.py": "setup(name='x')\n",
        ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: sudo apt-get install -y gettext libxml2-dev\n"
                                    "      - run: python setup.py compile_catalog\n      - run: pytest\n",
    })
    r = detect_install(tmp_path)
    assert r.commands[0].startswith("apt-get update -qq && for p in gettext libxml2-dev;")
    assert any("compile_catalog" in c and "setup step failed" in c for c in r.commands)
    assert "CI apt packages: gettext libxml2-dev" in r.detected_from


def test_what_ci_s_make_target_runs_before_pytest_is_a_setup_step(tmp_path):
    """holidays' CI runs ``make test``, whose recipe compiles the translations before pytest: that
    step is the project's, and without it 193 of its tests fail on a clean tree. The recipe's
    checks, installs and echoes are not set-up; a target that runs no pytest gives nothing."""
    _write(tmp_path, {
        "setup.py": "setup(name='x')\n",
        "Makefile": "doc:\n\tsphinx-build docs out\n\n"
                    "test:\n\t@echo testing\n\tscripts/gen_mo.py\n\n# then the checks\n\tpip install -q extra\n"
                    "\tpre-commit run\n\t-scripts/gen_data.py\n\tpytest --numprocesses auto\n\tscripts/after.py\n",
        ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - name: Run tests\n        run: |\n"
                                    "          make test\n      - run: make doc\n",
    })
    r = detect_install(tmp_path)
    steps = [c for c in r.commands if "setup step failed" in c]
    assert steps == ["(scripts/gen_mo.py) || echo 'taskfactory: setup step failed: 'scripts/gen_mo.py",
                     "(scripts/gen_data.py) || echo 'taskfactory: setup step failed: 'scripts/gen_data.py"], r.commands
    assert "setup steps: scripts/gen_mo.py; scripts/gen_data.py" in r.detected_from


def test_a_make_targets_prerequisites_and_sub_makes_run_before_its_pytest(tmp_path):
    """Makefiles more often put the step before the tests in a prerequisite (``test: l10n``) or a
    sub-make (``$(MAKE) l10n``) than in the test recipe itself: both are walked in make's order,
    each target once (a cycle ends), and a step after pytest or in a target CI never reaches is not
    taken."""
    _write(tmp_path, {
        "setup.py": "setup(name='x')\n",
        "Makefile": "PY ?= python\n.PHONY: test l10n data\n\n"
                    "l10n: data\n\tscripts/gen_mo.py\n\n"
                    "data: l10n\n\tscripts/gen_data.py\n\n"
                    "lint:\n\truff check .\n\n"
                    "fixtures:\n\tscripts/fixtures.py\n\n"
                    "docs:\n\tsphinx-build docs out\n\n"
                    "test: l10n lint\n\t$(MAKE) fixtures\n\tpytest\n\t$(MAKE) docs\n",
        ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: make test\n",
    })
    r = detect_install(tmp_path)
    steps = [c.split(")")[0].lstrip("(") for c in r.commands if "setup step failed" in c]
    assert steps == ["scripts/gen_data.py", "scripts/gen_mo.py", "scripts/fixtures.py"], r.commands


def test_a_make_recipe_s_variables_are_expanded_and_its_runner_dropped(tmp_path):
    """holidays' current Makefile runs each command through ``$(UV_RUN_CMD)`` (``uv run --no-sync``):
    the variable is expanded and the runner dropped, since the image's environment is the project's.
    Cleaning (``find ... -delete``) and lines whose variables stay unknown are not set-up."""
    _write(tmp_path, {
        "setup.py": "setup(name='x')\n",
        "Makefile": "UV_RUN_CMD = uv run --no-sync\n\n"
                    "l10n:\n\tfind . -type f -name '*.pot' -delete\n\t$(UV_RUN_CMD) scripts/gen_po.py\n"
                    "\t$(OTHER) scripts/unknown.py\n\n"
                    "test: l10n\n\t$(UV_RUN_CMD) scripts/gen_mo.py\n\t$(UV_RUN_CMD) pytest -q\n",
        ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: make test\n",
    })
    r = detect_install(tmp_path)
    steps = [c.split(")")[0].lstrip("(") for c in r.commands if "setup step failed" in c]
    assert steps == ["scripts/gen_po.py", "scripts/gen_mo.py"], r.commands


def test_a_make_target_that_never_reaches_pytest_gives_no_steps(tmp_path):
    _write(tmp_path, {
        "setup.py": "setup(name='x')\n",
        "Makefile": "build:\n\tscripts/build.py\n\nall: build\n\tscripts/package.py\n",
        ".github/workflows/ci.yml": "jobs:\n  t:\n    steps:\n      - run: make all\n      - run: pytest\n",
    })
    r = detect_install(tmp_path)
    assert not [c for c in r.commands if "setup step failed" in c], r.commands


def test_a_guessed_distribution_is_installed_only_where_the_project_declares_it(tmp_path):
    _write(tmp_path, {"setup.py": "setup(name='x')\n", "tox.ini": "[testenv]\ndeps = foo-bar>=1\n",
                      "tests/test_a.py": "from helper import h\nimport foo_bar\n\ndef test_a():\n    pass\n"})
    r = detect_install(tmp_path)
    probe = next(c for c in r.commands if c.startswith("missing=$("))
    assert "foo-bar" in probe and "helper" not in probe  # helper.py was left out of the sdist: no PyPI "helper"
    assert any("not installed" in n and "helper" in n for n in r.notes)
