"""A stand-in for the GitHub REST API (and the one GraphQL query we send), for tests.

A stdlib ``http.server`` in a thread that answers with GitHub's documented response shapes:
pulls list (``state``/``sort``/``direction``/``page``/``per_page``, with ``Link`` paging headers),
pull detail, pull commits, issues, issue comments, ``/rate_limit``, and ``POST /api/graphql`` for
``closingIssuesReferences``. Primary rate limits are simulated on demand: the next N requests get
403 (or 429) with ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``, as GitHub sends them.
Every request is logged, so tests can count what a run cost.

PyGithub talks to it through ``base_url = standin.base_url`` (``http://127.0.0.1:PORT/api/v3``).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["GitHubStandin", "StandinRepo", "commit_json", "comment_json", "issue_json", "pull_json"]

ISO = "%Y-%m-%dT%H:%M:%SZ"


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "id": abs(hash(login)) % 10_000, "type": "User",
            "url": f"https://api.github.com/users/{login}", "html_url": f"https://github.com/{login}"}


def pull_json(base: str, owner: str, name: str, number: int, *, title: str, body: str = "", merged_at: str | None,
              merge_commit_sha: str | None, created_at: str = "2024-01-01T00:00:00Z", base_sha: str = "0" * 40,
              head_sha: str = "1" * 40, state: str = "closed", base_ref: str = "main") -> dict[str, Any]:
    """A pull request as ``GET /repos/{o}/{r}/pulls`` lists it (the documented fields we use)."""
    api = f"{base}/repos/{owner}/{name}"
    return {
        "url": f"{api}/pulls/{number}", "id": 1000 + number, "number": number, "state": state,
        "locked": False, "title": title, "user": _user("contributor"), "body": body,
        "created_at": created_at, "updated_at": merged_at or created_at, "closed_at": merged_at or created_at,
        "merged_at": merged_at, "merge_commit_sha": merge_commit_sha, "draft": False,
        "html_url": f"https://github.com/{owner}/{name}/pull/{number}",
        "diff_url": f"https://github.com/{owner}/{name}/pull/{number}.diff",
        "issue_url": f"{api}/issues/{number}", "commits_url": f"{api}/pulls/{number}/commits",
        "comments_url": f"{api}/issues/{number}/comments",
        "head": {"label": f"contributor:pr-{number}", "ref": f"pr-{number}", "sha": head_sha, "user": _user("contributor")},
        "base": {"label": f"{owner}:{base_ref}", "ref": base_ref, "sha": base_sha, "user": _user(owner)},
        "author_association": "CONTRIBUTOR",
    }


def issue_json(base: str, owner: str, name: str, number: int, *, title: str, body: str,
               created_at: str = "2023-12-01T00:00:00Z", is_pull: bool = False) -> dict[str, Any]:
    api = f"{base}/repos/{owner}/{name}"
    out = {
        "url": f"{api}/issues/{number}", "id": 5000 + number, "number": number, "state": "closed",
        "title": title, "body": body, "user": _user("reporter"), "labels": [], "comments": 0,
        "created_at": created_at, "updated_at": created_at, "closed_at": created_at,
        "html_url": f"https://github.com/{owner}/{name}/issues/{number}",
        "comments_url": f"{api}/issues/{number}/comments", "author_association": "NONE",
    }
    if is_pull:
        out["pull_request"] = {"url": f"{api}/pulls/{number}"}
    return out


def comment_json(base: str, owner: str, name: str, issue: int, cid: int, *, body: str, created_at: str
                 ) -> dict[str, Any]:
    api = f"{base}/repos/{owner}/{name}"
    return {"id": cid, "url": f"{api}/issues/comments/{cid}", "body": body, "user": _user("helper"),
            "created_at": created_at, "updated_at": created_at, "issue_url": f"{api}/issues/{issue}",
            "html_url": f"https://github.com/{owner}/{name}/issues/{issue}#issuecomment-{cid}",
            "author_association": "MEMBER"}


def commit_json(base: str, owner: str, name: str, sha: str, *, message: str, date: str) -> dict[str, Any]:
    person = {"name": "Contributor", "email": "c@example.com", "date": date}
    return {"sha": sha, "url": f"{base}/repos/{owner}/{name}/commits/{sha}",
            "html_url": f"https://github.com/{owner}/{name}/commit/{sha}",
            "commit": {"author": person, "committer": person, "message": message,
                       "tree": {"sha": "2" * 40, "url": ""}},
            "author": _user("contributor"), "committer": _user("contributor"), "parents": []}


@dataclass
class StandinRepo:
    owner: str
    name: str
    pulls: list[dict[str, Any]] = field(default_factory=list)  # in creation order
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    commits: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # pull number -> its commits
    closing: dict[int, list[int]] = field(default_factory=dict)  # pull number -> closingIssuesReferences


class GitHubStandin:
    """Start with ``with GitHubStandin() as gh:``; add repositories with ``gh.add_repo``."""

    def __init__(self) -> None:
        self.repos: dict[str, StandinRepo] = {}
        self.log: list[tuple[str, str]] = []  # (method, path with query)
        self.auth: list[str | None] = []
        self._limited: list[tuple[int, dict[str, str]]] = []  # (status, extra headers) for the next requests
        self.reset_at = 0
        self.quota: int | None = None  # when set: requests left in this window, counted down
        self.refused = 0  # requests answered as rate limited
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    @property
    def origin(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v3"

    def __enter__(self) -> GitHubStandin:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, owner: str, name: str) -> StandinRepo:
        r = StandinRepo(owner, name)
        self.repos[f"{owner}/{name}"] = r
        return r

    def rate_limit_next(self, n: int = 1, *, status: int = 403, reset_at: int) -> None:
        """The next ``n`` requests answer as an exhausted primary rate limit that resets at ``reset_at``."""
        with self._lock:
            self._limited += [(status, {})] * n
            self.reset_at = reset_at

    def set_quota(self, n: int, *, reset_at: int) -> None:
        """Allow ``n`` more requests in this window; the responses count down X-RateLimit-Remaining,
        and a request made with none left is refused (403) until the next ``set_quota``."""
        with self._lock:
            self.quota = n
            self.reset_at = reset_at

    def secondary_limit_next(self, n: int = 1, *, retry_after: int = 60) -> None:
        """The next ``n`` requests hit a secondary rate limit: 403 with ``Retry-After``, quota left."""
        with self._lock:
            self._limited += [(403, {"Retry-After": str(retry_after)})] * n

    def fail_next(self, n: int = 1, *, status: int = 502) -> None:
        """The next ``n`` requests fail with a server error."""
        with self._lock:
            self._limited += [(status, {})] * n

    def requests(self, prefix: str = "") -> list[str]:
        return [p for _, p in self.log if urllib.parse.urlparse(p).path.startswith(prefix)]

    # -- the HTTP side -------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            wbufsize = 1 << 16  # one write per response: no Nagle/delayed-ACK stall between parts

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                standin._serve(self, "GET")

            def do_POST(self) -> None:
                standin._serve(self, "POST")

        return Handler

    def _send(self, h: BaseHTTPRequestHandler, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        remaining = "0" if status in (403, 429) and "Retry-After" not in (headers or {}) else "4999"
        if self.quota is not None:
            remaining = str(self.quota)
        h.send_header("X-RateLimit-Limit", "5000")
        h.send_header("X-RateLimit-Remaining", remaining)
        h.send_header("X-RateLimit-Reset", str(self.reset_at or 2_000_000_000))
        h.send_header("X-RateLimit-Used", "1")
        h.send_header("X-RateLimit-Resource", "core")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(body)

    def _serve(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        payload = h.rfile.read(length) if length else b""
        with self._lock:
            self.log.append((method, h.path))
            self.auth.append(h.headers.get("Authorization"))
            limited = self._limited.pop(0) if self._limited else None
            if limited is None and self.quota is not None:
                if self.quota <= 0:
                    limited = (403, {})
                else:
                    self.quota -= 1
            if limited and limited[0] < 500:
                self.refused += 1
        if limited:
            status, extra = limited
            if status >= 500:
                body = {"message": "Server Error"}
            elif extra:
                body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before "
                                   "you try again.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}
            else:
                body = {"message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for "
                                   "help, please include the request ID.",
                        "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}
            self._send(h, status, body, extra)
            return
        url = urllib.parse.urlparse(h.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        try:
            status, data, headers = self._route(method, url.path, query, payload)
        except KeyError:
            status, data, headers = 404, {"message": "Not Found",
                                          "documentation_url": "https://docs.github.com/rest"}, {}
        self._send(h, status, data, headers)

    def _page(self, path: str, items: list[Any], query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        per_page = int(query.get("per_page", 30))
        page = int(query.get("page", 1))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []

        def link(p: int, rel: str) -> str:
            q = {**query, "page": str(p), "per_page": str(per_page)}
            return f'<{self.origin}{path}?{urllib.parse.urlencode(q)}>; rel="{rel}"'

        if page < last:
            links += [link(page + 1, "next"), link(last, "last")]
        if page > 1:
            links += [link(1, "first"), link(page - 1, "prev")]
        return 200, chunk, ({"Link": ", ".join(links)} if links else {})

    def _route(self, method: str, path: str, query: dict[str, str], payload: bytes
               ) -> tuple[int, Any, dict[str, str]]:
        if method == "POST" and path == "/api/graphql":
            return self._graphql(json.loads(payload or b"{}"))
        if path == "/api/v3/rate_limit":
            core = {"limit": 5000, "remaining": 4999, "reset": self.reset_at or 2_000_000_000, "used": 1}
            return 200, {"resources": {"core": core}, "rate": core}, {}
        m = re.match(r"^/api/v3/repos/(?P<o>[^/]+)/(?P<r>[^/]+)(?P<rest>/.*)?$", path)
        if not m:
            raise KeyError(path)
        repo = self.repos[f"{m['o']}/{m['r']}"]
        rest = m["rest"] or ""
        if rest == "/pulls":
            pulls = list(repo.pulls)
            state = query.get("state", "open")
            if state != "all":
                pulls = [p for p in pulls if p["state"] == state]
            if query.get("direction", "desc" if query.get("sort", "created") == "created" else "asc") == "desc":
                pulls = pulls[::-1]
            return self._page(path, pulls, query)
        if (pm := re.match(r"^/pulls/(\d+)$", rest)):
            return 200, next(p for p in repo.pulls if p["number"] == int(pm[1])), {}
        if (pm := re.match(r"^/pulls/(\d+)/commits$", rest)):
            return self._page(path, repo.commits.get(int(pm[1]), []), query)
        if (im := re.match(r"^/issues/(\d+)$", rest)):
            return 200, repo.issues[int(im[1])], {}
        if (im := re.match(r"^/issues/(\d+)/comments$", rest)):
            if int(im[1]) not in repo.issues:
                raise KeyError(rest)
            return self._page(path, repo.comments.get(int(im[1]), []), query)
        raise KeyError(rest)

    def _graphql(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        v = body.get("variables", {})
        repo = self.repos.get(f"{v.get('owner')}/{v.get('name')}")
        if repo is None or "closingIssuesReferences" not in body.get("query", ""):
            return 200, {"errors": [{"type": "NOT_FOUND", "message": "Could not resolve to a Repository"}]}, {}
        nodes = [{"number": n, "repository": {"nameWithOwner": f"{repo.owner}/{repo.name}"}}
                 for n in repo.closing.get(int(v["number"]), [])]
        pr = {"closingIssuesReferences": {"nodes": nodes}}
        return 200, {"data": {"repository": {"pullRequest": pr}}}, {}
