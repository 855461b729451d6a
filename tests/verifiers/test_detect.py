"""Install detection reads a repository's own files; overrides win."""

from __future__ import annotations

from factory.schema import RepoSpec
from verifiers.detect import detect_install


def _write(root, files):
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def test_pyproject_test_extra_and_dependency_group(tmp_path):
    _write(tmp_path, {"pyproject.toml": """
[project]
name = "x"
[project.optional-dependencies]
docs = ["sphinx"]
test = ["pytest", "hypothesis"]
[dependency-groups]
dev = ["ruff"]
tests = ["pytest-mock"]
"""})
    r = detect_install(tmp_path)
    assert r.commands == ("python -m pip install -e '.[test]'", "python -m pip install --group tests",
                          "python -m pip install --no-deps -e .")
    assert r.test_cmd == "python -m pytest"


def test_dev_extra_is_used_only_without_a_test_extra(tmp_path):
    _write(tmp_path, {"setup.cfg": "[metadata]\nname = x\n[options.extras_require]\ndev = pytest\ndocs = sphinx\n"})
    assert detect_install(tmp_path).commands == ("python -m pip install -e '.[dev]'",)


def test_setup_py_extras_requirements_tox_and_nox(tmp_path):
    _write(tmp_path, {
        "setup.py": "setup(name='x', extras_require={'testing': ['pytest'], 'docs': []})\n",
        "requirements-dev.txt": "pytest\n",
        "tox.ini": "[testenv]\ndeps =\n    pytest>=7\n    py38: mock\n    -rrequirements-dev.txt\n    {env:EXTRA}\ncommands = pytest\n",
        "noxfile.py": "@nox.session\ndef tests(session):\n    session.install('-e', '.')\n    session.install('freezegun', 'pytest')\n",
    })
    cmds = detect_install(tmp_path).commands
    assert cmds[0] == "python -m pip install -e '.[testing]'"
    assert "python -m pip install -r requirements-dev.txt" not in cmds  # tox's deps install it, once
    # "py38: mock" is a factor-conditional dep of an environment that does not run here (Python 3.11)
    assert "python -m pip install 'pytest>=7' -r requirements-dev.txt" in cmds
    assert "python -m pip install freezegun pytest" in cmds


def test_a_plain_folder_with_requirements_installs_them(tmp_path):
    _write(tmp_path, {"requirements.txt": "six\n", "app.py": ""})
    r = detect_install(tmp_path)
    assert r.commands == ("python -m pip install -r requirements.txt",)
    assert r.detected_from == ("requirements.txt",)


def test_spec_overrides_win(tmp_path):
    _write(tmp_path, {"setup.py": "setup()\n"})
    spec = RepoSpec(source=str(tmp_path), install=("make deps",), pre_install=("pip install numpy<2",),
                    test_cmd="python -m pytest -x")
    r = detect_install(tmp_path, spec)
    assert r.commands == ("pip install numpy<2", "make deps")
    assert r.test_cmd == "python -m pytest -x"


def test_malformed_files_do_not_crash_detection(tmp_path):
    _write(tmp_path, {"pyproject.toml": "[project\nname=", "setup.cfg": "not ini at all [[[", "tox.ini": "[[["})
    r = detect_install(tmp_path)
    assert r.commands == ()


def test_nox_takes_the_test_sessions_plain_requirements_only(tmp_path):
    """jsonschema 4.23's noxfile, cut down: its test session installs ``virtue`` and a parametrized
    name; other sessions install linters and ``REQUIREMENTS["docs"]``, whose string ``docs`` a
    regex took for a requirement (pip: no release of docs for this Python, the install failed)."""
    _write(tmp_path, {
        "setup.py": "setup()\n",
        "requirements/tests.txt": "hypothesis\n",
        "noxfile.py": (
            "import nox\nROOT = '.'\nREQUIREMENTS = {'docs': 'docs/requirements.txt'}\n"
            "INSTALLABLE = [nox.param(ROOT, id='plain')]\n\n"
            "@nox.session(python=['3.11'])\n@nox.parametrize('installable', INSTALLABLE)\n"
            "def tests(session, installable):\n    session.install('virtue', installable)\n"
            "    session.install('coverage[toml]')\n    session.install('-r', 'requirements/tests.txt')\n"
            "    session.install('-r', 'requirements/missing.txt')\n\n"
            "@nox.session(tags=['style'])\ndef style(session):\n    session.install('ruff')\n\n"
            "@nox.session()\ndef docs(session):\n    session.install('-r', REQUIREMENTS['docs'])\n"
            "    session.install(f'{ROOT}[format]', 'pyperf')\n"
        ),
    })
    cmds = detect_install(tmp_path).commands
    nox = [c for c in cmds if "virtue" in c]
    assert nox == ["python -m pip install virtue 'coverage[toml]' -r requirements/tests.txt"], cmds
    assert not any(w in c.split() for c in cmds for w in ("docs", "ruff", "pyperf"))


def test_nox_without_a_test_session_reads_every_session(tmp_path):
    _write(tmp_path, {"noxfile.py": "import nox\n\n@nox.session\ndef check(s):\n    s.install('pytest', 'freezegun')\n",
                      "setup.py": "setup()\n"})
    assert "python -m pip install pytest freezegun" in detect_install(tmp_path).commands
