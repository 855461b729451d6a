"""Candidates from the GitHub API: merged pull requests, with their linked issues as the task text.

SWE-bench's recipe, through PyGithub (its ``requester``: auth, base URL, errors; JSON in GitHub's
own shapes): list the repository's closed pull requests (oldest first, following the ``Link``
headers page by page), keep the merged ones, find the issues each one resolves (``fixes #123`` in its
title or body, and GraphQL's ``closingIssuesReferences``), take the issues' text as the problem
statement and the issue comments made before the PR's first commit as hints. The code itself
comes from the local clone (the merge commit ``merge_commit_sha`` and its first parent), so the
patch is exactly what git applies; a PR whose merge commit is not in the clone (force-pushed or
rewritten history) is skipped with ``skipped_merge_commit_missing``. The local diff is judged
first, so a PR it rules out (docs only, no tests, ...) costs no request beyond its list page.

Requests are cheap to repeat, never to lose:
- every response this module uses is cached as JSON under ``cache_dir`` (list pages and one file
  per PR with its commits, issues and comments), so a re-run makes no requests;
- ``cursor.json`` says how many list pages are done and holds GitHub's ``Link`` to the next one,
  so an interrupted run resumes where it stopped;
- a response saying the quota is spent (``X-RateLimit-Remaining: 0``) makes the next request wait
  for ``X-RateLimit-Reset``; a refusal anyway (403/429 with ``Retry-After`` or a spent quota) is
  waited out the same way and retried, never failing the run. ``sleep`` is injectable.

Not for: the local-history heuristics (``local``); cloning (``factory.repo``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from miners.diffs import Limits
from miners.errors import GitHubError, MinerError, MissingDependency
from miners.gitio import CommitMeta, commits_meta, diff_batch, git, require_repo
from miners.issues import linked_issue_numbers
from miners.local import CandidateBuilder, Change, MineResult

__all__ = ["DEFAULT_BASE_URL", "GitHubClient", "linked_issue_numbers", "mine_github"]

DEFAULT_BASE_URL = "https://api.github.com"
T = TypeVar("T")

def _import_github() -> Any:
    try:
        import github
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise MissingDependency("the GitHub miner needs PyGithub: pip install 'taskfactory[github]'") from e
    return github


class GitHubClient:
    """PyGithub with our rate-limit policy, a request count, and nothing sleeping behind our back.

    PyGithub's own retry and request spacing are off (``retry=None``, no ``seconds_between_*``):
    this class decides when to wait, through ``sleep``, so tests wait for nothing.
    """

    def __init__(self, slug: str, *, token: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 per_page: int = 100, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.time, max_waits: int = 1000, timeout: int = 30) -> None:
        gh = _import_github()
        auth = gh.Auth.Token(token) if token else None
        self.gh = gh.Github(base_url=base_url, auth=auth, per_page=per_page, retry=None, timeout=timeout,
                            seconds_between_requests=None, seconds_between_writes=None, lazy=True)
        self.slug = slug
        self.per_page = per_page
        self.sleep, self.clock, self.max_waits = sleep, clock, max_waits
        self.num_calls = 0
        self.num_waits = 0
        self.waited_s = 0.0
        self._waited_until = 0  # the reset time last waited for: never wait twice for one window
        self.graphql_ok = bool(token)  # GitHub's GraphQL API answers authenticated requests only
        self._exc = gh.GithubException

    def call(self, fn: Callable[[], T], what: str) -> T:
        """Run ``fn`` (which makes requests), waiting out rate limits and retrying 5xx a few times."""
        server_errors = 0
        while True:
            self._respect_quota()
            self.num_calls += 1
            try:
                return fn()
            except self._exc as e:
                wait = self._rate_limit_wait(e)
                if wait is not None and self.num_waits < self.max_waits:
                    self._wait(wait)
                    self._waited_until = max(self._waited_until, self.gh.requester.rate_limiting_resettime)
                    continue
                if e.status is not None and e.status >= 500 and server_errors < 3:
                    server_errors += 1
                    self.sleep(2.0 ** server_errors)
                    continue
                raise GitHubError(f"GitHub {what}: {e.status} {_message(e)}", status=e.status) from e
            except OSError as e:  # connection refused, reset, DNS: not ours to hide
                if server_errors < 3:
                    server_errors += 1
                    self.sleep(2.0 ** server_errors)
                    continue
                raise GitHubError(f"GitHub {what}: {e}") from e

    def _wait(self, seconds: float) -> None:
        self.num_waits += 1
        self.waited_s += seconds
        self.sleep(seconds)

    def _respect_quota(self) -> None:
        """The last response said no requests are left: wait for the reset instead of being refused."""
        remaining, limit = self.gh.requester.rate_limiting
        reset = self.gh.requester.rate_limiting_resettime
        if limit > 0 and remaining <= 0 and reset > self._waited_until and self.num_waits < self.max_waits:
            self._wait(max(1.0, reset - self.clock() + 1.0))
            self._waited_until = reset

    def _rate_limit_wait(self, e: Any) -> float | None:
        if e.status not in (403, 429):
            return None
        headers = {k.lower(): v for k, v in (e.headers or {}).items()}
        if "retry-after" in headers:
            try:
                return max(1.0, float(headers["retry-after"]))
            except ValueError:
                return 60.0
        if headers.get("x-ratelimit-remaining") == "0":
            try:
                reset = float(headers.get("x-ratelimit-reset", 0))
            except ValueError:
                reset = 0.0
            return max(1.0, reset - self.clock() + 1.0)
        if "rate limit" in _message(e).lower():  # secondary limits sometimes carry no headers
            return 60.0
        return None

    # -- the requests we make ------------------------------------------------------------------
    # Through ``Github.requester`` (PyGithub's documented door to endpoints as they are): JSON in
    # GitHub's own shapes, one request per call, so the quota is checked before every page, and
    # paging follows the ``Link: <...>; rel="next"`` headers as GitHub documents it.

    def get(self, url: str, params: dict[str, Any] | None, what: str) -> tuple[dict[str, Any], Any]:
        """One GET (``url`` relative to the API root, or a ``Link`` URL); returns (headers, JSON)."""
        return self.call(lambda: self.gh.requester.requestJsonAndCheck("GET", url, parameters=params), what)

    def pages(self, url: str, params: dict[str, Any] | None, what: str) -> Iterator[tuple[list[Any], str | None]]:
        """Each page of a list and the URL of the next one (None on the last)."""
        if params is not None:  # a Link URL already carries its query, per_page included
            params = {**params, "per_page": self.per_page}
        k = 0
        while url:
            headers, data = self.get(url, params, f"{what}, page {k + 1}")
            nxt = _next_link(headers)
            yield list(data or []), nxt
            url, params, k = nxt, None, k + 1  # the next link carries the query itself

    def all_items(self, url: str, what: str) -> list[Any]:
        return [x for page, _ in self.pages(url, {}, what) for x in page]

    def pulls_url(self) -> tuple[str, dict[str, Any]]:
        return f"/repos/{self.slug}/pulls", {"state": "closed", "sort": "created", "direction": "asc"}

    def pull_commits(self, number: int) -> list[dict[str, Any]]:
        return [{"sha": c["sha"], "message": c["commit"]["message"], "date": c["commit"]["author"]["date"]}
                for c in self.all_items(f"/repos/{self.slug}/pulls/{number}/commits", f"commits of #{number}")]

    def issue(self, number: int) -> dict[str, Any]:
        _, i = self.get(f"/repos/{self.slug}/issues/{number}", None, f"issue #{number}")
        return {"number": i["number"], "title": i.get("title") or "", "body": i.get("body") or "",
                "html_url": i.get("html_url", ""), "is_pull": bool(i.get("pull_request"))}

    def issue_comments(self, number: int) -> list[dict[str, Any]]:
        return [{"body": c.get("body") or "", "created_at": c["created_at"]}
                for c in self.all_items(f"/repos/{self.slug}/issues/{number}/comments", f"comments of #{number}")]

    def closing_issues(self, number: int) -> list[int]:
        owner, name = self.slug.split("/", 1)
        query = ("query($owner: String!, $name: String!, $number: Int!) { repository(owner: $owner, name: $name) "
                 "{ pullRequest(number: $number) { closingIssuesReferences(first: 20) "
                 "{ nodes { number repository { nameWithOwner } } } } } }")
        _, data = self.call(lambda: self.gh.requester.graphql_query(
            query, {"owner": owner, "name": name, "number": number}), f"closing issues of #{number}")
        pr = ((data.get("data") or {}).get("repository") or {}).get("pullRequest") or {}
        nodes = (pr.get("closingIssuesReferences") or {}).get("nodes") or []
        return [n["number"] for n in nodes
                if (n.get("repository") or {}).get("nameWithOwner", self.slug).lower() == self.slug.lower()]


_LINK_RE = re.compile(r'<(?P<url>[^>]+)>;\s*rel="(?P<rel>[^"]+)"')


def _next_link(headers: dict[str, Any]) -> str | None:
    link = {k.lower(): v for k, v in (headers or {}).items()}.get("link", "")
    for m in _LINK_RE.finditer(link):
        if m["rel"] == "next":
            return m["url"]
    return None


def _pull_dict(p: dict[str, Any]) -> dict[str, Any]:
    """The fields of a listed pull request that mining uses (what the list page cache keeps)."""
    return {"number": p["number"], "title": p.get("title") or "", "body": p.get("body") or "",
            "merged_at": p.get("merged_at"), "merge_commit_sha": p.get("merge_commit_sha") or "",
            "html_url": p.get("html_url", ""), "created_at": p.get("created_at"),
            "base_ref": (p.get("base") or {}).get("ref", "")}


def _message(e: Any) -> str:
    data = getattr(e, "data", None)
    if isinstance(data, dict):
        return str(data.get("message", ""))
    return str(data or "")


class _Cache:
    """JSON files under one folder, written atomically; a hit costs no request."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str) -> Any | None:
        p = self.path(key)
        return json.loads(p.read_text()) if p.exists() else None

    def put(self, key: str, data: Any) -> Any:
        p = self.path(key)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, sort_keys=True)
        os.replace(tmp, p)
        return data

    def drop(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)


