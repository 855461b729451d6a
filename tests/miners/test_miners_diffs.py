"""diffs: parsing git's patch output and the rules that split or skip a change (pure, no git)."""

from __future__ import annotations

import pytest

from miners.diffs import (
    FileDiff,
    Limits,
    NonUtf8Diff,
    is_test_path,
    parse_diff,
    python_semantics_equal,
    split_change,
)


@pytest.mark.parametrize("path, expected", [
    ("tests/test_core.py", True), ("pkg/tests/helpers.py", True), ("test/data.json", True),
    ("testing/plugin.py", True), ("pkg/test_core.py", True), ("pkg/core_test.py", True),
    ("conftest.py", True), ("pkg/conftest.py", True),
    ("pkg/core.py", False), ("pkg/testament.py", False), ("pkg/attest.py", False), ("contest/x.py", False),
])
def test_is_test_path(path, expected):
    assert is_test_path(path) is expected


def test_repository_globs_mark_more_test_files():
    assert is_test_path("spec/core_spec.rb", ("spec/*",))
    assert is_test_path("lib/check_core.py", ("check_*.py",))
    assert not is_test_path("lib/core.py", ("check_*.py",))


def _section(old: str, new: str, body: str, header_extra: str = "") -> str:
    return f"diff --git a/{old} b/{new}\n{header_extra}--- a/{old}\n+++ b/{new}\n{body}"


def test_parse_diff_reads_paths_counts_and_kinds():
    raw = (
        _section("a.py", "a.py", "@@ -1,2 +1,2 @@\n x = 1\n-y = 2\n+y = 3\n@@ -9 +9 @@\n-z\n+w\n",
                 "index 1111111..2222222 100644\n")
        + "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
        + "diff --git a/gone.py b/gone.py\ndeleted file mode 100644\nindex 3333333..0000000\n"
          "--- a/gone.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-q = 1\n"
        + "diff --git a/logo.png b/logo.png\nnew file mode 100644\nindex 0000000..4444444\n"
          "Binary files /dev/null and b/logo.png differ\n"
        + 'diff --git "a/caf\\303\\251 x.py" "b/caf\\303\\251 x.py"\nnew file mode 100644\nindex 0000000..5555555\n'
          '--- /dev/null\n+++ "b/caf\\303\\251 x.py"\n@@ -0,0 +1 @@\n+c = 1\n'
    ).encode()
    files = parse_diff(raw)
    assert [f.path for f in files] == ["a.py", "new.py", "gone.py", "logo.png", "café x.py"]
    a, ren, gone, logo, cafe = files
    assert (a.num_added, a.num_removed, a.num_hunks) == (2, 2, 2)
    assert a.added_lines == ("y = 3", "w") and a.old_blob == "1111111"
    assert (ren.old_path, ren.new_path, ren.num_hunks) == ("old.py", "new.py", 0)
    assert gone.new_path is None and gone.old_path == "gone.py"
    assert logo.binary and logo.old_path is None
    assert cafe.old_path is None and cafe.num_added == 1
    assert "".join(f.text for f in files) == raw.decode()  # sections concatenate back to the input


def test_parse_diff_rejects_non_utf8():
    with pytest.raises(NonUtf8Diff):
        parse_diff(_section("a.py", "a.py", "@@ -1 +1 @@\n-x\n+caf\xe9\n").encode("latin-1"))
    with pytest.raises(NonUtf8Diff):
        parse_diff(b'diff --git "a/caf\\351.py" "b/caf\\351.py"\nnew file mode 100644\n')


def _fd(path: str, added=("x = 2",), removed=("x = 1",), **kw) -> FileDiff:
    text = f"diff --git a/{path} b/{path}\n@@ -1 +1 @@\n" + "".join(f"-{r}\n" for r in removed) + \
        "".join(f"+{a}\n" for a in added)
    kw.setdefault("old_path", path)
    kw.setdefault("new_path", path)
    return FileDiff(text=text, added_lines=tuple(added), removed_lines=tuple(removed), num_added=len(added),
                    num_removed=len(removed), num_hunks=1, **kw)


@pytest.mark.parametrize("files, subject, reason", [
    ([_fd("docs/index.rst"), _fd("README.md")], "Docs", "docs_only"),
    ([_fd(".github/workflows/ci.yml"), _fd(".pre-commit-config.yaml")], "CI", "ci_only"),
    ([_fd("pkg/core.py")], "Fix", "no_tests"),
    ([_fd("tests/test_core.py")], "Tests", "tests_only"),
    ([_fd("pkg/__init__.py", added=("__version__ = '1.1'",), removed=("__version__ = '1.0'",)),
      _fd("tests/test_v.py")], "Tidy", "release_bump"),
    ([_fd("pkg/core.py"), _fd("tests/test_core.py")], "Release 2.0.1", "release_bump"),
    ([_fd("pkg/core.py", added=("# note",), removed=("# old note",)), _fd("tests/test_core.py")], "x",
     "comments_only"),
    ([_fd("pkg/_vendor/six.py"), _fd("pkg/core.py"), _fd("tests/test_core.py")], "x", "vendored"),
    ([_fd("pkg/core.py", binary=True), _fd("tests/test_core.py")], "x", "binary"),
    ([_fd("pkg/sub", submodule=True), _fd("tests/test_core.py")], "x", "submodule"),
    ([], "x", "empty"),
    ([_fd("requirements.txt"), _fd("tests/test_core.py")], "Pin attrs", "deps_only"),
    ([_fd("pyproject.toml"), _fd("setup.cfg")], "Build config", "deps_only"),
    ([_fd("pkg/core.py", added=("",), removed=()), _fd("tests/test_core.py")], "x",
     "comments_only"),  # a blank line added: layout, not a release
])
def test_skip_rules(files, subject, reason):
    assert split_change(files, subject=subject).skip == reason


