"""Install and run failures get a reason key, a one-line cause from the log, and a fix to try."""

from __future__ import annotations

from verifiers.failures import explain_install, explain_run, strip_ansi

PIP_END = ("  error: subprocess-exited-with-error\n\n  × Building wheel did not run successfully.\n"
           "note: This error originates from a subprocess\nERROR: Failed to build installable wheels\n")


def test_ansi_codes_are_removed():
    assert strip_ansi("\x1b[31mERROR\x1b[0m: \x1b[1mboom\x1b[22m") == "ERROR: boom"


def test_a_missing_compiler():
    e = explain_install("building 'x._speedups' extension\nerror: command 'gcc' failed: No such file or directory\n"
                        + PIP_END)
    assert e.key == "missing_compiler" and "build-essential" in e.fix


def test_a_missing_header_names_the_debian_package():
    e = explain_install("src/x.c:3:10: fatal error: ffi.h: No such file or directory\n" + PIP_END)
    assert e.key == "missing_header" and "ffi.h" in e.cause and e.fix == "system_packages: [libffi-dev]"


def test_python_unsatisfiable():
    e = explain_install("ERROR: Package 'x' requires a different Python: 3.11.2 not in '>=3.11.5'\n")
    assert e.key == "python_unsatisfiable" and ">=3.11.5" in e.cause and "3.11.2" in e.cause


def test_network_needed_for_a_vcs_requirement():
    e = explain_install("Collecting r@ git+https://github.com/o/r\n  Cloning https://github.com/o/r to /tmp/pip-x\n"
                        "fatal: unable to access 'https://github.com/o/r/': Could not resolve host: github.com\n")
    assert e.key == "network_needed" and "github.com" in e.cause


def test_invalid_requirement_and_conflicts():
    assert explain_install("ERROR: Invalid requirement: 'unit-!py315t: dep'\n").key == "invalid_requirement"
    e = explain_install("ERROR: Cannot install x because these package versions have conflicting dependencies.\n"
                        "The conflict is caused by:\n    x 1.0 depends on y<2\nERROR: ResolutionImpossible\n")
    assert e.key == "dependency_conflict" and "y<2" in e.cause


def test_a_generic_failure_still_names_its_last_error_line():
    e = explain_install("step 1\nRuntimeError: the project refuses to build here\n" + PIP_END)
    assert e.key == "install_failed" and "refuses to build" in e.cause


def test_a_missing_pytest_plugin_from_addopts():
    e = explain_run("infra_error", "no report (exit 4)",
                    "ERROR: usage: __main__.py [options] [file_or_dir] [file_or_dir] [...]\n"
                    "__main__.py: error: unrecognized arguments: --cov=x --cov-report=term\n")
    assert e.key == "missing_pytest_plugin" and "pytest-cov" in e.fix


def test_a_conftest_that_does_not_import():
    e = explain_run("infra_error", "", "ImportError while loading conftest '/testbed/tests/conftest.py'.\n"
                    "tests/conftest.py:3: in <module>\n    import trio\nE   ModuleNotFoundError: No module named 'trio'\n")
    assert e.key == "conftest_import_error" and "trio" in e.fix and "tests/conftest.py" in e.cause


def test_no_tests_where_the_config_points():
    assert explain_run("no_tests", "no tests collected", "").key == "no_tests_found"


def test_a_dependency_with_no_release_for_this_python():
    e = explain_install("ERROR: Ignored the following versions that require a different python version: 2.0 "
                        "Requires-Python >=3.12\nERROR: Could not find a version that satisfies the requirement "
                        "dep>=2 (from versions: 1.0)\nERROR: No matching distribution found for dep>=2\n", python="3.11")
    assert e.key == "python_unsatisfiable" and "dep>=2" in e.cause and "3.11" in e.cause
    e = explain_install("ERROR: Could not find a version that satisfies the requirement nosuchdist (from versions: none)\n"
                        "ERROR: No matching distribution found for nosuchdist\n")
    assert e.key == "requirement_unavailable" and "nosuchdist" in e.cause
