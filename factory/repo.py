"""Turn a RepoSpec into a git checkout on disk at a known commit.

Three kinds of source (``RepoSpec.kind``): a local path (used in place, never modified), a git
URL (cloned once into the cache), and ``pypi:NAME==VERSION`` (the sdist downloaded from the
package index and committed into a fresh repository with a fixed author and date, so the same
sdist gives the same commit id on every machine, and so the same image tag); ``npm:NAME@VERSION``
is the same for the package tarball from the npm registry.

Not for: installing anything (``verifiers.images``) or reading history (``miners``).
"""

from __future__ import annotations

import fnmatch
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from factory.errors import NotARepository, RepoError, SdistError
from factory.schema import RepoSpec

__all__ = ["Checkout", "checkout", "git", "is_test_file", "TEST_DIRS"]

# Paths that hold tests rather than code under test. One definition for every stage that must
# tell them apart: mutators never mutate them, miners split them into the test patch, graders
# restore them before judging. Repository-specific globs (``RepoSpec.test_file_patterns``) add to it.
TEST_DIRS = frozenset({"tests", "test", "testing"})
_OTHER_LANG_TEST = re.compile(r"\.(test|spec)\.[cm]?[jt]sx?$|_test\.go$")


def is_test_file(path: str, extra_patterns: Sequence[str] = ()) -> bool:
    """tests/, test/ or testing/ folders at any depth, test_*.py, *_test.py, conftest.py, a module named
    tests.py or test.py (suites that live in one file), or a glob.

    A glob matches the whole posix path or the file name (``fnmatchcase``).
    """
    parts = PurePosixPath(path).parts
    if not parts:
        return False
    name = parts[-1]
    if any(p in TEST_DIRS for p in parts[:-1]):
        return True
    if name in ("conftest.py", "tests.py", "test.py") or (name.endswith(".py") and (name.startswith("test_")
                                                                                 or name.endswith("_test.py"))):
        return True
    if _OTHER_LANG_TEST.search(name) or any(p in ("__tests__", "testdata") for p in parts[:-1]):
        return True  # JavaScript/TypeScript (*.test.*, *.spec.*, __tests__/) and Go (*_test.go, testdata/)
    posix = PurePosixPath(path).as_posix()
    return any(fnmatch.fnmatchcase(posix, g) or fnmatch.fnmatchcase(name, g) for g in extra_patterns)


