"""Grading's guard for the Node and Go runners: the files it puts in the sandbox, and the check of
what they left.

Why: pytest sessions are graded in guard mode (``verifiers/plugin/tf_report.py``); a jest,
vitest, mocha, node:test or ``go test`` session ran the patched library in the runner's own
process with nothing watching, so a patch could rewrite the runner's report, make the assertion
library a no-op, or exit 0 early. Here:

- **Node**: ``tf_node_guard.cjs``, written outside ``/testbed`` under a random name, is preloaded
  first in every Node process (``NODE_OPTIONS=--require``, which reaches npx's child, jest's and
  vitest's workers and node:test's per-file children). It reads a one-time key (deleted on
  reading; each child gets its own key from its parent), watches, and signs a stream per process.
- **Go**: a test ``TestTfGuard<nonce>`` is added to every tested package (a file written after
  the reset, ``zzzz_tf_guard_test.go``: ``go vet``, which ``go test`` runs, does not read
  ``-overlay`` in Go 1.19) and selected by a pattern that does not spell the nonce. Code that prints forged ``--- PASS`` lines from ``init`` and exits, or ends the test binary
  early (``syscall.Exit``; ``os.Exit(0)`` is already a panic under ``go test``), must forge the
  guard test's lines too, and does not know its name.
- **Both**: when the runner exits, every process left in the sandbox is killed before grading's
  own converter (a fresh copy, not the image's) reads the reports: nothing rewrites them after.

``check(report_text, key, runner)`` lists why a session's report cannot be believed;
``docs/languages.md`` says what is defended and what is not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LangGuard", "check"]

_HERE = Path(__file__).parent
GO_PREFIX = "TestTfGuard"
# Runners whose report is written whole by the runner's own process (its SHA-256 is recorded then).
_HASHED = {"jest", "vitest", "mocha"}

# Run before ``go test``, after the reset: in each tested package's folder, a file that declares
# the guard test in the package's own name.
GO_FILE = "zzzz_tf_guard_test.go"
_GO_PLACE = r"""
import os, re, sys
body, root = open(sys.argv[1]).read(), "/testbed"
for d in sys.argv[2:]:
    folder = os.path.normpath(os.path.join(root, d))
    names = sorted(n for n in os.listdir(folder) if n.endswith(".go"))
    pkg = None
    for n in sorted(names, key=lambda n: n.endswith("_test.go")):
        m = re.search(r"^package\s+(\w+)", open(os.path.join(folder, n), errors="replace").read(), re.M)
        if m and not (n.endswith("_test.go") and m.group(1).endswith("_test")):
            pkg = m.group(1)
            break
    if pkg is None:
        continue
    with open(os.path.join(folder, "GO_FILE"), "w") as fh:
        fh.write("package %s\n\n%s" % (pkg, body))
""".replace("GO_FILE", GO_FILE)


@dataclass(frozen=True)
class LangGuard:
    """One graded session's guard: a fresh key and random names."""

    key: str
    tag: str

    @classmethod
    def new(cls) -> LangGuard:
        return cls(secrets.token_hex(32), secrets.token_hex(8))

    @property
    def preload(self) -> str:
        return f"/tf-out/p/tfg_{self.tag}.cjs"

    @property
    def converter(self) -> str:
        return f"/tf-out/p/tfc_{self.tag}.py"

    @property
    def streams(self) -> str:
        return f"/tf-out/n/{self.tag}"

    @property
    def master(self) -> str:
        return f"/tf-out/g/nk_{self.tag}"

    @property
    def go_dir(self) -> str:
        return f"/tf-out/g/go_{self.tag}"

    @property
    def go_test(self) -> str:
        return go_test_name(self.key.encode())

    def setup(self) -> tuple[str, dict[str, str]]:
        """Shell and environment for the exec that prepares the sandbox, which exits before any
        project code runs (an exec's environment is readable through /proc by what runs beside
        it): the preload, the converter, the key and the Go guard test's body, as files."""
        env = {"TF_NG_SRC": _source("tf_node_guard.cjs"), "TF_CONV_SRC": _source("tf_convert.py"),
               "TF_NG_MASTER": self.key, "TF_GO_BODY": f'import "testing"\n\nfunc {self.go_test}(t *testing.T) {{}}\n',
               "TF_GO_PLACE": _GO_PLACE}
        script = (f"mkdir -p /tf-out/p /tf-out/g {self.streams} {self.go_dir}; "
                  f"printf '%s' \"$TF_NG_SRC\" > {self.preload}; printf '%s' \"$TF_CONV_SRC\" > {self.converter}; "
                  f"printf '%s' \"$TF_NG_MASTER\" > {self.master}; printf '%s' \"$TF_GO_BODY\" > {self.go_dir}/body; "
                  f"printf '%s' \"$TF_GO_PLACE\" > {self.go_dir}/place.py; ")
        return script, env

    def node_env(self, native: str) -> str:
        """The environment the guard reads (``NODE_OPTIONS``, which starts it, is the runner's to
        compose)."""
        return f"TF_NG_DIR={self.streams} TF_NG_KEY={self.master} TF_NG_NATIVE={shlex.quote(native)}"

    def go_place(self, dirs: list[str]) -> str:
        """Shell that writes the guard test into the tested packages' folders."""
        return f"python -I {self.go_dir}/place.py {self.go_dir}/body " + " ".join(shlex.quote(d) for d in dirs)


