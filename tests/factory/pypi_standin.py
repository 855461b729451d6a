"""A local stand-in for the package index's JSON API (``/pypi/NAME/json`` and file downloads)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_tarball(files: dict[str, str], top: str) -> bytes:
    """A .tar.gz of ``files`` under one top folder, as sdists (``NAME-VERSION/``) and npm
    tarballs (``package/``) are published."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for rel, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            info.mtime = 0
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_sdist(name: str, version: str, files: dict[str, str]) -> bytes:
    return make_tarball(files, f"{name}-{version}")


class StandinHandler(BaseHTTPRequestHandler):
    """The quiet request handler of a stand-in service; subclasses answer ``do_GET``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code, body, ctype):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], path: str = ""):
    """Serve ``handler`` on a free local port; yields the base URL (plus ``path``)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}{path}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def package_index(packages: dict[tuple[str, str], bytes | None]):
    """Serve ``{(name, version): sdist bytes or None for wheel-only}``; yields the JSON base URL."""
    blobs = {f"/files/{n}-{v}.tar.gz": b for (n, v), b in packages.items() if b is not None}

    class Handler(StandinHandler):
        def do_GET(self):
            if self.path in blobs:
                return self._send(200, blobs[self.path], "application/gzip")
            parts = self.path.strip("/").split("/")
            if len(parts) == 3 and parts[0] == "pypi" and parts[2] == "json":
                name = parts[1]
                releases = {}
                for (n, v), b in packages.items():
                    if n != name:
                        continue
                    urls = [{"packagetype": "bdist_wheel", "filename": f"{n}-{v}-py3-none-any.whl",
                             "url": f"../../files/{n}-{v}.whl", "digests": {}}]
                    if b is not None:
                        # A relative link, as some mirrors answer.
                        urls.append({"packagetype": "sdist", "filename": f"{n}-{v}.tar.gz",
                                     "url": f"../../files/{n}-{v}.tar.gz",
                                     "digests": {"sha256": hashlib.sha256(b).hexdigest()}})
                    releases[v] = urls
                if releases:
                    return self._send(200, json.dumps({"releases": releases}).encode(), "application/json")
            self._send(404, b"not found", "text/plain")

    with serving(Handler, "/pypi") as url:
        yield url
