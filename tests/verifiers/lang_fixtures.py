"""Small projects for each runner of another language, written here: a module, a suite with a
nested suite and a skipped test, and a bug that one known test notices.

Each fixture: ``files`` (path -> text), the runner's own counts (``counts``), the test the bug
breaks (``breaks``), and the bug as (path, new text).
"""

from __future__ import annotations

CALC_JS = """function add(a, b) {
  return a + b;
}

function clamp(n, lo, hi) {
  if (n < lo) return lo;
  if (n > hi) return hi;
  return n;
}

function words(s) {
  return s.split(' ').filter((w) => w.length > 0);
}

module.exports = { add, clamp, words };
"""

CALC_MJS = CALC_JS.replace("module.exports = { add, clamp, words };", "export { add, clamp, words };")

_MOCHA_JEST_TESTS = """const assert = require('assert');
const { add, clamp, words } = require('../src/calc');

describe('calc', function () {
  it('adds', function () {
    assert.strictEqual(add(2, 3), 5);
  });
  describe('clamp', function () {
    it('keeps a value in range', function () {
      assert.strictEqual(clamp(5, 0, 10), 5);
    });
    it('raises a low value', function () {
      assert.strictEqual(clamp(-1, 0, 10), 0);
    });
  });
  it('splits words', function () {
    assert.deepStrictEqual(words('a  b'), ['a', 'b']);
  });
  it.skip('is not written yet', function () {
    assert.fail('never runs');
  });
});
"""

MOCHA = {
    "files": {
        "package.json": '{\n  "name": "calc-mocha",\n  "version": "1.0.0",\n  "private": true,\n'
                        '  "scripts": {"test": "mocha --reporter spec test/"},\n'
                        '  "devDependencies": {"mocha": "10.8.2"}\n}\n',
        ".gitignore": "node_modules/\n",
        "src/calc.js": CALC_JS,
        "test/calc.js": _MOCHA_JEST_TESTS,
    },
    "runner": "mocha",
    "counts": {"passed": 4, "skipped": 1},
    "breaks": "test/calc.js::calc adds",
    "bug": ("src/calc.js", CALC_JS.replace("return a + b;", "return a - b;")),
}

JEST = {
    "files": {
        "package.json": '{\n  "name": "calc-jest",\n  "version": "1.0.0",\n  "private": true,\n'
                        '  "scripts": {"test": "jest --coverage"},\n'
                        '  "devDependencies": {"jest": "29.7.0"}\n}\n',
        ".gitignore": "node_modules/\n",
        "src/calc.js": CALC_JS,
        "__tests__/calc.test.js": _MOCHA_JEST_TESTS.replace("require('../src/calc')", "require('../src/calc')")
        .replace("it.skip", "it.skip"),
    },
    "runner": "jest",
    "counts": {"passed": 4, "skipped": 1},
    "breaks": "__tests__/calc.test.js::calc > adds",
    "bug": ("src/calc.js", CALC_JS.replace("return a + b;", "return a - b;")),
}

VITEST = {
    "files": {
        "package.json": '{\n  "name": "calc-vitest",\n  "version": "1.0.0",\n  "private": true,\n  "type": "module",\n'
                        '  "scripts": {"test": "vitest run"},\n'
                        '  "devDependencies": {"vitest": "3.2.4"}\n}\n',
        ".gitignore": "node_modules/\n",
        "src/calc.ts": CALC_MJS.replace("function add(a, b)", "function add(a: number, b: number): number")
        .replace("function clamp(n, lo, hi)", "function clamp(n: number, lo: number, hi: number): number")
        .replace("function words(s)", "function words(s: string): string[]"),
        "src/calc.test.ts": """import { describe, expect, it } from 'vitest';
import { add, clamp, words } from './calc';

describe('calc', () => {
  it('adds', () => {
    expect(add(2, 3)).toBe(5);
  });
  describe('clamp', () => {
    it('keeps a value in range', () => {
      expect(clamp(5, 0, 10)).toBe(5);
    });
    it('raises a low value', () => {
      expect(clamp(-1, 0, 10)).toBe(0);
    });
  });
  it('splits words', () => {
    expect(words('a  b')).toEqual(['a', 'b']);
  });
  it.skip('is not written yet', () => {
    expect(1).toBe(2);
  });
});
""",
        "tsconfig.json": '{"compilerOptions": {"target": "ES2022", "module": "ESNext", "strict": true}}\n',
    },
    "runner": "vitest",
    "counts": {"passed": 4, "skipped": 1},
    "breaks": "src/calc.test.ts::calc > adds",
    "bug": ("src/calc.ts", None),  # filled below
}
VITEST["bug"] = ("src/calc.ts", VITEST["files"]["src/calc.ts"].replace("return a + b;", "return a - b;"))