# After the runner: every process but this shell and the container's init, gone (three passes: a
# process that forks while the first pass runs is caught by the next).
KILL_THE_REST = "for _ in 1 2 3; do kill -9 -1 2>/dev/null; done"


def go_test_name(key: bytes) -> str:
    return GO_PREFIX + hmac.new(key, b"go guard test", hashlib.sha256).hexdigest()[:16]


def _source(name: str) -> str:
    return (_HERE / name).read_text()


def _canon(rec) -> str:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False)


def _stream(text: str, key: bytes) -> tuple[list[dict], str | None]:
    """The stream's records, checked against its key; (records, what is wrong or None)."""
    mac, recs = "", []
    for n, line in enumerate(x for x in text.splitlines() if x.strip()):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return recs, f"line {n + 1} is not JSON"
        got = str(rec.pop("mac", ""))
        want = hmac.new(key, (mac + _canon(rec)).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(got, want):
            return recs, f"record {n + 1} was not written by the guard"
        mac = want
        recs.append(rec)
    return recs, None


def check(report_text: str, key: bytes, runner: str, packages: list[str] | None = None) -> list[str]:
    """Why the report of a guarded session cannot be believed (empty: it can)."""
    recs = []
    for line in report_text.splitlines():
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    if runner == "go":
        return _check_go(recs, key, packages or [])
    return _check_node(recs, key, runner)


def _check_go(recs: list[dict], key: bytes, packages: list[str]) -> list[str]:
    rec = next((r for r in recs if r.get("type") == "go_guard"), None)
    if rec is None:
        return ["the session left no guard record (the converter did not run)"]
    name = go_test_name(key)
    found = []
    seen = {tuple(x) for x in rec.get("seen", [])}
    for tid, outcome in sorted(seen):
        if tid.split("::", 1)[-1] != name:
            found.append(f"a test posing as the guard test: {tid} ({outcome})")
    for pkg in packages:
        if (f"{pkg}::{name}", "passed") not in seen:
            found.append(f"package {pkg}: the guard test did not pass (the test binary ended early, or its "
                         "output was not the testing package's)")
    return found


def _check_node(recs: list[dict], key: bytes, runner: str) -> list[str]:
    rec = next((r for r in recs if r.get("type") == "node_guard"), None)
    if rec is None:
        return ["the session left no guard record (the converter did not run)"]
    streams, unused = rec.get("streams") or {}, rec.get("unused_keys") or {}
    found: list[str] = []
    if "root" not in streams:
        found.append("no Node process started under the guard (its key was taken, or its stream deleted)")
    # Keys from the root down: a child's key is HMAC(its parent's key, its token), and a parent
    # names its children in its finish record.
    keys = {"root": bytes.fromhex(key.decode())}
    mine_parent: dict[str, bytes] = {}
    queue, hashes, done = ["root"], [], set()
    while queue:
        token = queue.pop(0)
        if token in done:
            continue
        done.add(token)
        mine = keys[token]
        if token not in streams:
            if token != "root":
                want = hmac.new(mine_parent[token], token.encode(), hashlib.sha256).hexdigest()
                if not hmac.compare_digest(str(unused.get(token, "")), want):
                    found.append(f"a child process's guard stream is missing ({token}: deleted, or its key taken)")
            continue
        records, bad = _stream(streams[token], mine)
        who = next((f"pid {r.get('pid')} {' '.join(r.get('argv', []))}" for r in records if r.get("type") == "start"),
                   token)
        if bad:
            found.append(f"the guard stream of {who}: {bad}")
        found += [f"{who}: {r.get('what')}" for r in records if r.get("type") == "finding"]
        fin = next((r for r in records if r.get("type") == "finish"), None)
        start = next((r for r in records if r.get("type") == "start"), {})
        if fin is None:
            if not bad and start.get("test", True):  # a program the tests started may be killed
                found.append(f"{who} ended before its guard finished (process.reallyExit, a removed exit "
                             "listener, or a kill)")
            continue
        if fin.get("records") != len(records):
            found.append(f"the guard stream of {who} holds {len(records)} records but its finish counts "
                         f"{fin.get('records')}")
        hashes += [h for h in fin.get("native") or [] if len(h) == 64]
        for child in fin.get("children") or []:
            child = str(child)
            mine_parent[child] = mine
            keys[child] = bytes.fromhex(hmac.new(mine, child.encode(), hashlib.sha256).hexdigest())
            queue.append(child)
    for token in sorted(set(streams) - done):
        found.append(f"a guard stream that no guarded process started: {token}")
    if runner in _HASHED and rec.get("native_sha256"):
        if not hashes:
            found.append(f"the {runner} report was not written by the runner (no write of it that the guard saw)")
        elif rec["native_sha256"] != hashes[-1]:
            found.append(f"the {runner} report was changed after the runner wrote it")
    return found
