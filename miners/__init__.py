"""miners: task candidates from history — local git, the GitHub API, and the PR mirror.

What ``factory mine`` calls (``path`` is the checkout, ``key`` is ``RepoSpec.key``)::

    mine_local(path, repo=key, since="2024-01-01", max_candidates=500,
               test_globs=spec.test_file_patterns)                        # factory mine SPEC
    mine_github(path, "OWNER/NAME", repo=key, cache_dir=RUN/"repos"/key/"github",
                since=..., max_candidates=...)                             # --github OWNER/NAME
    mine_mirror(path, repo=key, since=..., max_candidates=...)             # --mirror

Each returns a ``MineResult``: ``candidates`` (factory.schema.Candidate, origin ``pr`` or
``pr_mirror``) and ``stats`` (counts; ``skipped_<reason>`` per skipped change). Expected trouble
is counted, never raised; what is raised is a ``MinerError`` (see ``miners.errors``).

Also: ``group_candidates`` (install groups, one environment image each) and
``make_leak_free_repo`` (a start-state repository that cannot reveal the fix).
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
