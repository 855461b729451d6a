"""The grader's side of the Node and Go guard (``verifiers.langs.guard.check``), without Docker:
streams signed as ``tf_node_guard.cjs`` signs them (HMAC chained over the canonical JSON of each
record, a child's key HMAC(parent's key, token)), then each way a report can fail to check out."""

from __future__ import annotations

import hashlib
import hmac
import json

from verifiers.langs.guard import LangGuard, check, go_test_name

KEY = LangGuard.new().key.encode()


def _sign(records: list[dict], key: bytes) -> str:
    mac, lines = "", []
    for rec in records:
        mac = hmac.new(key, (mac + json.dumps(rec, sort_keys=True, ensure_ascii=False)).encode(),
                       hashlib.sha256).hexdigest()
        lines.append(json.dumps({**rec, "mac": mac}))
    return "\n".join(lines) + "\n"


def _child_key(parent: bytes, token: str) -> bytes:
    return bytes.fromhex(hmac.new(parent, token.encode(), hashlib.sha256).hexdigest())


def _stream(key: bytes, *, children=(), native=(), findings=(), finish=True) -> str:
    recs = [{"type": "start", "pid": 7, "argv": ["runner"]}] + [{"type": "finding", "what": f} for f in findings]
    if finish:
        recs.append({"type": "finish", "how": "exit", "children": list(children), "native": list(native),
                     "records": len(recs) + 1, "pid": 7})
    return _sign(recs, key)


def _report(streams: dict, unused: dict | None = None, native_sha: str = "") -> str:
    rec = {"type": "node_guard", "streams": streams, "unused_keys": unused or {}, "native_sha256": native_sha}
    return json.dumps({"type": "collected", "nodeids": []}) + "\n" + json.dumps(rec) + "\n"


ROOT = bytes.fromhex(KEY.decode())
SHA = hashlib.sha256(b"{}").hexdigest()


def test_a_clean_session_checks_out():
    child = _child_key(ROOT, "t1")
    rep = _report({"root": _stream(ROOT, children=["t1", "t2"]), "t1": _stream(child, native=[SHA])},
                  unused={"t2": _child_key(ROOT, "t2").hex()}, native_sha=SHA)
    assert check(rep, KEY, "jest") == []


def test_each_way_a_report_fails():
    child = _child_key(ROOT, "t1")
    # a finding, a missing finish, a forged record, a deleted child stream, a fake unused key,
    # a report changed after the runner wrote it
    assert any("assert.ok was replaced" in f for f in check(
        _report({"root": _stream(ROOT, findings=["assert.ok was replaced"])}), KEY, "node-test"))
    assert any("ended before its guard finished" in f for f in check(
        _report({"root": _stream(ROOT, finish=False)}), KEY, "node-test"))
    assert any("was not written by the guard" in f for f in check(
        _report({"root": _stream(b"\0" * 32)}), KEY, "node-test"))
    assert any("stream is missing" in f for f in check(
        _report({"root": _stream(ROOT, children=["t1"])}), KEY, "node-test"))
    assert any("stream is missing" in f for f in check(
        _report({"root": _stream(ROOT, children=["t1"])}, unused={"t1": "00" * 32}), KEY, "node-test"))
    assert any("changed after the runner wrote it" in f for f in check(
        _report({"root": _stream(ROOT, children=["t1"]), "t1": _stream(child, native=[SHA])},
                native_sha="ab" * 32), KEY, "mocha"))
    assert any("not written by the runner" in f for f in check(
        _report({"root": _stream(ROOT)}, native_sha=SHA), KEY, "vitest"))
    assert any("no Node process started" in f for f in check(_report({}), KEY, "jest"))
    assert any("no guard record" in f for f in check("", KEY, "jest"))


def test_go_needs_the_guard_test_by_its_secret_name():
    name = go_test_name(KEY)
    ok = json.dumps({"type": "go_guard", "seen": [[f".::{name}", "passed"]]})
    assert check(ok, KEY, "go", ["."]) == []
    missing = json.dumps({"type": "go_guard", "seen": []})
    assert any("did not pass" in f for f in check(missing, KEY, "go", ["."]))
    posing = json.dumps({"type": "go_guard", "seen": [[f".::{name}", "passed"], [".::TestTfGuard0000", "passed"]]})
    assert any("posing as the guard" in f for f in check(posing, KEY, "go", ["."]))
