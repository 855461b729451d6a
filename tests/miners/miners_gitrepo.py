"""A tiny driver for real git repositories in a temporary folder (tests only)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_ENV = {
    "GIT_AUTHOR_NAME": "Ada", "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_COMMITTER_NAME": "Ada", "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "GIT_CONFIG_GLOBAL": "/dev/null",
}


class GitRepo:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.clock = 1_700_000_000
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str, input: bytes | None = None, check: bool = True) -> str:
        self.clock += 60
        date = f"{self.clock} +0000"
        env = {**os.environ, **_ENV, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        proc = subprocess.run(["git", "-C", str(self.path), *args], input=input, env=env,
                              capture_output=True)
        if check and proc.returncode:
            raise RuntimeError(f"git {args}: {proc.stderr.decode()}")
        return proc.stdout.decode("utf-8", "replace").strip()

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for rel, content in files.items():
            p = self.path / rel
            if content is None:
                self.git("rm", "-q", "--", rel)
                continue
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(content if isinstance(content, bytes) else content.encode())
            self.git("add", "--", rel)

    def commit(self, message: str, files: dict[str, str | bytes | None] | None = None) -> str:
        if files:
            self.write(files)
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)

    def merge_pr(self, number: int, title: str, files: dict[str, str | bytes | None],
                 branch: str | None = None) -> str:
        """A GitHub-style merge commit: a branch with one commit, merged with --no-ff."""
        branch = branch or f"pr-{number}"
        self.git("checkout", "-q", "-b", branch)
        self.commit(title, files)
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "--no-ff", branch, "-m", f"Merge pull request #{number} from ada/{branch}",
                 "-m", title)
        return self.head()

    def squash_pr(self, number: int, title: str, files: dict[str, str | bytes | None], body: str = "") -> str:
        msg = f"{title} (#{number})" + (f"\n\n{body}" if body else "")
        return self.commit(msg, files)

    def apply_check(self, commit: str, patch: str, reverse: bool = False) -> subprocess.CompletedProcess:
        """``git apply --check`` of ``patch`` on ``commit``'s tree, through a throwaway index."""
        idx = self.path / ".git" / "test-apply-index"
        env = {**os.environ, **_ENV, "GIT_INDEX_FILE": str(idx)}
        subprocess.run(["git", "-C", str(self.path), "read-tree", commit], env=env, check=True)
        args = ["git", "-C", str(self.path), "apply", "--cached", "--check"] + (["--reverse"] if reverse else [])
        proc = subprocess.run(args, input=patch.encode(), env=env, capture_output=True)
        idx.unlink(missing_ok=True)
        return proc
