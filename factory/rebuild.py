"""How to rebuild a task's image from public parts, with ``docker build`` alone.

For every published task, ``task_build_files`` writes a build context: a ``Dockerfile`` that starts
from the official ``python:3.X-slim``, fetches the repository at its commit from where it is public
(the sdist from PyPI, checked by sha256; a git URL cloned at the commit; a local repository has no
public copy, so its tree ships as ``repo.tar``), installs it with the recipe the environment image
was built with, bakes in our pytest report plugin (``tf_report.py``), and applies the start-state
change (``start.patch``) as a fresh single-commit repository, exactly as the task image was made.

The same steps as our own build give the same bytes at ``/testbed``, and since the start-state
commit has fixed author, committer and dates, the same commit id: the Dockerfile checks that the
fetched source has the tree id of the commit the task was made from, and that the start state's
commit is the row's ``base_commit``. A rebuilt image is therefore graded by the row as it is
(``factory evaluate`` checks out ``base_commit``); a build that would differ fails instead.

The base and environment steps are ``verifiers.images``' own templates (the base it uses where a
registry answers, and the environment Dockerfile with its ``FROM`` and source lines replaced), so
the recipe cannot drift from what built the images. Our own builds keep using debootstrap where no
registry answers; only this recipe names ``python:3.X-slim``.

Not for: building anything (a user runs ``docker build``; the tests do too).
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from factory.errors import FactoryError
from factory.schema import EnvSpec, RepoSpec
from factory.store import RunStore

__all__ = ["FETCH_SDIST", "RebuildError", "Recipes", "TaskBuild", "start_patch_for"]


# Fetch an sdist from the package index's JSON API, check its sha256, unpack it into a tar of the
# tree the way factory.repo does (regular files only, top folder dropped, 0755 where any x bit).
FETCH_SDIST = '''\
"""Fetch NAME==VERSION's sdist, check its sha256, write its tree (top folder dropped) as a tar."""
import hashlib, io, json, sys, tarfile, urllib.parse, urllib.request, zipfile
name, version, index, out = sys.argv[1:5]
meta = json.load(urllib.request.urlopen(f"{index.rstrip('/')}/{name}/json", timeout=120))
info = [u for u in meta["releases"][version] if u.get("packagetype") == "sdist"][0]
url = urllib.parse.urljoin(f"{index}/", info["url"]) if "://" not in info["url"] else info["url"]
data = urllib.request.urlopen(url, timeout=600).read()
want = info.get("digests", {}).get("sha256")
if want and hashlib.sha256(data).hexdigest() != want:
    sys.exit(f"{info['filename']}: sha256 mismatch")
def strip(n):
    parts = [p for p in n.split("/") if p]
    return None if len(parts) < 2 or ".." in parts or n.startswith("/") else "/".join(parts[1:])
members = []
if info["filename"].endswith(".zip"):
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for m in zf.infolist():
            if not m.is_dir() and strip(m.filename):
                members.append((strip(m.filename), zf.read(m), 0o644))
else:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf.getmembers():
            if m.isfile() and strip(m.name):
                members.append((strip(m.name), tf.extractfile(m).read(), 0o755 if m.mode & 0o111 else 0o644))
with tarfile.open(out, "w") as t:
    for rel, blob, mode in members:
        ti = tarfile.TarInfo(rel); ti.size = len(blob); ti.mode = mode
        t.addfile(ti, io.BytesIO(blob))
