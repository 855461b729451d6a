"""The adversarial patches that bench/lang_check.py grades (no Docker): they apply to the tree they
were made for, and they do what they claim — the config edit makes the runner load a module that
applies the fix, the forged tests keep the ids. That grading undoes them is shown in Docker by
lang_check on real tasks (bench/RESULTS.md)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.verifiers.langs.adversary import cheat_patch, diff, forged_test_file

GOLD = "diff --git a/src/calc.js b/src/calc.js\n--- a/src/calc.js\n+++ b/src/calc.js\n@@ -1 +1 @@\n-a - b\n+a + b\n"


def _repo(tmp_path, files: dict[str, str]):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    return tmp_path


def _applies(repo, patch: str) -> None:
    (repo / ".p.diff").write_text(patch)
    subprocess.run(["git", "apply", ".p.diff"], cwd=repo, check=True)
    (repo / ".p.diff").unlink()


@pytest.mark.parametrize("runner", ["jest", "mocha", "vitest", "node-test", "go"])
def test_the_config_edit_applies_and_loads_the_fix(tmp_path, runner):
    pkg = '{\n  "name": "calc",\n  "jest": {"verbose": true}\n}\n'
    files = {"package.json": pkg, "go.mod": "module example.com/calc\n\ngo 1.18\n"}
    repo = _repo(tmp_path, files)
    patch, config = cheat_patch(runner, GOLD, lambda p: files.get(p))
    _applies(repo, patch)
    if runner == "go":
        assert config == "go.mod" and "replace " in (repo / "go.mod").read_text()
        return
    if runner == "node-test":
        assert json.loads((repo / "package.json").read_text())["scripts"]["test"] == "true"
        return
    if runner == "vitest":
        assert config == "vitest.config.mjs" and "tf-fix.mjs" in (repo / config).read_text()
        module = (repo / "tf-fix.mjs").read_text()
    else:
        data = json.loads((repo / "package.json").read_text())
        key = data["jest"]["setupFiles"] if runner == "jest" else data["mocha"]["require"]
        assert config == "package.json" and key[-1].endswith("tf-fix.cjs")
        assert runner != "jest" or data["jest"]["verbose"] is True  # the rest of the key kept
        module = (repo / "tf-fix.cjs").read_text()
    assert "git" in module and json.dumps(GOLD) in module  # the module applies the gold patch


def test_the_vitest_cheat_refuses_a_repository_with_its_own_config():
    with pytest.raises(ValueError, match="vitest.config.ts"):
        cheat_patch("vitest", GOLD, lambda p: "export default {}" if p == "vitest.config.ts" else None)


def test_forged_files_keep_the_ids():
    js = forged_test_file("jest", "t/a.test.ts", ["t/a.test.ts::calc > adds", "t/a.test.ts::top"], "")
    assert 'test("calc > adds", () => {});' in js and 'test("top", () => {});' in js
    esm = forged_test_file("node-test", "test/a.test.js", ["test/a.test.js::x"], "import test from 'node:test'\n")
    assert esm.startswith("import test from 'node:test';")
    go = forged_test_file("go", "a_test.go", [".::ExampleTree", ".::TestA/sub"], "package tree\n")
    assert "func ExampleTree() {\n\t// Output:\n}" in go  # an example runs only with an output comment
    assert 'func TestA(t *testing.T) {\n\tt.Run("sub"' in go and go.startswith("package tree\n")


def test_a_diff_of_a_file_without_a_final_newline_applies(tmp_path):
    repo = _repo(tmp_path, {"package.json": '{"name":"x"}'})
    _applies(repo, diff("package.json", '{"name":"x"}', '{\n  "name": "y"\n}\n'))
    assert json.loads((repo / "package.json").read_text()) == {"name": "y"}
    _applies(repo, diff("new.js", None, "x\n"))
    assert (repo / "new.js").read_text() == "x\n"
