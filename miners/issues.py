"""Which issues a pull request says it resolves, from its text (title, body, commit message).

GitHub closes an issue when a PR merged into the default branch says ``fixes #12``, ``closes
owner/name#12`` or ``resolves https://github.com/owner/name/issues/12`` (any of close, closes,
closed, fix, fixes, fixed, resolve, resolves, resolved). Without a slug only the ``#12`` form is
read, which is what a local clone's commit messages give.

Not for: GraphQL's ``closingIssuesReferences`` (links made in the UI); ``github`` asks for those.
"""

from __future__ import annotations

import re

__all__ = ["linked_issue_numbers"]

_KEYWORDS = r"(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)"


def linked_issue_numbers(text: str, slug: str | None = None) -> list[int]:
    """Issue numbers that ``text`` says it resolves, in order, without repeats (same repository only)."""
    if slug:
        s = re.escape(slug)
        target = rf"(?:(?:{s})?#(\d+)|https?://github\.com/{s}/issues/(\d+))"
    else:
        target = r"(?:#(\d+)|(?!))"
    pattern = re.compile(rf"\b{_KEYWORDS}:?\s+{target}\b", re.IGNORECASE)
    out: list[int] = []
    for m in pattern.finditer(text or ""):
        n = int(m.group(1) or m.group(2))
        if n not in out:
            out.append(n)
    return out
