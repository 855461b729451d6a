"""Fixtures for the trainer tests: small real datasets (parquet shards) with real unified diffs."""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

# (repo, path, broken start content, fixed content, problem statement)
_BUGS = [
    ("acme/mathlib", "mathlib/stats.py",
     "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / (len(xs) - 1)\n\n\n"
     "def spread(xs):\n    return max(xs) - min(xs)\n",
     "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)\n\n\n"
     "def spread(xs):\n    return max(xs) - min(xs)\n",
     "mean([2, 4]) returns 6.0 instead of 3.0"),
    ("acme/mathlib", "mathlib/clamp.py",
     "def clamp(x, lo, hi):\n    if x < lo:\n        return hi\n    if x > hi:\n        return hi\n    return x\n",
     "def clamp(x, lo, hi):\n    if x < lo:\n        return lo\n    if x > hi:\n        return hi\n    return x\n",
     "clamp(-5, 0, 10) should be 0 but gives 10"),
    ("acme/mathlib", "mathlib/fib.py",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n - 1):\n        a, b = b, a + b\n    return a\n",
     "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
     "fib(1) returns 0; the loop runs one time too few"),
    ("acme/textkit", "textkit/case.py",
     "def title(s):\n    return ' '.join(w.upper() for w in s.split())\n\n\ndef shout(s):\n    return s.upper() + '!'\n",
     "def title(s):\n    return ' '.join(w.capitalize() for w in s.split())\n\n\ndef shout(s):\n    return s.upper() + '!'\n",
     "title('hello world') gives 'HELLO WORLD' instead of 'Hello World'"),
    ("acme/textkit", "textkit/strip.py",
     "def strip_prefix(s, prefix):\n    if s.startswith(prefix):\n        return s[len(prefix) + 1:]\n    return s\n",
     "def strip_prefix(s, prefix):\n    if s.startswith(prefix):\n        return s[len(prefix):]\n    return s\n",
     "strip_prefix('foobar', 'foo') drops the 'b'"),
    ("acme/textkit", "textkit/count.py",
     "def count_words(s):\n    counts = {}\n    for w in s.split():\n        counts[w] = 1\n    return counts\n",
     "def count_words(s):\n    counts = {}\n    for w in s.split():\n        counts[w] = counts.get(w, 0) + 1\n    return counts\n",
     "count_words('a a b') says a appears once"),
    ("acme/heldout", "heldout/util.py",
     "def is_even(n):\n    return n % 2 == 1\n\n\ndef halve(n):\n    return n // 2\n",
     "def is_even(n):\n    return n % 2 == 0\n\n\ndef halve(n):\n    return n // 2\n",
     "is_even(4) is False"),
    ("acme/heldout", "heldout/last.py",
     "def last(xs):\n    return xs[len(xs)]\n",
     "def last(xs):\n    return xs[len(xs) - 1]\n",
     "last([1, 2]) raises IndexError"),
]


def unified_diff(path: str, old: str, new: str) -> str:
    body = difflib.unified_diff(old.splitlines(keepends=True), new.splitlines(keepends=True),
                                fromfile=f"a/{path}", tofile=f"b/{path}")
    # difflib leaves a last line without its newline; git marks it as below.
    lines = [ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in body]
    return f"diff --git a/{path} b/{path}\n" + "".join(lines)


def task_rows(copies: int = 1) -> list[dict]:
    rows = []
    for c in range(copies):
        for i, (repo, path, old, new, problem) in enumerate(_BUGS):
            rows.append({
                "instance_id": f"{repo.replace('/', '__')}-{i}-{c}",
                "repo": repo,
                "base_commit": f"{i:040x}",
                "patch": unified_diff(path, old, new),
                "test_patch": "",
                "problem_statement": problem,
                "hints_text": "",
                "created_at": "2026-01-01T00:00:00Z",
                "version": "0.1",
                "FAIL_TO_PASS": [f"tests/test_{i}.py::test_fix"],
                "PASS_TO_PASS": [],
                "environment_setup_commit": f"{i:040x}",
                "image_name": f"taskfactory/{repo.replace('/', '_')}:abc",
                "source": "mutation",
                "start_files": [{"path": path, "content": old}],
            })
    return rows


def write_dataset(root: Path, splits: dict[str, list[dict]]) -> Path:
    import datasets

    (root / "data").mkdir(parents=True, exist_ok=True)
    for name, rows in splits.items():
        ds = datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict(
            {k: [] for k in task_rows()[0]})
        ds.to_parquet(str(root / "data" / f"{name}-00000-of-00001.parquet"))
    return root


@pytest.fixture
def make_dataset(tmp_path):
    def make(copies: int = 2, drop_columns: tuple[str, ...] = (), splits=("train", "test"), name="ds") -> Path:
        rows = [{k: v for k, v in r.items() if k not in drop_columns} for r in task_rows(copies)]
        by_split = {"train": [r for r in rows if r["repo"] != "acme/heldout"],
                    "test": [r for r in rows if r["repo"] == "acme/heldout"]}
        return write_dataset(tmp_path / name, {s: by_split[s] for s in splits})
    return make


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    rows = task_rows(3)
    return write_dataset(tmp_path_factory.mktemp("tiny_ds"), {
        "train": [r for r in rows if r["repo"] != "acme/heldout"],
        "test": [r for r in rows if r["repo"] == "acme/heldout"],
    })


@pytest.fixture(scope="session")
def single_run(tiny_dataset, tmp_path_factory):
    """The tiny recipe for 4 steps on one process with two micro-batches of one row: the global batch
    of two ranks with one row each (test_distributed.py, test_ep.py)."""
    from trainer.train import train

    return train(str(tiny_dataset), "tiny", tmp_path_factory.mktemp("single"), steps=4, progress=False,
                 device="cpu", micro_batch_size=1, grad_accum=2)
