"""How a Go module is tested here: Go from Debian's packages, off the network.

The image has no module proxy (``GOPROXY=off``, ``GOFLAGS=-mod=mod``; ``-mod=vendor`` when the
module vendors its dependencies). A module that needs other modules and vendors none cannot be
built: that is detected from ``go.mod`` before any image is built, and fails with the reason
``go_modules_unavailable`` and the modules it names. Standard-library-only and vendored modules
work. The test command is ``go test ./...``.

Not for: building images (``verifiers.langs.envimage``) or running tests (``verifiers.langs.runners``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from factory.errors import ImageError

__all__ = ["GoRecipe", "detect_go", "required_modules"]


@dataclass(frozen=True)
class GoRecipe:
    install: tuple[str, ...]
    test_cmd: str
    goflags: str
    detected_from: tuple[str, ...]


def required_modules(go_mod: str) -> list[str]:
    """The module paths ``go.mod`` requires (single-line and block forms)."""
    mods: list[str] = []
    block = False
    for raw in go_mod.splitlines():
        line = raw.split("//", 1)[0].strip()
        if block:
            if line == ")":
                block = False
            elif line:
                mods.append(line.split()[0])
        elif line.startswith("require ("):
            block = True
        elif line.startswith("require "):
            mods.append(line.split()[1])
    return mods


def detect_go(root: Path, test_cmd_override: str | None = None,
              install_override: tuple[str, ...] | None = None) -> GoRecipe:
    go_mod = (root / "go.mod").read_text(encoding="utf-8", errors="replace")
    found = ["go.mod"]
    mods = required_modules(go_mod)
    vendored = (root / "vendor" / "modules.txt").is_file()
    if mods and not vendored:
        raise ImageError(
            f"go.mod requires {len(mods)} module(s) ({', '.join(mods[:4])}{', ...' if len(mods) > 4 else ''}) and "
            "vendors none; the sandbox has no module proxy (GOPROXY=off). Vendor them (go mod vendor) or pick a "
            "module with no dependencies", reason="go_modules_unavailable")
    goflags = "-mod=vendor" if vendored else "-mod=mod"
    found.append("vendor/modules.txt (-mod=vendor)" if vendored else "no requirements (standard library only)")
    m = re.search(r"^go\s+(\S+)", go_mod, re.M)
    if m:
        found.append(f"go directive {m.group(1)}")
    # Building the tests too: a module whose tests do not compile fails here, with the compiler's words.
    install = (tuple(install_override) if install_override is not None
               else ("go build ./...", "go test -count=1 -run '^$' ./... > /dev/null"))
    return GoRecipe(install, test_cmd_override or "go test ./...", goflags, tuple(found))