class _PullRecord:
    """What the API said about one merged PR, cached in ``pr/<number>.json`` part by part.

    Parts are asked for only when needed: a PR whose diff is skipped (docs only, no tests, ...)
    costs no request at all, unless telling a rebase merge from a squash needs its commits.
    """

    def __init__(self, cache: _Cache, raw: dict[str, Any]) -> None:
        self.cache, self.raw = cache, raw
        self.key = f"pr/{raw['number']}"
        self.data: dict[str, Any] = cache.get(self.key) or {}

    def commits(self, client: GitHubClient) -> list[dict[str, Any]]:
        """The PR's commits in its own order, ``[{"sha", "message", "date"}]``."""
        if "commits" not in self.data:
            self.data["commits"] = client.pull_commits(self.raw["number"])
            self.cache.put(self.key, self.data)
        return self.data["commits"]

    def issues(self, client: GitHubClient, *, closing_refs: bool, stats: MineResult) -> list[dict[str, Any]]:
        """Linked issues ``[{"number", "title", "body", "html_url", "hints"}]``; hints are the issue
        comments made before the PR's first commit."""
        stale = closing_refs and client.graphql_ok and not self.data.get("asked_graphql")
        if "issues" in self.data and not stale:
            return self.data["issues"]
        commits = self.commits(client)
        dates = [_parse_time(c["date"]) for c in commits if c.get("date")]
        first_commit = min(dates) if dates else _parse_time(self.raw["created_at"])
        issues, asked = _linked_issues(client, self.raw, first_commit, closing_refs=closing_refs, stats=stats)
        self.data.update(issues=issues, asked_graphql=asked)
        self.cache.put(self.key, self.data)
        return issues