@pytest.mark.parametrize("path, kind", [
    ("pkg/security.py", "code"), ("pkg/changes.py", "code"), ("SECURITY.md", "doc"), ("CHANGES", "doc"),
    ("docs/conf.py", "doc"), ("requirements/dev.txt", "deps"), ("requirements-test.txt", "deps"),
    ("pyproject.toml", "deps"), ("pkg/_vendor/six.py", "vendored"), (".github/workflows/ci.yml", "ci"),
    ("notes.txt", "doc"),
])
def test_file_kinds(path, kind):
    from miners.diffs import file_kind

    assert file_kind(path) == kind


def test_release_rule_does_not_catch_ordinary_titles():
    files = [_fd("pkg/core.py"), _fd("tests/test_core.py")]
    for subject in ("Release the GIL in f()", "Bump coverage of parser", "Version check for py3.12"):
        assert split_change(files, subject=subject).skip == ""


def test_split_keeps_docs_with_code_and_tests_apart():
    got = split_change([_fd("CHANGES.rst"), _fd("pkg/core.py"), _fd("tests/test_core.py")], subject="Fix")
    assert got.skip == ""
    assert [f.path for f in got.code_files] == ["pkg/core.py"]
    assert got.patch.count("diff --git") == 2 and "CHANGES.rst" in got.patch
    assert "tests/test_core.py" in got.test_patch and "tests/" not in got.patch


def test_limits():
    files = [_fd("pkg/a.py"), _fd("pkg/b.py"), _fd("tests/test_a.py")]
    assert split_change(files, limits=Limits(max_files=2)).skip == "too_many_files"
    assert split_change(files, limits=Limits(max_code_files=1)).skip == "too_many_code_files"
    assert split_change(files, limits=Limits(max_code_lines=3)).skip == "too_many_lines"
    assert split_change(files, limits=Limits(max_test_lines=1)).skip == "too_many_test_lines"
    assert split_change(files, limits=Limits(max_hunks=1)).skip == "too_many_hunks"
    with pytest.raises(ValueError, match="max_hunks"):
        Limits(max_hunks=0)


def test_renames_and_new_files_are_never_comment_only():
    files = [_fd("pkg/new.py", added=(), removed=(), old_path="pkg/old.py"), _fd("tests/test_x.py")]
    assert split_change(files).skip == ""


def test_python_semantics_equal_ignores_comments_docstrings_layout():
    old = 'def f(x):\n    """Doc."""\n    return x+1  # inc\n'
    assert python_semantics_equal(old, 'def f(x):\n    """Other doc."""\n\n    return (x + 1)\n')
    assert python_semantics_equal(old, "def f(x):\n    return x + 1\n")
    assert not python_semantics_equal(old, "def f(x):\n    return x + 2\n")
    assert not python_semantics_equal(old, "def f(x:\n")  # unparsable: a real change, as far as we know
    assert not python_semantics_equal(None, old)


def test_line_numbers_follow_the_hunks():
    raw = _section("a.py", "a.py", "@@ -3,3 +3,4 @@ ctx\n a\n-b\n+B\n+C\n c\n@@ -20 +21 @@\n-z\n+w\n").encode()
    (f,) = parse_diff(raw)
    assert f.removed_linenos == (4, 20) and f.added_linenos == (4, 5, 21)


def _real_diff(old: str, new: str) -> FileDiff:
    import difflib

    body = "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "a/m.py", "b/m.py"))
    (f,) = parse_diff(f"diff --git a/m.py b/m.py\n{body}".encode())
    return f


@pytest.mark.parametrize("new, cosmetic", [
    ('"""Module, reworded."""\n\n\ndef f(x):\n    """Add one."""\n    return x + 1  # inc\n', True),
    ('"""Module."""\n\n\ndef f(x):\n    """Add one,\n    and say so."""\n    # why\n    return x + 1  # inc\n', True),
    ('"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    return x + 2  # inc\n', False),
    ('"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    s = """\n# not a comment\n"""\n    return x + 1\n', False),
])
def test_python_change_is_cosmetic(new, cosmetic):
    from miners.diffs import python_change_is_cosmetic

    old = '"""Module."""\n\n\ndef f(x):\n    """Add one."""\n    return x + 1  # inc\n'
    assert python_change_is_cosmetic(_real_diff(old, new), old, new) is cosmetic
