"""A local stand-in for the Hugging Face Hub's HTTP API, for tests that cannot reach the Hub.

It speaks the subset of the API that the real ``huggingface_hub`` client (2.x) and
``datasets.load_dataset`` call, learned from the installed client's source:

- ``POST /api/repos/create``, ``POST /api/validate-yaml``, ``GET /api/whoami-v2``
- ``POST /api/{type}s/{id}/preupload/{rev}``: upload mode per file (``lfs`` for parquet and
  large files, ``regular`` otherwise) and the current oid, so unchanged files are skipped
- ``POST /{prefix}{id}.git/info/lfs/objects/batch``: LFS *basic* transfer; objects the server
  already holds get no ``actions`` (that is what makes an interrupted push resumable)
- ``PUT /__lfs/{oid}`` (content checked against its sha256), ``POST /__lfs/verify``
- ``POST /api/{type}s/{id}/commit/{rev}``: the ndjson commit (file, lfsFile, deletedFile,
  deletedFolder), honouring ``parentCommit``
- ``GET /api/{type}s/{id}[/revision/{rev}]``, ``GET .../tree/{rev}[/{path}]``,
  ``POST .../paths-info/{rev}``: repository info and listings
- ``HEAD``/``GET /{prefix}{id}/resolve/{rev}/{path}``: downloads, with Range support

Xet storage is not spoken: clients must run with ``HF_HUB_DISABLE_XET=1`` (the client's own
switch), which makes them take the plain LFS path. Everything lives in memory. ``fail()``
injects errors for matching requests (``POST /__standin/fail`` does
the same from another process); ``requests`` records what was called.

Start it with ``with HubStandin(token="hf_test") as hub:`` and point clients at ``hub.url``
through ``HF_ENDPOINT`` (read at import time by huggingface_hub, so usually in a subprocess).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

__all__ = ["FailRule", "HubStandin"]

_LFS_SUFFIXES = (".parquet", ".arrow", ".bin", ".safetensors", ".png", ".zip", ".gz", ".zst")
_REGULAR_MAX = 10 * 1024 * 1024
_GITATTRIBUTES = b"*.parquet filter=lfs diff=lfs merge=lfs -text\n*.arrow filter=lfs diff=lfs merge=lfs -text\n"


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _File:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def pointer(self) -> bytes:
        return f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\nsize {len(self.data)}\n".encode()

    @property
    def oid(self) -> str:  # the git blob id, as the tree API reports it
        return _git_sha1(self.pointer if self.lfs else self.data)

    @property
    def etag(self) -> str:  # what resolve/ reports: sha256 for LFS files, git sha1 otherwise
        return self.sha256 if self.lfs else _git_sha1(self.data)


@dataclass
class _Repo:
    repo_id: str
    repo_type: str
    private: bool
    created_at: str = field(default_factory=_now)
    commits: list[tuple[str, str, dict[str, _File]]] = field(default_factory=list)  # (oid, summary, files)

    def snapshot(self, rev: str) -> tuple[str, dict[str, _File]] | None:
        if rev in ("main", "HEAD"):
            oid, _, files = self.commits[-1]
            return oid, files
        for oid, _, files in self.commits:
            if oid == rev or (len(rev) >= 7 and oid.startswith(rev)):
                return oid, files
        return None


@dataclass
class FailRule:
    method: str
    pattern: str
    status: int
    times: int


class HubStandin:
    """An in-memory Hub on 127.0.0.1, served from a background thread."""

    def __init__(self, token: str | None = "hf_standin_token", user: str = "standin") -> None:
        self.token = token
        self.user = user
        self.repos: dict[tuple[str, str], _Repo] = {}
        self.blobs: dict[str, bytes] = {}  # uploaded LFS content by sha256, committed or not
        self.requests: list[tuple[str, str]] = []
        self.rules: list[FailRule] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubStandin:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="hub-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- test helpers --------------------------------------------------------------------------

    def fail(self, method: str, pattern: str, status: int = 503, times: int = 1) -> None:
        """The next ``times`` requests with this method and a path matching ``pattern`` get ``status``."""
        with self.lock:
            self.rules.append(FailRule(method.upper(), pattern, status, times))

    def files(self, repo_id: str, repo_type: str = "dataset", rev: str = "main") -> dict[str, bytes]:
        with self.lock:
            snap = self.repos[(repo_type, repo_id)].snapshot(rev)
            assert snap is not None
            return {p: f.data for p, f in snap[1].items()}

    def commits(self, repo_id: str, repo_type: str = "dataset") -> list[str]:
        with self.lock:
            return [summary for _, summary, _ in self.repos[(repo_type, repo_id)].commits]

    def count(self, method: str, pattern: str) -> int:
        with self.lock:
            return sum(1 for m, p in self.requests if m == method and re.search(pattern, p))

    # --- internals used by the handler ---------------------------------------------------------

    def _take_failure(self, method: str, path: str) -> int | None:
        with self.lock:
            for rule in self.rules:
                if rule.times > 0 and rule.method == method and re.search(rule.pattern, path):
                    rule.times -= 1
                    return rule.status
        return None

    def _authorized(self, headers) -> bool:
        if self.token is None:
            return True
        return headers.get("Authorization", "") == f"Bearer {self.token}"


class _Reply(Exception):
    def __init__(self, status: int, body: object = None, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


_API_REPO = re.compile(r"^/api/(?P<type>models|datasets|spaces)/(?P<id>[^/]+/[^/]+)(?P<rest>/.*)?$")
_LFS_BATCH = re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<id>[^/]+/[^/]+?)\.git/info/lfs/objects/batch$")
_RESOLVE = re.compile(r"^/(?:(?P<type>datasets|spaces)/)?(?P<id>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


class _Handler(BaseHTTPRequestHandler):
    hub: HubStandin
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    # --- plumbing ------------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _send(self, status: int, body: object = None, headers: dict[str, str] | None = None, head: bool = False) -> None:
        if isinstance(body, bytes):
            data, ctype = body, "application/octet-stream"
        elif body is None:
            data, ctype = b"", "application/json"
        else:
            data, ctype = json.dumps(body).encode(), "application/json"
        self.send_response(status)
        hdrs = {"Content-Type": ctype, "Content-Length": str(len(data)), **(headers or {})}
        for k, v in hdrs.items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        with self.hub.lock:
            self.hub.requests.append((method, path))
        body = self._body() if method in ("POST", "PUT") else b""
        status = self.hub._take_failure(method, path)
        if status is not None:
            self._send(status, {"error": f"injected failure {status}"}, head=method == "HEAD")
            return
        try:
            self._route(method, path, query, body)
        except _Reply as r:
            self._send(r.status, r.body, r.headers, head=method == "HEAD")

    do_GET = lambda self: self._dispatch("GET")  # noqa: E731
    do_HEAD = lambda self: self._dispatch("HEAD")  # noqa: E731
    do_POST = lambda self: self._dispatch("POST")  # noqa: E731
    do_PUT = lambda self: self._dispatch("PUT")  # noqa: E731
    do_DELETE = lambda self: self._dispatch("DELETE")  # noqa: E731

    # --- helpers -------------------------------------------------------------------------------

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> _Repo:
        authorized = self.hub._authorized(self.headers)
        if write and not authorized:
            raise _Reply(401, {"error": "Invalid credentials in Authorization header"})
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and not authorized):
            raise _Reply(404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return repo

    def _snap(self, repo: _Repo, rev: str) -> tuple[str, dict[str, _File]]:
        snap = repo.snapshot(unquote(rev))
        if snap is None:
            raise _Reply(404, {"error": f"Invalid rev id: {rev}"}, {"X-Error-Code": "RevisionNotFound"})
        return snap

    @staticmethod
    def _entry(path: str, f: _File | None) -> dict:
        if f is None:
            return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        e = {"type": "file", "oid": f.oid, "size": len(f.data), "path": path}
        if f.lfs:
            e["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": len(f.pointer)}
        return e

    @staticmethod
    def _dirs(files: dict[str, _File]) -> set[str]:
        out = set()
        for p in files:
            parts = p.split("/")[:-1]
            out.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        return out

    # --- routes --------------------------------------------------------------------------------

    def _route(self, method: str, path: str, query: dict, body: bytes) -> None:
        hub = self.hub
        if path == "/api/whoami-v2" and method == "GET":
            if not hub._authorized(self.headers):
                raise _Reply(401, {"error": "Invalid credentials in Authorization header"})
            raise _Reply(200, {"type": "user", "name": hub.user, "fullname": hub.user, "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if path == "/api/validate-yaml" and method == "POST":
            content = json.loads(body).get("content", "")
            m = re.match(r"^---\n(.*?)\n---", content, flags=re.S)
            try:
                if m:
                    yaml.safe_load(m[1])
            except yaml.YAMLError as exc:
                raise _Reply(400, {"errors": [{"message": str(exc)}], "warnings": []}) from exc
            raise _Reply(200, {"errors": [], "warnings": []})
        if path == "/__standin/fail" and method == "POST":  # lets a client process inject failures
            rule = json.loads(body)
            hub.fail(rule["method"], rule["pattern"], int(rule.get("status", 503)), int(rule.get("times", 1)))
            raise _Reply(200, {"ok": True})
        if path == "/api/repos/create" and method == "POST":
            return self._create(json.loads(body))
        if path.startswith("/__lfs/"):
            return self._lfs_object(method, path, body)
        m = _LFS_BATCH.match(path)
        if m and method == "POST":
            return self._lfs_batch((m["type"] or "models")[:-1], m["id"], json.loads(body))
        m = _RESOLVE.match(path)
        if m and method in ("GET", "HEAD"):
            return self._resolve(method, (m["type"] or "models")[:-1], m["id"], m["rev"], m["path"])
        m = _API_REPO.match(path)
        if m:
            repo_type, repo_id, rest = m["type"][:-1], m["id"], m["rest"] or ""
            if method == "GET" and (rest == "" or rest.startswith("/revision/")):
                return self._info(repo_type, repo_id, rest.removeprefix("/revision/") or "main")
            if method == "GET" and rest.startswith("/tree/"):
                rev, _, sub = rest.removeprefix("/tree/").partition("/")
                return self._tree(repo_type, repo_id, rev, sub.strip("/"), query.get("recursive", ["False"])[0])
            if method == "POST" and rest.startswith("/paths-info/"):
                return self._paths_info(repo_type, repo_id, rest.removeprefix("/paths-info/"), body)
            if method == "POST" and rest.startswith("/preupload/"):
                return self._preupload(repo_type, repo_id, rest.removeprefix("/preupload/"), json.loads(body))
            if method == "POST" and rest.startswith("/commit/"):
                return self._commit(repo_type, repo_id, rest.removeprefix("/commit/"), body)
        raise _Reply(404, {"error": f"stand-in does not serve {method} {path}"})

    def _create(self, payload: dict) -> None:
        hub = self.hub
        if not hub._authorized(self.headers):
            raise _Reply(401, {"error": "Invalid credentials in Authorization header"})
        repo_type = payload.get("type") or "model"
        org = payload.get("organization") or hub.user
        repo_id = f"{org}/{payload['name']}"
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        url = f"http://{self.headers.get('Host')}/{prefix}{repo_id}"
        with hub.lock:
            if (repo_type, repo_id) in hub.repos:
                raise _Reply(409, {"error": "You already created this repo", "url": url})
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = _Repo(repo_id=repo_id, repo_type=repo_type, private=private)
            files = {".gitattributes": _File(_GITATTRIBUTES, lfs=False)}
            repo.commits.append((hashlib.sha1(f"init {repo_id}".encode()).hexdigest(), "initial commit", files))
            hub.repos[(repo_type, repo_id)] = repo
        raise _Reply(200, {"url": url, "name": repo_id, "id": repo_id})

    def _info(self, repo_type: str, repo_id: str, rev: str) -> None:
        repo = self._repo(repo_type, repo_id)
        oid, files = self._snap(repo, rev)
        card = {}
        readme = files.get("README.md")
        if readme is not None:
            m = re.match(r"^---\n(.*?)\n---", readme.data.decode(), flags=re.S)
            card = (yaml.safe_load(m[1]) or {}) if m else {}
        raise _Reply(200, {
            "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24], "id": repo_id, "author": repo_id.split("/")[0],
            "sha": oid, "lastModified": _now(), "createdAt": repo.created_at, "private": repo.private,
            "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [], "cardData": card,
            "siblings": [{"rfilename": p} for p in sorted(files)],
            "usedStorage": sum(len(f.data) for f in files.values()),
        })

    def _tree(self, repo_type: str, repo_id: str, rev: str, sub: str, recursive: str) -> None:
        repo = self._repo(repo_type, repo_id)
        _, files = self._snap(repo, rev)
        dirs = self._dirs(files)
        if sub and sub not in dirs:
            if sub in files:
                raise _Reply(200, [self._entry(sub, files[sub])])
            raise _Reply(404, {"error": f"{sub} does not exist"}, {"X-Error-Code": "EntryNotFound"})
        prefix = f"{sub}/" if sub else ""
        deep = recursive.lower() in ("true", "1")
        out = []
        for d in sorted(dirs):
            if d.startswith(prefix) and (deep or "/" not in d[len(prefix):]):
                out.append(self._entry(d, None))
        for p in sorted(files):
            if p.startswith(prefix) and (deep or "/" not in p[len(prefix):]):
                out.append(self._entry(p, files[p]))
        raise _Reply(200, out)

    def _paths_info(self, repo_type: str, repo_id: str, rev: str, body: bytes) -> None:
        repo = self._repo(repo_type, repo_id)
        _, files = self._snap(repo, rev)
        ctype = self.headers.get("Content-Type", "")
        paths = json.loads(body).get("paths", []) if "json" in ctype else parse_qs(body.decode()).get("paths", [])
        dirs = self._dirs(files)
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._entry(p, files[p]))
            elif p in dirs:
                out.append(self._entry(p, None))
        raise _Reply(200, out)

    def _preupload(self, repo_type: str, repo_id: str, rev: str, payload: dict) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        head, files = self._snap(repo, rev)
        out = []
        for f in payload.get("files", []):
            p = f["path"]
            lfs = p.endswith(_LFS_SUFFIXES) or int(f.get("size", 0)) > _REGULAR_MAX
            cur = files.get(p)
            oid = None if cur is None else (cur.sha256 if cur.lfs else _git_sha1(cur.data))
            out.append({"path": p, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid})
        raise _Reply(200, {"files": out, "commitOid": head})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        self._repo(repo_type, repo_id, write=True)
        base = f"http://{self.headers.get('Host')}"
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.hub.blobs:
                entry["actions"] = {"upload": {"href": f"{base}/__lfs/{obj['oid']}", "header": {}},
                                    "verify": {"href": f"{base}/__lfs/verify", "header": {}}}
            objects.append(entry)
        raise _Reply(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
                     {"Content-Type": "application/vnd.git-lfs+json"})

    def _lfs_object(self, method: str, path: str, body: bytes) -> None:
        if path == "/__lfs/verify" and method == "POST":
            oid = json.loads(body)["oid"]
            if oid not in self.hub.blobs:
                raise _Reply(404, {"error": f"object {oid} was not uploaded"})
            raise _Reply(200, {"success": True})
        if method == "PUT":
            oid = path.removeprefix("/__lfs/")
            if hashlib.sha256(body).hexdigest() != oid:
                raise _Reply(400, {"error": "content does not match its sha256"})
            with self.hub.lock:
                self.hub.blobs[oid] = body
            raise _Reply(200, None)
        raise _Reply(404, {"error": "no such LFS route"})

    def _commit(self, repo_type: str, repo_id: str, rev: str, body: bytes) -> None:
        repo = self._repo(repo_type, repo_id, write=True)
        if unquote(rev) != "main":
            raise _Reply(400, {"error": "the stand-in commits to main only"})
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((x["value"] for x in lines if x["key"] == "header"), {})
        with self.hub.lock:
            head, files = repo.snapshot("main")
            parent = header.get("parentCommit")
            if parent and parent != head:
                raise _Reply(412, {"error": "A commit has happened since. Please refresh and try again."})
            new = dict(files)
            for item in lines:
                key, v = item["key"], item["value"]
                if key == "file":
                    data = base64.b64decode(v["content"]) if v.get("encoding") == "base64" else v["content"].encode()
                    new[v["path"]] = _File(data, lfs=False)
                elif key == "lfsFile":
                    blob = self.hub.blobs.get(v["oid"])
                    if blob is None:
                        raise _Reply(422, {"error": f"LFS object {v['oid']} of {v['path']} was never uploaded"})
                    new[v["path"]] = _File(blob, lfs=True)
                elif key == "deletedFile":
                    if v["path"] not in new:
                        raise _Reply(404, {"error": "A file with this name doesn't exist"},
                                     {"X-Error-Code": "EntryNotFound"})
                    del new[v["path"]]
                elif key == "deletedFolder":
                    prefix = v["path"].rstrip("/") + "/"
                    new = {p: f for p, f in new.items() if not p.startswith(prefix)}
            oid = hashlib.sha1(json.dumps([head, sorted((p, f.oid) for p, f in new.items())]).encode()
                               + str(len(repo.commits)).encode()).hexdigest()
            repo.commits.append((oid, header.get("summary", ""), new))
        prefix = "" if repo_type == "model" else f"{repo_type}s/"
        raise _Reply(200, {"success": True, "commitOid": oid, "pullRequestUrl": None, "hookOutput": "",
                           "commitUrl": f"http://{self.headers.get('Host')}/{prefix}{repo_id}/commit/{oid}"})

    def _resolve(self, method: str, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        oid, files = self._snap(repo, rev)
        f = files.get(path)
        if f is None:
            raise _Reply(404, {"error": "Entry not found"}, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": oid})
        headers = {"X-Repo-Commit": oid, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes"}
        if f.lfs:
            headers.update({"X-Linked-Etag": f'"{f.etag}"', "X-Linked-Size": str(len(f.data))})
        data = f.data
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng or "")
        if m and method == "GET":
            start = int(m[1]) if m[1] else max(0, len(data) - int(m[2]))
            end = int(m[2]) if m[1] and m[2] else len(data) - 1
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            raise _Reply(206, data[start:end + 1], headers)
        raise _Reply(200, data, headers)