print(f"{info['filename']}: {len(members)} files, sha256 {want}")
'''


class RebuildError(FactoryError):
    """A task's rebuild recipe cannot be written (its environment or source is unknown)."""


@dataclass
class TaskBuild:
    """One task's build context: file name -> content."""

    instance_id: str
    files: dict[str, bytes] = field(default_factory=dict)

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, data in self.files.items():
            (folder / name).write_bytes(data)


def _sh(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def _git(repo: Path, *args: str, input_: bytes | None = None) -> bytes:
    proc = subprocess.run(["git", "-C", str(repo), *args], input=input_, capture_output=True)
    if proc.returncode != 0:
        raise RebuildError(f"git {' '.join(args[:2])} failed: {proc.stderr.decode(errors='replace').strip()[:300]}")
    return proc.stdout


def start_patch_for(worktree: Path, row: dict) -> str:
    """The change from the environment's snapshot to the task's start state.

    Injected bugs: the gold patch reversed (validation made the gold patch as exactly that
    reverse). Pull requests: the diff from the install group's commit to the PR's base, as the
    validator applied it.
    """
    if row["source"] in ("pr", "pr_mirror"):
        if row["environment_setup_commit"] == row["upstream_commit"]:
            return ""
        return _git(worktree, "diff", "--binary", "--full-index", row["environment_setup_commit"],
                    row["upstream_commit"]).decode()
    _git(worktree, "checkout", "-q", "-f", row["environment_setup_commit"])
    _git(worktree, "clean", "-qfdx")
    _git(worktree, "apply", "-R", "--whitespace=nowarn", "-", input_=row["patch"].encode())
    _git(worktree, "add", "-A")
    out = _git(worktree, "diff", "--cached", "--binary", "--full-index").decode()
    _git(worktree, "reset", "-q", "--hard")
    return out


class Recipes:
    """Rebuild recipes for the rows of one run (repositories and environments read once)."""

    def __init__(self, run_dir: Path) -> None:
        self.store = RunStore(run_dir)
        self._envs: dict[str, EnvSpec] = {}
        self._freeze: dict[str, tuple[str, ...]] = {}
        self._specs: dict[str, RepoSpec] = {}
        for key in self.store.repo_keys():
            rd = self.store.repo(key)
            raw = rd.read_spec()
            if raw:
                self._specs[key] = RepoSpec.parse(raw)
            for path in [rd.root / "env.json", *sorted((rd.root / "envs").glob("*.json"))]:
                if path.is_file():
                    data = json.loads(path.read_text())
                    spec = data["spec"]
                    env = EnvSpec(**{**spec, **{k: tuple(v) for k, v in spec.items() if isinstance(v, list)}})
                    self._envs[data.get("tag") or env.tag] = env
                    self._freeze[data.get("tag") or env.tag] = tuple(data.get("pip_freeze") or ())
        self._checkouts: dict[str, object] = {}
        self._worktrees: dict[str, Path] = {}
        self._stack = None

    def __enter__(self) -> Recipes:
        import contextlib  # noqa: PLC0415

        self._stack = contextlib.ExitStack()
        return self

    def __exit__(self, *exc) -> None:
        if self._stack is not None:
            self._stack.close()

    def env_for(self, row: dict) -> EnvSpec:
        tag = json.loads(row.get("provenance") or "{}").get("env_image", "")
        env = self._envs.get(tag)
        if env is None:
            raise RebuildError(f"{row['instance_id']}: its environment {tag or '(unknown)'} is not in the run")
        return env

    def _checkout(self, key: str):
        from factory.repo import checkout  # noqa: PLC0415

        if key not in self._checkouts:
            if key not in self._specs:
                raise RebuildError(f"repository {key}: no spec.json in the run")
            self._checkouts[key] = checkout(self._specs[key])
        return self._checkouts[key]

    def _worktree(self, key: str) -> Path:
        if key not in self._worktrees:
            if self._stack is None:
                raise RebuildError("use Recipes as a context manager")
            self._worktrees[key] = self._stack.enter_context(self._checkout(key).worktree())
        return self._worktrees[key]

    def _source_lines(self, env: EnvSpec, files: dict[str, bytes]) -> list[str]:
        """Dockerfile lines that leave the repository's tree at ``env.commit`` in /tmp/repo.tar."""
        spec = self._specs[env.repo]
        co = self._checkout(env.repo)
        if spec.kind == "pypi":
            name, version = spec.pypi
            files["fetch_sdist.py"] = FETCH_SDIST.encode()
            return [
                f"# The repository: {name} {version}'s sdist from PyPI (sha256 checked), as factory.repo unpacks it",
                "ARG PYPI_JSON=https://pypi.org/pypi",
                "COPY fetch_sdist.py /tmp/fetch_sdist.py",
                f"RUN python /tmp/fetch_sdist.py {_sh(name)} {_sh(version)} \"$PYPI_JSON\" /tmp/repo.tar "
                "&& rm /tmp/fetch_sdist.py",
            ]
        if spec.kind == "git":
            return [
                f"# The repository: {spec.source} at {env.commit}",
                f"RUN git clone --quiet {_sh(spec.source)} /tmp/src && git -C /tmp/src archive --format=tar "
                f"-o /tmp/repo.tar {env.commit} && rm -rf /tmp/src",
            ]
        # a local repository has no public copy: its tree at the commit ships with the recipe
        files["repo.tar"] = _git(Path(co.path), "archive", "--format=tar", env.commit)
        return [f"# The repository: a local repository's tree at {env.commit} (no public copy)",
                "COPY repo.tar /tmp/repo.tar"]

    def build(self, row: dict) -> TaskBuild:
        """The build context that rebuilds ``row``'s image (checked against its base_commit)."""
        from verifiers.images import _base_dockerfile, _env_dockerfile, plugin_source  # noqa: PLC0415
        from verifiers.taskimage import start_state_script  # noqa: PLC0415  (the task image's own script)

        env = self.env_for(row)
        files: dict[str, bytes] = {}
        tree = _git(Path(self._checkout(env.repo).path), "rev-parse", f"{env.commit}^{{tree}}").decode().strip()
        official = f"python:{env.python}-slim"
        lines = [
            f"# Rebuilds the image of task {row['instance_id']} from public parts:",
            f"#   docker build -t IMAGE .    (in this folder; needs {official} and network for pip)",
            "# The last step checks that the start state is the row's base_commit.",
        ]
        lines += _base_dockerfile(official, from_debian=False, with_ca=False).strip().splitlines()
        env_lines = _env_dockerfile(dataclasses.replace(env, base_image=official)).strip().splitlines()
        tag = json.loads(row.get("provenance") or "{}").get("env_image", "")
        pins = sorted(p for p in self._freeze.get(tag, ()) if re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^\s;]+", p)
                      and p.split("==")[0].lower() not in ("pip", "setuptools", "wheel"))
        for line in env_lines[1:]:  # its FROM is the base above
            if line.startswith("COPY tf_report.py") and pins:
                # the versions the environment image was built with, so a later release cannot differ
                lines.append("RUN python -m pip install -q " + " ".join(_sh(p) for p in pins))
            if line.startswith("COPY repo.tar"):
                lines += self._source_lines(env, files)
                continue
            lines.append(line)
            if line.startswith("RUN mkdir -p /testbed && tar -C /testbed"):
                lines.append(f"RUN cd /testbed && test \"$(git rev-parse HEAD^{{tree}})\" = {tree} "
                             f"|| (echo 'the fetched source is not the tree of {env.commit}' >&2; exit 1)")
        files["tf_report.py"] = plugin_source()
        start = start_patch_for(self._worktree(env.repo), row)
        files["start.patch"] = start.encode()
        base_commit = row["base_commit"]
        lines += [
            "# The task's start state: the start-state change, then a fresh single-commit repository",
            "COPY start.patch /tmp/tf-bug.diff",
            f"RUN {start_state_script()}; cd /testbed; "
            f"test \"$(git rev-parse HEAD)\" = {base_commit} "
            f"|| (echo \"start state $(git rev-parse HEAD) is not the task's base_commit {base_commit}\" >&2; exit 1)",
            "WORKDIR /testbed",
            'CMD ["bash"]',
        ]
        files["Dockerfile"] = ("\n".join(lines) + "\n").encode()
        return TaskBuild(instance_id=row["instance_id"], files=files)


def image_tag_safe(instance_id: str) -> str:
    return re.sub(r"[^a-z0-9_.-]", "_", instance_id.lower())[:120]