_FIXED_ENV = {
    "GIT_AUTHOR_NAME": "taskfactory", "GIT_AUTHOR_EMAIL": "taskfactory@localhost",
    "GIT_COMMITTER_NAME": "taskfactory", "GIT_COMMITTER_EMAIL": "taskfactory@localhost",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Checkout:
    """A repository on disk and the commit the factory works on."""

    spec: RepoSpec
    path: Path
    commit: str

    @property
    def key(self) -> str:
        return self.spec.key

    def tracked_files(self) -> list[str]:
        out = git(self.path, "ls-tree", "-r", "--name-only", "-z", self.commit)
        return [p for p in out.split("\0") if p]

    @contextmanager
    def worktree(self) -> Iterator[Path]:
        """A clean, temporary working tree at ``commit`` (a shared clone; the source is untouched)."""
        with tempfile.TemporaryDirectory(prefix="tf-worktree-") as d:
            dest = Path(d) / "tree"
            proc = subprocess.run(["git", "clone", "--quiet", "--shared", "--no-checkout", str(self.path), str(dest)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise RepoError(f"cannot make a worktree of {self.path}: {proc.stderr.strip()[:300]}")
            git(dest, "checkout", "--quiet", "--detach", self.commit)
            yield dest

    def archive(self) -> bytes:
        """The tree at ``commit`` as an uncompressed tar (what goes into the image)."""
        proc = subprocess.run(
            ["git", "-C", str(self.path), "archive", "--format=tar", self.commit],
            capture_output=True, check=False,
        )
        if proc.returncode != 0:
            raise RepoError(f"git archive {self.commit} failed: {proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})},
    )
    if proc.returncode != 0:
        raise RepoError(f"git {' '.join(args[:3])} failed in {repo}: {proc.stderr.strip()[:400]}")
    return proc.stdout


def cache_dir() -> Path:
    root = Path(os.environ.get("TASKFACTORY_CACHE", Path.home() / ".cache" / "taskfactory"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def checkout(spec: RepoSpec) -> Checkout:
    """A checkout for ``spec``; RepoError (with a one-line reason) when there cannot be one."""
    if spec.kind == "pypi":
        path = _pypi_checkout(spec)
    elif spec.kind == "npm":
        path = _npm_checkout(spec)
    elif spec.kind == "git":
        path = _clone(spec)
    else:
        path = Path(spec.source).expanduser().resolve()
        if not path.exists():
            raise NotARepository(f"{spec.source}: no such directory")
        if not (path / ".git").exists():
            raise NotARepository(f"{spec.source}: not a git repository (no .git); run `git init` and commit")
    try:
        commit = git(path, "rev-parse", "--verify", f"{spec.commit or 'HEAD'}^{{commit}}").strip()
    except RepoError as e:
        what = spec.commit or "HEAD"
        raise NotARepository(f"{spec.source}: cannot resolve commit {what!r} (empty repository?)") from e
    return Checkout(spec=spec, path=path, commit=commit)


def _clone(spec: RepoSpec) -> Path:
    dest = cache_dir() / "clones" / spec.key
    if (dest / ".git").exists():
        if spec.commit:
            try:
                git(dest, "cat-file", "-e", f"{spec.commit}^{{commit}}")
                return dest
            except RepoError:
                pass
        git(dest, "fetch", "--quiet", "origin")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".clone-", dir=dest.parent))
    proc = subprocess.run(["git", "clone", "--quiet", spec.source, str(tmp)], capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RepoError(f"git clone {spec.source} failed: {proc.stderr.strip()[:300]}")
    os.replace(tmp, dest)
    return dest


def _pypi_checkout(spec: RepoSpec) -> Path:
    name, version = spec.pypi
    dest = cache_dir() / "sdists" / spec.key
    if (dest / ".git").exists():
        return dest
    data, filename = _download_sdist(name, version)

    def _check(tmp: Path) -> None:
        files = [str(p.relative_to(tmp).as_posix()) for p in tmp.rglob("*.py")]
        if not any(is_test_file(f, spec.test_file_patterns) for f in files):
            raise SdistError(f"{name}=={version}: the sdist ships no tests (no test_*.py, *_test.py, tests.py, "
                             "test.py or tests/ folder)", reason="sdist_without_tests")

    return _archive_as_repo(data, filename, dest, _check, f"{name} {version} (sdist {filename})")


def _archive_as_repo(data: bytes, filename: str, dest: Path, check, message: str) -> Path:
    """A published archive (an sdist, an npm tarball) unpacked and committed as a one-commit
    repository at ``dest``, once ``check`` (which raises to refuse it) accepts the unpacked tree;
    a fixed author and date, so the same archive is always the same commit."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".archive-", dir=dest.parent))
    try:
        _unpack_sdist(data, filename, tmp)  # an archive's one top folder (``pkg-1.0/``, ``package/``) dropped
        check(tmp)
        git(tmp, "init", "--quiet", "-b", "main")
        git(tmp, "add", "--all", "--force")
        git(tmp, "commit", "--quiet", "--no-verify", "-m", message, env=_FIXED_ENV)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _download_sdist(name: str, version: str) -> tuple[bytes, str]:
    import requests  # noqa: PLC0415

    index = os.environ.get("TASKFACTORY_PYPI_JSON", "https://pypi.org/pypi").rstrip("/")
    # The project-level document lists every release's files; some mirrors serve only this one.
    url = f"{index}/{name}/json"
    try:
        resp = requests.get(url, timeout=60)
    except requests.RequestException as e:
        raise SdistError(f"{name}=={version}: cannot reach the package index ({e.__class__.__name__}: {e})") from e
    if resp.status_code == 404:
        raise SdistError(f"{name}: no such project on the package index")
    resp.raise_for_status()
    releases = resp.json().get("releases", {})
    if version not in releases:
        raise SdistError(f"{name}=={version}: no such release on the package index")
    sdists = [u for u in releases[version] if u.get("packagetype") == "sdist"]
    if not sdists:
        raise SdistError(f"{name}=={version}: the release has no sdist (wheels only)")
    info = sdists[0]
    from urllib.parse import urljoin  # noqa: PLC0415

    file_url = urljoin(resp.url, info["url"])  # mirrors may answer with relative links
    try:
        blob = requests.get(file_url, timeout=300)
        blob.raise_for_status()
    except requests.RequestException as e:
        raise SdistError(f"{name}=={version}: sdist download failed ({e})") from e
    import hashlib  # noqa: PLC0415

    want = info.get("digests", {}).get("sha256")
    if want and hashlib.sha256(blob.content).hexdigest() != want:
        raise SdistError(f"{name}=={version}: sdist checksum mismatch")
    return blob.content, info["filename"]


def _npm_checkout(spec: RepoSpec) -> Path:
    """The package tarball as a repository: what ``npm pack`` published, tests included or refused."""
    name, version = spec.npm
    dest = cache_dir() / "npm" / spec.key
    if (dest / ".git").exists():
        return dest
    data, filename = _download_npm_tarball(name, version)

    def _check(tmp: Path) -> None:
        files = [str(p.relative_to(tmp).as_posix()) for p in tmp.rglob("*") if p.is_file()]
        code = [f for f in files if PurePosixPath(f).suffix in (".js", ".cjs", ".mjs", ".ts", ".cts", ".mts")]
        if not any(is_test_file(f, spec.test_file_patterns) for f in code):
            raise SdistError(f"{name}@{version}: the package tarball ships no tests (no *.test.*, *.spec.*, "
                             "__tests__/, test/ or tests/ script)", reason="npm_without_tests")

    return _archive_as_repo(data, filename, dest, _check, f"{name} {version} (npm {filename})")


def _download_npm_tarball(name: str, version: str) -> tuple[bytes, str]:
    """The version's tarball from the registry, checked against the registry's integrity digest."""
    import base64  # noqa: PLC0415
    import hashlib  # noqa: PLC0415
    from urllib.parse import quote, urljoin  # noqa: PLC0415

    import requests  # noqa: PLC0415

    registry = os.environ.get("TASKFACTORY_NPM_REGISTRY", "https://registry.npmjs.org").rstrip("/")
    url = f"{registry}/{quote(name, safe='@')}/{quote(version)}"
    try:
        resp = requests.get(url, timeout=60, headers={"Accept": "application/json"})
    except requests.RequestException as e:
        raise SdistError(f"{name}@{version}: cannot reach the npm registry ({e.__class__.__name__}: {e})") from e
    if resp.status_code == 404:
        raise SdistError(f"{name}@{version}: no such package version on the npm registry")
    resp.raise_for_status()
    dist = (resp.json() or {}).get("dist") or {}
    if not dist.get("tarball"):
        raise SdistError(f"{name}@{version}: the registry names no tarball")
    file_url = urljoin(resp.url, dist["tarball"])
    try:
        blob = requests.get(file_url, timeout=300)
        blob.raise_for_status()
    except requests.RequestException as e:
        raise SdistError(f"{name}@{version}: tarball download failed ({e})") from e
    integrity = str(dist.get("integrity") or "")
    if integrity.startswith("sha512-"):
        ok = base64.b64encode(hashlib.sha512(blob.content).digest()).decode() == integrity[len("sha512-"):]
    elif dist.get("shasum"):
        ok = hashlib.sha1(blob.content).hexdigest() == dist["shasum"]  # noqa: S324 (the registry's own digest)
    else:
        ok = False
    if not ok:
        raise SdistError(f"{name}@{version}: tarball checksum mismatch (or the registry gives no digest)")
    return blob.content, file_url.rsplit("/", 1)[-1]


def _unpack_sdist(data: bytes, filename: str, dest: Path) -> None:
    """Unpack into ``dest``, dropping the archive's single top folder; refuse unsafe members."""
    if filename.endswith(".zip"):
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = [(m.filename, m) for m in zf.infolist() if not m.is_dir()]
            for name, m in members:
                rel = _strip_top(name)
                if rel is None:
                    continue
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(m))
        return
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tf:
        for m in tf.getmembers():
            if not m.isfile():
                continue
            rel = _strip_top(m.name)
            if rel is None:
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            src = tf.extractfile(m)
            if src is not None:
                target.write_bytes(src.read())
                if m.mode & 0o111:
                    target.chmod(0o755)


def _strip_top(name: str) -> str | None:
    parts = PurePosixPath(name).parts
    if len(parts) < 2 or any(p == ".." for p in parts) or name.startswith("/"):
        return None
    return str(PurePosixPath(*parts[1:]))


# ---------------------------------------------------------------------------------------------
# What a repository calls itself: owner/name and license (for published rows and the card)
# ---------------------------------------------------------------------------------------------

_FORGES = ("github.com", "gitlab.com", "bitbucket.org", "codeberg.org")
# SPDX-ish names and classifier endings -> the Hub's license ids
_LICENSES = {
    "mit": "mit", "mit license": "mit", "apache-2.0": "apache-2.0", "apache 2.0": "apache-2.0",
    "apache software license": "apache-2.0", "apache license 2.0": "apache-2.0", "apache license, version 2.0": "apache-2.0",
    "bsd-3-clause": "bsd-3-clause", "bsd-2-clause": "bsd-2-clause", "bsd license": "bsd", "bsd": "bsd",
    "isc": "isc", "isc license (iscl)": "isc", "mpl-2.0": "mpl-2.0", "mozilla public license 2.0 (mpl 2.0)": "mpl-2.0",
    "gpl-3.0": "gpl-3.0", "gnu general public license v3 (gplv3)": "gpl-3.0", "gpl-2.0": "gpl-2.0",
    "lgpl-3.0": "lgpl-3.0", "psf-2.0": "other", "python software foundation license": "other",
    "unlicense": "unlicense", "the unlicense (unlicense)": "unlicense",
}


@dataclass(frozen=True)
class RepoIdentity:
    name: str  # owner/name where the source says it, else the package (or folder) name
    license: str  # a Hub license id ("mit", "apache-2.0", ...), "other", or "" when nothing says


def forge_name(url: str) -> str | None:
    """``owner/name`` of a GitHub/GitLab/Bitbucket/Codeberg URL (https or ssh), else None."""
    import re  # noqa: PLC0415

    m = re.search(r"(?:https?://|ssh://git@|git@)(?:www\.)?(" + "|".join(map(re.escape, _FORGES)) +
                  r")[/:]([\w.-]+)/([\w.-]+?)(?:\.git)?(?:[/#?].*)?$", url.strip())
    return f"{m.group(2)}/{m.group(3)}" if m else None


def _license_id(text: str) -> str:
    t = " ".join(text.strip().split()).lower().removeprefix("license :: osi approved :: ").removeprefix("license :: ")
    return _LICENSES.get(t, "")


def _package_json(text: str | None) -> dict:
    import json  # noqa: PLC0415

    try:
        data = json.loads(text) if text else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def repo_identity(co: Checkout) -> RepoIdentity:
    """Owner/name from the git remote or the sdist's project URLs; license from the package metadata."""
    from email.parser import HeaderParser  # noqa: PLC0415

    spec = co.spec

    def show(path: str) -> str | None:
        proc = subprocess.run(["git", "-C", str(co.path), "show", f"{co.commit}:{path}"], capture_output=True)
        return proc.stdout.decode("utf-8", errors="replace") if proc.returncode == 0 else None

    name = None
    if spec.kind == "git":
        name = forge_name(spec.source)
    if name is None and (co.path / ".git").exists():
        proc = subprocess.run(["git", "-C", str(co.path), "remote", "get-url", "origin"], capture_output=True, text=True)
        if proc.returncode == 0:
            name = forge_name(proc.stdout)
    meta = show("PKG-INFO")
    headers = HeaderParser().parsestr(meta) if meta else None
    if name is None and headers is not None:
        urls = [v.split(",", 1)[-1] for v in headers.get_all("Project-URL") or []] + [headers.get("Home-page") or ""]
        name = next((n for n in map(forge_name, urls) if n), None)
    pkg = _package_json(show("package.json")) if spec.kind == "npm" else {}
    if name is None and pkg:
        repo = pkg.get("repository")
        url = repo.get("url", "") if isinstance(repo, dict) else str(repo or "")
        name = forge_name(url) or (f"{url.removeprefix('github:')}" if re.fullmatch(r"(github:)?[\w.-]+/[\w.-]+", url)
                                   else None)
    if name is None:
        if spec.kind == "pypi":
            name = spec.pypi[0]
        elif spec.kind == "npm":
            name = spec.npm[0]
        else:
            name = spec.name or Path(spec.source.rstrip("/")).name.removesuffix(".git")
    lic = ""
    if headers is not None:
        for candidate in [headers.get("License-Expression") or "", headers.get("License") or "",
                          *[c for c in headers.get_all("Classifier") or [] if c.startswith("License ::")]]:
            lic = lic or _license_id(candidate)
    if not lic and isinstance(pkg.get("license"), str):
        lic = _license_id(pkg["license"])
    if not lic:
        import tomllib  # noqa: PLC0415

        text = show("pyproject.toml")
        try:
            project = tomllib.loads(text).get("project", {}) if text else {}
        except tomllib.TOMLDecodeError:
            project = {}
        value = project.get("license")
        if isinstance(value, str):
            lic = _license_id(value)
        elif isinstance(value, dict) and isinstance(value.get("text"), str):
            lic = _license_id(value["text"])
        for c in project.get("classifiers", []) if not lic else []:
            lic = lic or (_license_id(c) if c.startswith("License ::") else "")
    return RepoIdentity(name=name, license=lic)
