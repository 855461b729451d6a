"""The Python an environment gets follows the project's requires-python among those on offer."""

from __future__ import annotations

from verifiers.pythons import choose_python, requires_python


def test_the_asked_python_when_it_satisfies():
    assert choose_python("3.11", ">=3.8").series == "3.11"
    assert choose_python("3.11", None).series == "3.11"


def test_a_newer_patch_release_than_debian_has_moves_to_the_next_python():
    c = choose_python("3.11", ">=3.11.5")
    assert c.series == "3.13" and "3.11.2" in c.note


def test_an_old_project_gets_an_older_python():
    assert choose_python("3.11", ">=3.7,<3.10").series == "3.9"


def test_nothing_on_offer_is_a_specific_failure():
    c = choose_python("3.11", ">=3.14")
    assert c.unsatisfiable and "3.9.2, 3.11.2, 3.13.5" in c.unsatisfiable


def test_where_requires_python_is_read(tmp_path):
    (tmp_path / "setup.py").write_text("setup(python_requires='>=3.9')\n")
    assert requires_python(tmp_path) == (">=3.9", "setup.py")
    (tmp_path / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: x\nVersion: 1\nRequires-Python: >=3.10\n\n")
    assert requires_python(tmp_path) == (">=3.10", "PKG-INFO")
