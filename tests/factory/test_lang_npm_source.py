"""``npm:NAME@VERSION``: the package tarball from the npm registry as a repository (a local
stand-in for the registry's API: ``/NAME/VERSION`` and the tarball download)."""

from __future__ import annotations

import base64
import hashlib
import json
from contextlib import contextmanager
from urllib.parse import unquote

import pytest

from factory.errors import SdistError
from factory.repo import checkout, repo_identity
from factory.schema import RepoSpec
from tests.factory.pypi_standin import StandinHandler, serving
from tests.factory.pypi_standin import make_tarball as _tarball


def make_tarball(files: dict[str, str], top: str = "package") -> bytes:
    return _tarball(files, top)


@contextmanager
def npm_registry(packages: dict[tuple[str, str], bytes], *, corrupt: frozenset[str] = frozenset()):
    """Serve ``{(name, version): tarball}``; a name in ``corrupt`` gets a wrong integrity digest."""
    blobs = {f"/tarballs/{n.replace('/', '_')}-{v}.tgz": b for (n, v), b in packages.items()}

    class Handler(StandinHandler):
        def do_GET(self):
            if self.path in blobs:
                return self._send(200, blobs[self.path], "application/octet-stream")
            name, _, version = unquote(self.path.lstrip("/")).rpartition("/")
            blob = packages.get((name, version))
            if blob is None:
                return self._send(404, b'{"error":"not found"}', "application/json")
            digest = hashlib.sha512(blob + (b"x" if name in corrupt else b"")).digest()
            doc = {"name": name, "version": version,
                   "dist": {"tarball": f"/tarballs/{name.replace('/', '_')}-{version}.tgz",
                            "integrity": "sha512-" + base64.b64encode(digest).decode()}}
            self._send(200, json.dumps(doc).encode(), "application/json")

    with serving(Handler) as url:
        yield url


PKG = {
    "package.json": json.dumps({"name": "calc", "version": "1.2.3", "license": "MIT",
                                "repository": {"type": "git", "url": "git+https://github.com/someone/calc.git"},
                                "scripts": {"test": "mocha test/"}}),
    "index.js": "module.exports = (a, b) => a + b;\n",
    "test/calc.js": "const add = require('..');\nit('adds', () => { if (add(1, 2) !== 3) throw new Error(); });\n",
}


def test_a_tarball_becomes_a_repository_with_the_same_commit_everywhere(tmp_path, monkeypatch):
    with npm_registry({("calc", "1.2.3"): make_tarball(PKG)}) as url:
        monkeypatch.setenv("TASKFACTORY_NPM_REGISTRY", url)
        monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path / "c1"))
        one = checkout(RepoSpec("npm:calc@1.2.3"))
        monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path / "c2"))
        two = checkout(RepoSpec("npm:calc@1.2.3"))
    assert one.commit == two.commit  # fixed author and date: same tree, same commit, same image tag
    assert sorted(one.tracked_files()) == ["index.js", "package.json", "test/calc.js"]  # package/ dropped
    ident = repo_identity(one)
    assert (ident.name, ident.license) == ("someone/calc", "mit")


def test_a_scoped_package_and_the_spec_form(tmp_path, monkeypatch):
    with npm_registry({("@scope/calc", "2.0.0-beta.1"): make_tarball(PKG)}) as url:
        monkeypatch.setenv("TASKFACTORY_NPM_REGISTRY", url)
        monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path))
        co = checkout(RepoSpec("npm:@scope/calc@2.0.0-beta.1"))
    assert (co.path / "test" / "calc.js").is_file()
    assert RepoSpec("npm:@scope/calc@2.0.0-beta.1").npm == ("@scope/calc", "2.0.0-beta.1")
    for bad in ("npm:calc@^1.2.0", "npm:calc@latest", "npm:calc", "npm:Calc@1.0.0"):
        with pytest.raises(ValueError, match="npm:NAME@VERSION"):
            RepoSpec(bad).npm  # noqa: B018


def test_npm_failures_name_their_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKFACTORY_CACHE", str(tmp_path))
    no_tests = make_tarball({"package.json": "{}", "index.js": "module.exports = 1;\n"})
    with npm_registry({("notests", "1.0.0"): no_tests, ("calc", "1.2.3"): make_tarball(PKG)},
                      corrupt=frozenset({"calc"})) as url:
        monkeypatch.setenv("TASKFACTORY_NPM_REGISTRY", url)
        with pytest.raises(SdistError, match="ships no tests") as ei:
            checkout(RepoSpec("npm:notests@1.0.0"))
        assert ei.value.reason == "npm_without_tests"
        with pytest.raises(SdistError, match="no such package version"):
            checkout(RepoSpec("npm:notests@9.9.9"))
        with pytest.raises(SdistError, match="checksum mismatch"):
            checkout(RepoSpec("npm:calc@1.2.3"))
    assert not list((tmp_path / "npm").glob("*"))  # nothing half-made is left behind
