"""Problem statements for synthetic tasks, written from the evidence of the failing tests.

A writer sees what a user filing an issue would see — which tests fail and what they report —
and never the patch, the operator or the mutated line. ``TemplateWriter`` varies its phrasing by
a stable hash of the instance id; ``ProblemWriter`` is the protocol a language-model writer
implements to replace it (``write(evidence) -> str``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Evidence", "ProblemWriter", "TemplateWriter"]


@dataclass(frozen=True)
class Evidence:
    instance_id: str
    repo: str
    failing: tuple[tuple[str, str], ...]  # (nodeid, failure message)
    num_passing: int
    hints: tuple[str, ...] = ()  # e.g. the package name; never the file or line that changed


class ProblemWriter(Protocol):
    def write(self, evidence: Evidence) -> str: ...


_OPENINGS = (
    "Something regressed in {pkg}: {n_fail} of our tests started failing.",
    "I'm seeing unexpected behaviour from {pkg}.",
    "After updating to the current code, parts of {pkg} no longer behave as documented.",
    "Bug report: {pkg} gives wrong results in a few cases.",
    "Hi! Running the test suite of {pkg} gives me failures that I don't think are expected.",
)
_BRIDGES = (
    "The failing tests are:",
    "Here is what fails:",
    "These are the checks that break:",
    "Failing:",
)
_CLOSINGS = (
    "The rest of the suite ({n_pass} tests) still passes, so this looks like a targeted regression.",
    "Everything else seems fine; could someone take a look?",
    "Expected: these tests pass, as they did before.",
    "I'd expect the behaviour these tests describe. Happy to provide more details.",
)


def _pick(options: tuple[str, ...], key: str, salt: str) -> str:
    h = int(hashlib.sha256(f"{salt}:{key}".encode()).hexdigest(), 16)
    return options[h % len(options)]


def _describe(nodeid: str) -> str:
    """``tests/test_lru.py::LRUCacheTest::test_lru`` → ``LRUCacheTest.test_lru (tests/test_lru.py)``."""
    path, _, rest = nodeid.partition("::")
    return f"`{rest.replace('::', '.')}` ({path})" if rest else f"`{path}`"


def _clean(message: str) -> str:
    msg = message.strip().splitlines()[0] if message.strip() else "fails without a message"
    msg = re.sub(r"\s+", " ", msg)
    return msg[:240]


class TemplateWriter:
    """Issue-style text from test names and assertion messages, with stable variety."""

    def __init__(self, max_tests: int = 4) -> None:
        self.max_tests = max_tests

    def write(self, evidence: Evidence) -> str:
        pkg = evidence.hints[0] if evidence.hints else evidence.repo
        key = evidence.instance_id
        fmt = {"pkg": pkg, "n_fail": len(evidence.failing), "n_pass": evidence.num_passing}
        lines = [_pick(_OPENINGS, key, "open").format(**fmt), "", _pick(_BRIDGES, key, "bridge"), ""]
        for nodeid, message in evidence.failing[: self.max_tests]:
            lines.append(f"- {_describe(nodeid)}: {_clean(message)}")
        extra = len(evidence.failing) - self.max_tests
        if extra > 0:
            lines.append(f"- ... and {extra} more")
        lines += ["", _pick(_CLOSINGS, key, "close").format(**fmt)]
        return "\n".join(lines)
