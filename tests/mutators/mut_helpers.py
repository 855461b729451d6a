"""Helpers for the mutators' tests: real git repositories in temporary folders, mutant texts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mutators import make_operators, mutate_source
from mutators.diff import apply_patch, parse_patch


def git(repo: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["git", "-C", str(repo), *args], input=input, capture_output=True, text=True, check=False
    )


def make_repo(root: Path, files: dict[str, str | bytes]) -> tuple[Path, str]:
    """A git repository at root holding files, committed; (path, commit)."""
    root.mkdir(parents=True, exist_ok=True)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_bytes(content.encode())
    assert git(root, "init", "-q").returncode == 0
    git(root, "add", "-A")
    r = git(root, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-qm", "base")
    assert r.returncode == 0, r.stderr
    return root, git(root, "rev-parse", "HEAD").stdout.strip()


def mutants_of(source: str, operator: str, **kw) -> list[str]:
    """Every mutated version of source that one operator makes (each site, all variants)."""
    ops = [o for o in make_operators() if o.name == operator]
    kw.setdefault("max_per_function", 1000)
    result = mutate_source(source, "m.py", ops, **kw)
    assert result.skipped is None, result.skipped
    return [apply_patch(source, parse_patch(m.patch)["m.py"]) for m in result.mutants]