NODE_TEST = {
    "files": {
        "package.json": '{\n  "name": "calc-node-test",\n  "version": "1.0.0",\n  "private": true,\n'
                        '  "scripts": {"test": "node --test test/"}\n}\n',
        "src/calc.js": CALC_JS,
        "test/calc.test.js": """const test = require('node:test');
const assert = require('node:assert');
const { add, clamp, words } = require('../src/calc');

test.describe('calc', () => {
  test.it('adds', () => {
    assert.strictEqual(add(2, 3), 5);
  });
  test.describe('clamp', () => {
    test.it('keeps a value in range', () => {
      assert.strictEqual(clamp(5, 0, 10), 5);
    });
    test.it('raises a low value', () => {
      assert.strictEqual(clamp(-1, 0, 10), 0);
    });
  });
  test.it('splits words', () => {
    assert.deepStrictEqual(words('a  b'), ['a', 'b']);
  });
  test.it.skip('is not written yet', () => {
    assert.fail('never runs');
  });
});
""",
    },
    "runner": "node-test",
    "counts": {"passed": 4, "skipped": 1},
    "breaks": "test/calc.test.js::calc > adds",
    "bug": ("src/calc.js", CALC_JS.replace("return a + b;", "return a - b;")),
}

CALC_GO = """package calc

import (
\t"errors"
\t"strings"
)

// Add adds.
func Add(a, b int) int {
\treturn a + b
}

// Clamp keeps n in [lo, hi].
func Clamp(n, lo, hi int) int {
\tif n < lo {
\t\treturn lo
\t}
\tif n > hi {
\t\treturn hi
\t}
\treturn n
}

// Words splits on spaces, dropping empty words.
func Words(s string) ([]string, error) {
\tif s == "" {
\t\treturn nil, errors.New("empty")
\t}
\tout := []string{}
\tfor _, w := range strings.Split(s, " ") {
\t\tif w != "" {
\t\t\tout = append(out, w)
\t\t}
\t}
\treturn out, nil
}
"""

GO = {
    "files": {
        "go.mod": "module example.com/calc\n\ngo 1.19\n",
        "calc.go": CALC_GO,
        "calc_test.go": """package calc

import "testing"

func TestAdd(t *testing.T) {
\tif Add(2, 3) != 5 {
\t\tt.Fatal("2+3")
\t}
}

func TestClamp(t *testing.T) {
\tt.Run("in range", func(t *testing.T) {
\t\tif Clamp(5, 0, 10) != 5 {
\t\t\tt.Fatal("5")
\t\t}
\t})
\tt.Run("low", func(t *testing.T) {
\t\tif Clamp(-1, 0, 10) != 0 {
\t\t\tt.Fatal("-1")
\t\t}
\t})
}

func TestWords(t *testing.T) {
\tw, err := Words("a  b")
\tif err != nil || len(w) != 2 {
\t\tt.Fatal(w, err)
\t}
}

func TestLater(t *testing.T) {
\tt.Skip("not written yet")
}
""",
    },
    "runner": "go",
    # go test -json: TestAdd, TestClamp and its two subtests, TestWords pass; TestLater skips.
    "counts": {"passed": 5, "skipped": 1},
    "breaks": ".::TestAdd",
    "bug": ("calc.go", CALC_GO.replace("return a + b", "return a - b")),
}

ALL = {"mocha": MOCHA, "jest": JEST, "vitest": VITEST, "node-test": NODE_TEST, "go": GO}
