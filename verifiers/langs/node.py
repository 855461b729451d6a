"""How a JavaScript or TypeScript repository installs and runs its tests, read from its files.

The package manager is the lockfile's (``package-lock.json``/``npm-shrinkwrap.json``: ``npm ci``;
``pnpm-lock.yaml``: pnpm; ``yarn.lock``: yarn; none: ``npm install``), at the version the
``packageManager`` field pins; pnpm and yarn run through corepack where Debian's Node ships it,
else through ``npx`` from the npm registry. Dependencies come from the npm registry at build time
(the image trusts the host's CA bundle); lifecycle scripts of the repository itself (``prepare``
building the package, git hooks) are not run, those of its dependencies are.

The runner and its arguments come from ``package.json``'s ``test`` script (and the ``test:*``
scripts it names): the first of jest, vitest, mocha, ``node --test`` (or better-node-test, which
wraps it) found there; a runner in ``devDependencies`` when the scripts name none. The result
says where each part came from (``detected_from``), like Python's detection.

Not for: building images (``verifiers.langs.envimage``) or running tests (``verifiers.langs.runners``).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from factory.errors import ImageError

__all__ = ["NodeRecipe", "detect_node", "is_typescript"]

_RUNNERS = ("vitest", "jest", "mocha")
# What starts a runner without being one: package-manager launchers, env setters, and coverage
# wrappers (``c8 bnt``, ``nyc mocha``: our own coverage replaces theirs).
_WRAPPERS = re.compile(r"^(?:npx\s+(?:--no-install\s+|--yes\s+|-y\s+)?|pnpm\s+(?:exec\s+)?|yarn\s+|cross-env\s+"
                       r"(?:\w+=\S*\s+)*|(?:\w+=\S*\s+)+|(?:c8|nyc)\s+(?:-\S+\s+)*)")


@dataclass(frozen=True)
class NodeRecipe:
    language: str  # "javascript" or "typescript"
    install: tuple[str, ...]
    test_cmd: str
    runner: str
    detected_from: tuple[str, ...]


def is_typescript(files: list[str]) -> bool:
    """More TypeScript than JavaScript sources outside tests, declarations and node_modules."""
    ts = sum(1 for f in files if f.endswith((".ts", ".tsx", ".mts", ".cts")) and not f.endswith(".d.ts"))
    js = sum(1 for f in files if f.endswith((".js", ".jsx", ".mjs", ".cjs")))
    return ts > js


def detect_node(root: Path, files: list[str], test_cmd_override: str | None = None,
                install_override: tuple[str, ...] | None = None) -> NodeRecipe:
    """The recipe for the tree at ``root``; InstallFailed (``no_test_runner``) when no runner is named."""
    try:
        pkg = json.loads((root / "package.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ImageError(f"package.json cannot be read: {e}", reason="bad_package_json") from e
    found = ["package.json"]
    language = "typescript" if is_typescript(files) else "javascript"
    manager, version = _manager(root, pkg)
    if install_override is not None:
        install = tuple(install_override)
        found.append("repo spec (install)")
    else:
        install = _install(root, manager, version)
        found.append({"npm-ci": "package-lock.json (npm ci)", "npm": "no lockfile (npm install)",
                      "pnpm": f"pnpm-lock.yaml (pnpm@{version or 'latest'})",
                      "yarn": f"yarn.lock (yarn@{version or '1'})"}[manager])
    if test_cmd_override:
        test_cmd, runner, where = test_cmd_override, _runner_word(test_cmd_override), "repo spec (test_cmd)"
    else:
        test_cmd, runner, where = _test_command(pkg)
    if runner is None:
        raise ImageError("package.json names no test runner we read (jest, vitest, mocha, node --test) in its "
                            "test scripts or devDependencies; set test_cmd in the repo spec", reason="no_test_runner")
    found.append(where)
    return NodeRecipe(language, install, test_cmd, runner, tuple(found))


def _manager(root: Path, pkg: dict) -> tuple[str, str]:
    pinned = str(pkg.get("packageManager") or "")
    m = re.match(r"^(npm|pnpm|yarn)@([0-9][^+\s]*)", pinned)
    version = m.group(2) if m else ""
    if (root / "pnpm-lock.yaml").is_file():
        return "pnpm", version if (m and m.group(1) == "pnpm") else ""
    if (root / "yarn.lock").is_file():
        return "yarn", version if (m and m.group(1) == "yarn") else ""
    if (root / "package-lock.json").is_file() or (root / "npm-shrinkwrap.json").is_file():
        return "npm-ci", ""
    return "npm", ""


def _install(root: Path, manager: str, version: str) -> tuple[str, ...]:
    quiet = "--no-audit --no-fund"
    if manager == "npm-ci":
        return (f"npm ci {quiet} --ignore-scripts", "npm rebuild")
    if manager == "npm":
        return (f"npm install {quiet} --ignore-scripts", "npm rebuild")
    tool = f"{manager}@{version}" if version else (manager if manager == "pnpm" else "yarn@1")
    run = f"npx --yes {shlex.quote(tool)}"
    if manager == "pnpm":
        return (f"{run} install --frozen-lockfile --ignore-scripts || {run} install --no-frozen-lockfile --ignore-scripts",
                f"{run} rebuild || true")
    if version and not version.startswith("1."):  # yarn berry
        return ("YARN_ENABLE_SCRIPTS=0 YARN_NODE_LINKER=node-modules " + run + " install --immutable",)
    return (f"{run} install --frozen-lockfile --ignore-scripts --non-interactive",)


def _runner_word(cmd: str) -> str | None:
    if re.search(r"(^|\s)node\s+(.*\s)?--test\b", cmd) or re.match(r"^bnt\b", cmd):
        return "node-test"
    for r in _RUNNERS:
        if re.search(rf"(^|[\s/]){r}(\s|$)", cmd):
            return r
    return None


def _segments(script: str) -> list[str]:
    return [s.strip() for s in re.split(r"&&|\|\||;|\|", script) if s.strip()]


def _test_command(pkg: dict) -> tuple[str, str | None, str]:
    scripts = {k: str(v) for k, v in (pkg.get("scripts") or {}).items()}
    names = ["test"] + sorted(k for k in scripts if k.startswith("test:") or k.startswith("test-"))
    for name in names:
        for seg in _segments(scripts.get(name, "")):
            cmd, prev = seg, ""
            while cmd != prev:  # ``npx c8 bnt``: one wrapper after another
                prev, cmd = cmd, _WRAPPERS.sub("", cmd).strip()
            word = cmd.split()[0] if cmd.split() else ""
            args = cmd.split(None, 1)[1] if len(cmd.split(None, 1)) > 1 else ""
            where = f"scripts.{name}: {seg}"
            if word in ("vitest",):
                args = re.sub(r"^(run|watch|dev)\b\s*", "", args)
                return f"node_modules/.bin/vitest run {args}".strip(), "vitest", where
            if word in ("jest", "mocha"):
                return f"node_modules/.bin/{word} {args}".strip(), word, where
            if word == "node" and re.search(r"(^|\s)--test\b", args):
                return f"node {args}".strip(), "node-test", where
            if word == "bnt":  # better-node-test: node --test over test/*.test.js
                return "node --test test/*.test.js", "node-test", where
    deps = {**(pkg.get("devDependencies") or {}), **(pkg.get("dependencies") or {})}
    for r in _RUNNERS:
        if r in deps:
            return (f"node_modules/.bin/{r}" + (" run" if r == "vitest" else "")), r, f"devDependencies: {r}"
    return "", None, ""
