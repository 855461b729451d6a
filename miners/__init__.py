"""miners: task candidates from history — local git, the GitHub API, and the PR mirror.

Public entry points (what ``factory mine`` calls):

- ``mine_local(repo_path, repo=KEY, ...)`` — merged PRs (merge and squash commits) of a clone.
- ``mine_github(repo_path, "OWNER/NAME", repo=KEY, cache_dir=..., ...)`` — PRs through the API,
  with linked issues as problem statements.
- ``mine_mirror(repo_path, repo=KEY, ...)`` — fixes re-introduced on HEAD (``pr_mirror``).
- ``group_candidates(cands)`` — install groups (one environment image each).
- ``make_leak_free_repo(src, base_commit, dest)`` — a start-state repository that hides the fix.

Each miner returns a ``MineResult``: candidates and a stats dict with ``skipped_<reason>`` counts.
"""

from miners.diffs import FileDiff, Limits, is_test_path, parse_diff, split_change
from miners.envgroup import EnvGroup, EnvGrouper, env_group_key, group_candidates
from miners.errors import GitError, GitHubError, MinerError, MissingDependency
from miners.github import mine_github
from miners.issues import linked_issue_numbers
from miners.leakfree import make_leak_free_repo
from miners.local import MineResult, mine_local
from miners.mirror import mine_mirror

__all__ = [
    "EnvGroup",
    "EnvGrouper",
    "FileDiff",
    "GitError",
    "GitHubError",
    "Limits",
    "MineResult",
    "MinerError",
    "MissingDependency",
    "env_group_key",
    "group_candidates",
    "is_test_path",
    "linked_issue_numbers",
    "make_leak_free_repo",
    "mine_github",
    "mine_local",
    "mine_mirror",
    "parse_diff",
    "split_change",
]
