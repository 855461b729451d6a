"""The host side of the sandbox-overhead benchmarks: the repository in a fresh venv, no container.

Used by ``bench/spine.py`` and ``bench/validate.py`` so both compare against the same thing: the
tree at the checkout's commit (a git repository, so patches can be applied and reset), installed
editable with the same pytest major as the base image.
"""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

PYTEST = "pytest>=8.3,<9"  # the base image's pin (verifiers/images.py)


def make_host_env(co, root: Path) -> tuple[Path, Path]:
    """(tree, python): ``co``'s tree at ``root/tree`` with one commit, and a venv that has it."""
    tree = root / "tree"
    tree.mkdir()
    subprocess.run(f"git -C {co.path} archive {co.commit} | tar -x -C {tree}", shell=True, check=True)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "base"]):
        subprocess.run(cmd, cwd=tree, check=True, capture_output=True)
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "-e", str(tree), PYTEST], check=True, capture_output=True)
    return tree, py
