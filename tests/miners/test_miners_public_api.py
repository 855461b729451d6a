"""The miners' public surface: what ``factory mine`` may call, kept from drifting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import miners

EXPECTED = {
    "EnvGroup", "EnvGrouper", "FileDiff", "GitError", "GitHubError", "Limits", "MineResult", "MinerError",
    "MissingDependency", "env_group_key", "group_candidates", "is_test_path", "linked_issue_numbers",
    "make_leak_free_repo", "mine_github", "mine_local", "mine_mirror", "parse_diff", "split_change",
}


def test_all_is_exactly_the_documented_surface():
    assert set(miners.__all__) == EXPECTED
    for name in miners.__all__:
        assert getattr(miners, name) is not None


def test_miners_import_no_other_stage_package_and_pygithub_lazily():
    # in a fresh interpreter: other tests in the same session may have imported anything
    code = ("import sys, miners\n"
            "for m in ('diffs','envgroup','errors','github','gitio','issues','leakfree','local','mirror'):\n"
            "    __import__('miners.' + m)\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('mutators', 'verifiers', 'github'))\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(miners.__file__).parents[1]).stdout.strip()
    assert out == "[]"


def test_errors_form_one_tree():
    assert issubclass(miners.GitError, miners.MinerError)
    assert issubclass(miners.GitHubError, miners.MinerError)
    assert issubclass(miners.MissingDependency, miners.MinerError)
