"""JavaScript/TypeScript/Go detection and the runners' report conversion, without Docker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from factory.errors import ImageError
from verifiers.langs import language_of
from verifiers.langs import tf_convert as conv
from verifiers.langs.golang import detect_go, required_modules
from verifiers.langs.node import detect_node
from verifiers.langs.runners import GoTestRunner, NodeRunner, protected_config, runner_from_cmd
from verifiers.runner import PytestRunner, Selection, runner_for
from verifiers.sandbox import classify, parse_report


def _write(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return sorted(files)


def test_language_of_a_tree():
    assert language_of(["package.json", "index.js"]) == "javascript"
    assert language_of(["go.mod", "a.go"]) == "go"
    assert language_of(["pyproject.toml", "package.json"]) == "python"  # a Python project with JS tooling
    assert language_of(["src/package.json", "x.py"]) == "python"


@pytest.mark.parametrize(("scripts", "dev", "cmd", "runner"), [
    # the real libraries' scripts (bench/RESULTS.md, #23)
    ({"test": "mocha --reporter spec test/test.js"}, {"mocha": "10.8.2"}, "node_modules/.bin/mocha --reporter spec test/test.js", "mocha"),
    ({"test": "jest tests --coverage"}, {"jest": "^26"}, "node_modules/.bin/jest tests --coverage", "jest"),
    ({"test": "pnpm lint && pnpm test:types && pnpm vitest run"}, {"vitest": "^4"}, "node_modules/.bin/vitest run", "vitest"),
    ({"test": "pnpm run test:nodejs && pnpm run test:edge", "test:nodejs": "jest --env node"}, {"jest": "30"},
     "node_modules/.bin/jest --env node", "jest"),
    ({"test": "pnpm run /^test:/", "test:coverage": "bnt --coverage 100"}, {}, "node --test test/*.test.js", "node-test"),
    ({"test": "pnpm run /^test:/", "test:coverage": "c8 bnt"}, {}, "node --test test/*.test.js", "node-test"),
    ({"test": "npx nyc --reporter=lcov mocha test/"}, {}, "node_modules/.bin/mocha test/", "mocha"),
    ({"test": "node --test test/"}, {}, "node --test test/", "node-test"),
    ({"lint": "eslint ."}, {"vitest": "1"}, "node_modules/.bin/vitest run", "vitest"),
])
def test_the_test_command_comes_from_package_json(tmp_path, scripts, dev, cmd, runner):
    files = _write(tmp_path, {"package.json": json.dumps({"scripts": scripts, "devDependencies": dev}),
                              "package-lock.json": "{}", "index.js": ""})
    r = detect_node(tmp_path, files)
    assert (r.test_cmd, r.runner) == (cmd, runner)
    assert r.install[0].startswith("npm ci") and any(cmd.split()[0] in d or "scripts" in d or "devDep" in d
                                                     for d in r.detected_from)
    assert runner_for(r.test_cmd).name == runner


def test_the_lockfile_picks_the_package_manager_and_its_pinned_version(tmp_path):
    files = _write(tmp_path, {"package.json": json.dumps({"scripts": {"test": "vitest"},
                                                          "packageManager": "pnpm@10.33.0"}),
                              "pnpm-lock.yaml": "", "src/a.ts": "", "src/b.ts": "", "src/c.js": ""})
    r = detect_node(tmp_path, files)
    assert r.language == "typescript"
    assert "pnpm@10.33.0 install --frozen-lockfile" in r.install[0]
    assert "pnpm-lock.yaml (pnpm@10.33.0)" in r.detected_from


def test_no_runner_is_a_specific_error(tmp_path):
    files = _write(tmp_path, {"package.json": json.dumps({"scripts": {"test": "echo none"}})})
    with pytest.raises(ImageError) as e:
        detect_node(tmp_path, files)
    assert e.value.reason == "no_test_runner"


def test_go_modules_that_need_downloading_fail_with_their_reason(tmp_path):
    go_mod = "module x\n\ngo 1.19\n\nrequire (\n\tgithub.com/a/b v1.0.0 // indirect\n\tgolang.org/x/c v0.1.0\n)\n"
    assert required_modules(go_mod) == ["github.com/a/b", "golang.org/x/c"]
    _write(tmp_path, {"go.mod": go_mod})
    with pytest.raises(ImageError) as e:
        detect_go(tmp_path)
    assert e.value.reason == "go_modules_unavailable" and "github.com/a/b" in str(e.value)
    _write(tmp_path, {"vendor/modules.txt": "# github.com/a/b v1.0.0\n"})
    assert detect_go(tmp_path).goflags == "-mod=vendor"
    _write(tmp_path, {"go.mod": "module x\n\ngo 1.18\n"})
    r = detect_go(tmp_path)
    assert r.test_cmd == "go test ./..." and "go directive 1.18" in r.detected_from


def test_runners_by_test_command_and_what_they_protect():
    assert isinstance(runner_for("python -m pytest"), PytestRunner)
    assert runner_from_cmd("node_modules/.bin/jest").name == "jest"
    assert runner_from_cmd("npx vitest run").name == "vitest"
    assert runner_from_cmd("node --test test/").name == "node-test"
    assert isinstance(runner_from_cmd("go test ./..."), GoTestRunner)
    node = NodeRunner("jest", "node_modules/.bin/jest")
    for p in ("package.json", "sub/jest.config.js", "vitest.config.mts", ".mocharc.yml", "tsconfig.json",
              "pnpm-lock.yaml", "src/a.test.ts", "__tests__/x.js", "test/helpers.js"):
        assert node.protected(p), p
    assert not node.protected("src/index.ts") and not node.protected("lib/config.js")
    go = GoTestRunner()
    assert go.protected("go.mod") and go.protected("x_test.go") and go.protected("vendor/a/b.go")
    assert not go.protected("btree.go") and protected_config("go.sum")


def test_commands_select_files_and_keep_the_reporter():
    jest = NodeRunner("jest", "node_modules/.bin/jest tests --coverage")
    cmd = jest.command(Selection.of(["tests/a.test.ts::x > y", "tests/b.test.ts::z"]))
    assert "--runTestsByPath tests/a.test.ts tests/b.test.ts" in cmd and "--json" in cmd and "--coverage=false" in cmd
    assert "--select /tmp/tf-select" in cmd
    mocha = NodeRunner("mocha", "node_modules/.bin/mocha --reporter spec test/test.js")
    full = mocha.command(Selection())
    assert "--reporter json" in full and "spec" not in full.split("--reporter json")[0] and "test/test.js" in full
    go = GoTestRunner("go test ./...")
    sel = go.command(Selection.of(["./::TestA", "sub::TestB/case_1"]))
    assert "-run '^(TestA|TestB)$'" in sel and "./sub" in sel


def _convert(tmp_path, runner: str, native: str, rc: int, *extra: str) -> tuple[int, str]:
    (tmp_path / "native").write_text(native)
    out = tmp_path / "report.jsonl"
    code = conv.main(["--runner", runner, "--native", str(tmp_path / "native"), "--exit", str(rc),
                      "--out", str(out), "--root", "/testbed", *extra])
    return code, out.read_text()


JEST_REPORT = {
    "numFailedTests": 1, "success": False,
    "testResults": [
        {"name": "/testbed/tests/a.test.js", "status": "failed", "message": "", "assertionResults": [
            {"ancestorTitles": ["calc", "clamp"], "title": "low", "status": "passed", "duration": 3,
             "failureMessages": []},
            {"ancestorTitles": ["calc"], "title": "adds", "status": "failed", "duration": 1,
             "failureMessages": ["\x1b[31mError: expected 5\x1b[0m\n    at x"]},
            {"ancestorTitles": ["calc"], "title": "adds", "status": "pending", "failureMessages": []},
        ]},
        {"name": "/testbed/tests/broken.test.js", "status": "failed", "message": "SyntaxError: Unexpected token",
         "assertionResults": []},
    ],
}


def test_jest_report_becomes_records_with_canonical_ids(tmp_path):
    code, text = _convert(tmp_path, "jest", json.dumps(JEST_REPORT), 1)
    rep = parse_report(text)
    assert rep.collected == ["tests/a.test.js::calc > clamp > low", "tests/a.test.js::calc > adds",
                             "tests/a.test.js::calc > adds #2"]
    assert {k: r.outcome for k, r in rep.results.items()} == {
        "tests/a.test.js::calc > clamp > low": "passed", "tests/a.test.js::calc > adds": "failed",
        "tests/a.test.js::calc > adds #2": "skipped"}
    assert rep.results["tests/a.test.js::calc > adds"].message.startswith("Error: expected 5")
    assert rep.collect_errors == [("tests/broken.test.js", "SyntaxError: Unexpected token")]
    assert code == 1 and rep.exitstatus == 1
    assert classify(code, 1.0, rep, "").status == "ok" and not classify(code, 1.0, rep, "").reason


def test_an_exit_code_that_disagrees_with_the_report_is_flagged(tmp_path):
    passing = {"testResults": [{"name": "/testbed/t.test.js", "assertionResults": [
        {"ancestorTitles": [], "title": "ok", "status": "passed"}]}]}
    code, text = _convert(tmp_path, "jest", json.dumps(passing), 1)  # exit 1, nothing failing
    assert classify(code, 1.0, parse_report(text), "").reason.startswith("exit code")
    code, text = _convert(tmp_path, "jest", json.dumps(passing), 7)  # a crash after the report
    assert code == 7


def test_mocha_exits_with_its_failure_count(tmp_path):
    report = {"tests": [{"title": "a", "fullTitle": "s a", "file": "/testbed/test/t.js", "duration": 2, "err": {}},
                        {"title": "b", "fullTitle": "s b", "file": "/testbed/test/t.js", "err": {"message": "boom"}},
                        {"title": "c", "fullTitle": "s c", "file": "/testbed/test/t.js", "err": {"message": "bang"}}],
              "failures": [{"fullTitle": "s b", "file": "/testbed/test/t.js"},
                           {"fullTitle": "s c", "file": "/testbed/test/t.js"}], "pending": []}
    code, text = _convert(tmp_path, "mocha", "noise before\n" + json.dumps(report), 2)
    rep = parse_report(text)
    assert code == 1 and rep.results["test/t.js::s b"].message == "boom"
    assert rep.results["test/t.js::s a"].outcome == "passed"
    code, _ = _convert(tmp_path, "mocha", json.dumps(report), 3)  # 3 is not its two failures: passed on
    assert code == 3 and conv.normalised_exit("mocha", 0, 0) == 0 and conv.normalised_exit("jest", 1, 2) == 1


def test_a_runner_that_wrote_nothing_is_a_collection_error(tmp_path):
    code, text = _convert(tmp_path, "mocha", "", 1)
    run = classify(code, 1.0, parse_report(text), "")
    assert run.status == "collection_error" and "wrote no report" in run.reason


def test_selection_keeps_the_selected_tests_and_a_missing_one_fails(tmp_path):
    (tmp_path / "sel").write_text("tests/a.test.js::calc > clamp > low\ntests/a.test.js::gone\n")
    code, text = _convert(tmp_path, "jest", json.dumps(JEST_REPORT), 1, "--select", str(tmp_path / "sel"))
    rep = parse_report(text)
    assert rep.collected == ["tests/a.test.js::calc > clamp > low", "tests/a.test.js::gone"]
    assert list(rep.results) == ["tests/a.test.js::calc > clamp > low"]
    from factory.schema import TestRun
    run = TestRun("ok", code, 1.0, tuple(rep.results.values()), tuple(rep.collected))
    assert run.outcomes()["tests/a.test.js::gone"] == "failed"


GO_EVENTS = [
    {"Action": "run", "Package": "example.com/m", "Test": "TestA"},
    {"Action": "output", "Package": "example.com/m", "Test": "TestA", "Output": "=== RUN   TestA\n"},
    {"Action": "pass", "Package": "example.com/m", "Test": "TestA", "Elapsed": 0.01},
    {"Action": "run", "Package": "example.com/m", "Test": "TestB/case_1"},
    {"Action": "output", "Package": "example.com/m", "Test": "TestB/case_1", "Output": "    b_test.go:9: want 2\n"},
    {"Action": "fail", "Package": "example.com/m", "Test": "TestB/case_1", "Elapsed": 0},
    {"Action": "fail", "Package": "example.com/m", "Elapsed": 0.02},
    {"Action": "output", "Package": "example.com/m/sub", "Output": "sub/x.go:3:1: syntax error\n"},
    {"Action": "fail", "Package": "example.com/m/sub", "Elapsed": 0},
]


def test_go_test_json_events(tmp_path):
    root = tmp_path / "tb"
    root.mkdir()
    (root / "go.mod").write_text("module example.com/m\n\ngo 1.19\n")
    (tmp_path / "native").write_text("\n".join(json.dumps(e) for e in GO_EVENTS))
    out = tmp_path / "r.jsonl"
    code = conv.main(["--runner", "go", "--native", str(tmp_path / "native"), "--exit", "1", "--out", str(out),
                      "--root", str(root)])
    rep = parse_report(out.read_text())
    assert rep.collected == [".::TestA", ".::TestB/case_1"]
    assert rep.results[".::TestB/case_1"].outcome == "failed" and "want 2" in rep.results[".::TestB/case_1"].message
    assert rep.collect_errors == [("sub", "sub/x.go:3:1: syntax error")]
    assert code == 1


def test_v8_coverage_is_line_level_for_plain_javascript(tmp_path):
    src = "function a() {\n  return 1;\n}\nfunction b() {\n  return 2;\n}\na();\n"
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.js").write_text(src)
    b_start = src.index("function b")
    b_end = src.index("a();")
    cov = {"result": [
        {"url": f"file://{tmp_path}/src/m.js", "functions": [
            {"ranges": [{"startOffset": 0, "endOffset": len(src), "count": 1}]},
            {"ranges": [{"startOffset": 0, "endOffset": b_start - 1, "count": 1}]},
            {"ranges": [{"startOffset": b_start, "endOffset": b_end - 1, "count": 0}]}]},
        {"url": f"file://{tmp_path}/test/m.test.js", "functions": []},
        {"url": f"file://{tmp_path}/node_modules/x/index.js", "functions": []},
    ]}
    (tmp_path / "cov").mkdir()
    (tmp_path / "cov" / "coverage-1.json").write_text(json.dumps(cov))
    files = conv.v8_coverage(str(tmp_path / "cov"), str(tmp_path), {"test/m.test.js": ["test/m.test.js::t"]},
                             ["test/m.test.js::t", "test/other.test.js::u"])
    assert set(files) == {"src/m.js"}
    assert sorted(int(n) for n in files["src/m.js"]) == [1, 2, 3, 7]
    assert files["src/m.js"]["2"] == ["test/m.test.js::t"]  # only the tests of the file that process loaded