def _parse_time(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _linked_issues(client: GitHubClient, raw: dict[str, Any], first_commit: dt.datetime, *, closing_refs: bool,
                   stats: MineResult) -> tuple[list[dict[str, Any]], bool]:
    number = raw["number"]
    numbers = linked_issue_numbers(f"{raw.get('title') or ''}\n{raw.get('body') or ''}", client.slug)
    asked_graphql = False
    if closing_refs and client.graphql_ok:
        try:
            numbers += [n for n in client.closing_issues(number) if n not in numbers]
            asked_graphql = True
        except GitHubError as e:
            stats.count("graphql_errors")  # GHES without GraphQL, or a token without the scope
            if e.status in (401, 403, 404):
                client.graphql_ok = False  # it will not get better in this run: stop asking
    issues = []
    for n in numbers:
        try:
            issue = client.issue(n)
        except GitHubError as e:
            if e.status not in (404, 410):
                raise  # transient: the PR is skipped this run and not cached, so it is asked again
            stats.count("linked_issue_missing")  # deleted, transferred, or a typo in "fixes #N"
            continue
        if issue["is_pull"]:
            continue  # "fixes #N" where #N is another PR, not an issue
        hints = [c["body"] or "" for c in client.issue_comments(n) if _parse_time(c["created_at"]) < first_commit]
        issues.append({"number": n, "title": issue.get("title") or "", "body": issue.get("body") or "",
                       "html_url": issue.get("html_url", ""), "hints": hints})
    return issues, asked_graphql


def _change_for(raw: dict[str, Any], meta: CommitMeta, repo_path: Path,
                commits: Callable[[], list[dict[str, Any]]]) -> Change | str:
    """How the PR landed (merge, squash or rebase) and so where its base is."""
    number, title, body = raw["number"], raw.get("title") or "", raw.get("body") or ""
    if title.startswith('Revert "'):
        return "revert"
    n = len(meta.parents)
    if n == 0:
        return "root_commit"
    if n > 2:
        return "octopus_merge"
    if n == 2:
        return Change(meta, meta.parents[0], "merge", number, title, body)
    if f"(#{number})" in meta.subject:  # GitHub's squash title: no need to ask for the commits
        return Change(meta, meta.parents[0], "squash", number, title, body)
    pr_commits = commits()
    k = len(pr_commits)
    last_subject = pr_commits[-1]["message"].split("\n", 1)[0].strip() if pr_commits else ""
    if k > 1 and meta.subject == last_subject:
        # rebase-merged: the PR's k commits were replayed on the base, the last one is "merge_commit"
        proc = git(repo_path, "rev-parse", "--verify", "--quiet", f"{meta.sha}~{k}", check=False)
        if proc.returncode:
            return "rebase_base_missing"
        return Change(meta, proc.stdout.decode().strip(), "rebase", number, title, body)
    return Change(meta, meta.parents[0], "squash", number, title, body)


def mine_github(
    repo_path: str | Path,
    slug: str,
    *,
    repo: str,
    cache_dir: str | Path,
    token: str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    since: str | None = None,
    max_candidates: int | None = None,
    max_pages: int | None = None,
    per_page: int = 100,
    require_issue: bool = True,
    closing_refs: bool = True,
    refresh: bool = False,
    test_globs: Sequence[str] = (),
    limits: Limits = Limits(),
    env_mode: Literal["deps", "tag"] = "deps",
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    progress: Callable[[dict[str, int]], None] | None = None,
) -> MineResult:
    """Mine ``pr`` candidates of GitHub repository ``slug`` (``OWNER/NAME``), code from ``repo_path``.

    ``token`` defaults to ``$GITHUB_TOKEN`` (unauthenticated otherwise: 60 requests an hour).
    ``since`` (``YYYY-MM-DD``) keeps PRs merged on or after it. ``require_issue`` skips PRs with no
    linked issue (SWE-bench's rule; ``skipped_no_linked_issue``); without it the PR's own title and
    body stand in. ``closing_refs`` also asks GraphQL for issues linked in the UI (needs a token). ``refresh`` re-lists every page (PRs merged since the last run), reusing the per-PR cache.
    Stats: ``pulls_listed``, ``prs`` (merged), ``candidates``, ``github_calls``, ``rate_limit_waits``,
    ``rate_limit_wait_s``, ``skipped_<reason>``. ``progress`` gets the stats after each list page;
    ``sleep`` and ``clock`` are injectable so tests never wait.
    """
    repo_path = Path(repo_path)
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", slug):
        raise MinerError(f"not an OWNER/NAME repository: {slug!r}")
    require_repo(repo_path)
    token = token if token is not None else os.environ.get("GITHUB_TOKEN") or None
    cache = _Cache(Path(cache_dir) / slug.replace("/", "__"))
    client = GitHubClient(slug, token=token, base_url=base_url, per_page=per_page, sleep=sleep, clock=clock)
    result = MineResult()
    try:
        since_dt = _parse_time(f"{since}T00:00:00+00:00" if len(since) == 10 else since) if since else None
    except ValueError as e:
        raise MinerError(f"since must be YYYY-MM-DD or ISO-8601: {since!r}") from e

    first_url, first_params = client.pulls_url()
    # cursor: how many list pages are cached, and where the next one is (GitHub's own Link URL)
    cursor = cache.get("cursor") or {"pages": 0, "next_url": None, "complete": False, "per_page": per_page}
    if cursor.get("per_page") != per_page:
        raise MinerError(f"the cache in {cache.root} was listed with per_page={cursor.get('per_page')}; "
                         f"use that, or a fresh cache_dir")
    if refresh:  # list pages are cheap (100 PRs each); per-PR files stay cached
        for k in range(cursor["pages"]):
            cache.drop(f"pulls/page-{k:05d}")
        cursor = {**cursor, "pages": 0, "next_url": None, "complete": False}

    builder = CandidateBuilder(repo_path, repo, result, test_globs, limits, env_mode)
    builder.slug = slug  # links point at the repository the PRs came from
    try:
        for page, items in enumerate(_list_pages(client, cache, cursor, first_url, first_params)):
            if max_pages is not None and page >= max_pages:
                break
            result.count("pulls_listed", len(items))
            _mine_page(items, client, cache, builder, result, since_dt=since_dt, max_candidates=max_candidates,
                       require_issue=require_issue, closing_refs=closing_refs, repo_path=repo_path)
            if progress:
                progress({**result.stats, "candidates": len(result.candidates), "pages": page + 1,
                          "github_calls": client.num_calls, "rate_limit_waits": client.num_waits})
            if max_candidates is not None and len(result.candidates) >= max_candidates:
                break
    finally:
        builder.close()
        result.stats["candidates"] = len(result.candidates)
        result.stats["github_calls"] = client.num_calls
        result.stats["rate_limit_waits"] = client.num_waits
        result.stats["rate_limit_wait_s"] = int(round(client.waited_s))
    return result


def _list_pages(client: GitHubClient, cache: _Cache, cursor: dict[str, Any], first_url: str,
                first_params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """The pull-request list, page by page: cached pages first, then the API from the cursor on."""
    k = 0
    while k < cursor["pages"] and (items := cache.get(f"pulls/page-{k:05d}")) is not None:
        yield items
        k += 1
    if k == cursor["pages"] and k and cursor["complete"]:
        return
    if k == cursor["pages"] and k:
        url, params = cursor["next_url"], None  # GitHub's own Link to the page after the last cached
    else:  # a fresh start, or a cached page gone missing: ask for that page by number
        url, params = first_url, {**first_params, **({"page": k + 1} if k else {})}
    for raw_items, nxt in client.pages(url, params, "pulls"):
        items = cache.put(f"pulls/page-{k:05d}", [_pull_dict(p) for p in raw_items])
        k += 1
        cursor.update(pages=k, next_url=nxt, complete=nxt is None)
        cache.put("cursor", cursor)
        yield items


def _mine_page(items: list[dict[str, Any]], client: GitHubClient, cache: _Cache, builder: CandidateBuilder,
               result: MineResult, *, since_dt: dt.datetime | None, max_candidates: int | None,
               require_issue: bool, closing_refs: bool, repo_path: Path) -> None:
    merged = []
    for raw in items:
        if not raw.get("merged_at"):
            result.skip("not_merged")
            continue
        if since_dt and _parse_time(raw["merged_at"]) < since_dt:
            result.skip("before_since")
            continue
        merged.append(raw)
    result.count("prs", len(merged))
    metas = commits_meta(repo_path, [r["merge_commit_sha"] for r in merged if r.get("merge_commit_sha")])
    todo: list[tuple[Change, _PullRecord]] = []
    for raw in merged:
        meta = metas.get(raw.get("merge_commit_sha") or "")
        if meta is None:
            result.skip("merge_commit_missing")  # force-pushed, rewritten, or not fetched
            continue
        record = _PullRecord(cache, raw)
        try:
            change = _change_for(raw, meta, repo_path, lambda r=record: r.commits(client))
        except GitHubError:
            result.skip("github_error")  # not cached: the next run asks again
            continue
        if isinstance(change, str):
            result.skip(change)
            continue
        todo.append((change, record))
    if not todo:
        return
    # the diff decides first (no requests); only the PRs it keeps get their issues asked for
    diffs = diff_batch(repo_path, [(c.commit.sha, c.base) for c, _ in todo])
    for (change, record), (_sha, raw_diff) in zip(todo, diffs, strict=True):
        if max_candidates is not None and len(result.candidates) >= max_candidates:
            return
        split = builder.split(change, raw_diff)
        if isinstance(split, str):
            result.skip(split)
            continue
        try:
            issues = record.issues(client, closing_refs=closing_refs, stats=result)
        except GitHubError:
            result.skip("github_error")
            continue
        if require_issue and not issues:
            result.skip("no_linked_issue")
            continue
        raw = record.raw
        statement = "\n\n".join(f"{i['title']}\n{i['body']}".strip() for i in issues) or None
        hints = "\n\n".join(h for i in issues for h in i["hints"] if h)
        extra = {"linked_issues": [i["number"] for i in issues], "issue_urls": [i["html_url"] for i in issues],
                 "base_ref": raw.get("base_ref", ""), "pull_url": raw.get("html_url", "")}
        result.candidates.append(builder.finish(
            change, split, problem_statement=statement, hints_text=hints,
            created_at=_parse_time(raw["merged_at"]).strftime("%Y-%m-%dT%H:%M:%SZ"), extra=extra))
