"""Environment images for JavaScript, TypeScript and Go repositories.

A language base image adds the toolchain from Debian's packages to taskfactory's base (which has
git, a Python for our report converter and the host's CA bundle): Node.js 20 and npm from Debian
trixie, Go 1.19 from Debian bookworm. No binary downloads. The environment image is that base plus
the repository at ``/testbed`` as one fresh commit (as for Python), installed by the detected
recipe (``verifiers.langs.node`` / ``verifiers.langs.golang``), plus the report converter and the
node:test reporter under ``/opt/taskfactory``. Tags are content hashes, as for Python.

Not for: Python repositories (``verifiers.images``), running tests (``verifiers.langs.runners``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import tempfile
import time
from pathlib import Path

from factory.errors import ImageError, InstallFailed
from factory.repo import Checkout
from factory.schema import EnvImage, EnvSpec, content_hash

__all__ = ["LANG_BASE", "build_lang_env_image", "ensure_lang_base", "lang_env_spec", "support_files"]

_HERE = Path(__file__).parent
_SUPPORT = ("tf_convert.py", "tf_node_reporter.mjs", "tf_localhost.cjs")
_CA = "/usr/local/share/taskfactory/ca-bundle.crt"
# language -> (taskfactory base's Python, whose Debian suite has the toolchain; apt packages; env)
LANG_BASE = {
    "node": ("3.13", "nodejs npm", {
        "NODE_EXTRA_CA_CERTS": _CA, "npm_config_cafile": _CA, "npm_config_update_notifier": "false",
        "npm_config_fund": "false", "npm_config_audit": "false", "CI": "1", "NODE_OPTIONS": "",
        "npm_config_cache": "/tmp/npm-cache", "COREPACK_ENABLE_DOWNLOAD_PROMPT": "0"}),
    "go": ("3.11", "golang-go", {
        "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOTELEMETRY": "off", "CGO_ENABLED": "0", "GO111MODULE": "on",
        "GOPATH": "/tmp/go", "GOCACHE": "/tmp/go-cache", "GOFLAGS": "-mod=mod"}),
}


def _family(language: str) -> str:
    return "go" if language == "go" else "node"


def support_files() -> dict[str, bytes]:
    return {name: (_HERE / name).read_bytes() for name in _SUPPORT}


def _base_dockerfile(root: str, family: str) -> str:
    _py, pkgs, env = LANG_BASE[family]
    return "\n".join([
        f"FROM {root}",
        f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends {pkgs} "
        "&& rm -rf /var/lib/apt/lists/*",
        "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in env.items()),
        "WORKDIR /testbed",
    ]) + "\n"


def ensure_lang_base(client, language: str, log=print) -> str:
    """The toolchain's base image (built once); returns its image id."""
    from verifiers.images import _build, _image_id, ensure_base_image  # noqa: PLC0415

    family = _family(language)
    root = ensure_base_image(client, LANG_BASE[family][0], log=log)
    tag = f"taskfactory/{family}-base:{content_hash(root, _base_dockerfile('X', family), length=12)}"
    existing = _image_id(client, tag)
    if existing:
        return existing
    with tempfile.TemporaryDirectory(prefix="tf-langbase-") as ctx:
        (Path(ctx) / "Dockerfile").write_text(_base_dockerfile(root, family))
        log(f"building {tag} ({LANG_BASE[family][1]} from Debian)")
        ok, text = _build(client, Path(ctx), tag)
    if not ok:
        raise ImageError(f"{family} base image build failed: {text.strip().splitlines()[-1][:300] if text.strip() else ''}")
    return _image_id(client, tag) or tag


def lang_env_spec(client, co: Checkout, language: str, log=print) -> EnvSpec:
    """The EnvSpec of a JavaScript/TypeScript/Go checkout (detection reads the tree; cheap)."""
    from verifiers.langs.golang import detect_go  # noqa: PLC0415
    from verifiers.langs.node import detect_node  # noqa: PLC0415

    spec = co.spec
    base_id = ensure_lang_base(client, language, log=log)
    with tempfile.TemporaryDirectory(prefix="tf-tree-") as d:
        with tarfile.open(fileobj=io.BytesIO(co.archive())) as tf:
            tf.extractall(d, filter="data")
        install_override = None if spec.install is None else tuple(spec.pre_install) + tuple(spec.install)
        if language == "go":
            r = detect_go(Path(d), spec.test_cmd, install_override)
            install, test_cmd, found = tuple(spec.pre_install) + r.install if spec.install is None else r.install, \
                r.test_cmd, r.detected_from
            env_lines = (f"GOFLAGS={r.goflags}",)
        else:
            r = detect_node(Path(d), co.tracked_files(), spec.test_cmd, install_override)
            install = tuple(spec.pre_install) + r.install if spec.install is None else r.install
            test_cmd, found, language = r.test_cmd, r.detected_from, r.language
            env_lines = ()
    digest = hashlib.sha256(b"".join(support_files().values())).hexdigest()[:16]
    env = EnvSpec(repo=co.key, commit=co.commit, base_image=base_id, python="", install=install,
                  detected_from=found + env_lines, test_cmd=test_cmd, system_packages=tuple(spec.system_packages),
                  plugin_digest=digest, language=language)
    return dataclasses.replace(env, dockerfile_digest=hashlib.sha256(_env_dockerfile(env).encode()).hexdigest()[:16])


def _env_dockerfile(spec: EnvSpec) -> str:
    from verifiers.images import normalise_tree  # noqa: PLC0415

    lines = [f"FROM {spec.base_image}"]
    for e in spec.detected_from:
        if e.startswith("GOFLAGS="):
            # The build cache inside .git: written warm by the install, seeded into every sandbox's
            # /testbed volume (a fresh /tmp would recompile the standard library each session);
            # task images re-initialise .git, so they start with none.
            lines.append(f"ENV {e} GOCACHE=/testbed/.git/tf-go-cache")
    if spec.system_packages:
        lines.append(f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends "
                     f"{' '.join(spec.system_packages)} && rm -rf /var/lib/apt/lists/*")
    lines += [
        "COPY repo.tar /tmp/repo.tar",
        "RUN mkdir -p /testbed && tar -C /testbed -xf /tmp/repo.tar && rm /tmp/repo.tar "
        "&& cd /testbed && git init -q && git add -A -f && "
        "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z "
        f"git commit -q --no-verify -m {json.dumps('snapshot ' + spec.commit)}",
    ]
    # The install writes its caches under /tmp (npm's, Go's); the sandbox gives tests a fresh /tmp.
    for cmd in spec.install:
        lines.append(f"RUN cd /testbed && echo '+ '{_sh_quote(cmd)} && {cmd}")
    from verifiers.langs.runners import JEST_CACHE, runner_from_cmd  # noqa: PLC0415

    runner = runner_from_cmd(spec.test_cmd)
    if runner is not None and runner.name == "jest":
        # jest transforms (ts-jest, babel) into a cache inside .git, warmed here: every sandboxed
        # run starts from this volume, and a cold transform of a TypeScript suite costs minutes.
        lines.append(f"RUN cd /testbed && mkdir -p {JEST_CACHE} && (timeout 1800 {runner.native([])} "
                     "> /dev/null 2>&1; rm -rf /tmp/*; true)")
    versions = ("go version" if spec.language == "go"
                else "node --version; npm --version; ls node_modules 2>/dev/null | sed 's/^/node_modules: /'")
    lines += [
        "COPY " + " ".join(_SUPPORT) + " /opt/taskfactory/",
        f"RUN rm -rf /tmp/* && {normalise_tree()}",
        f"RUN ({versions}) > /opt/taskfactory/versions.txt 2>&1 "
        # What the install left (node_modules, build output) stays, ignored by git status and diff.
        "&& cd /testbed && git ls-files --others --exclude-standard --directory >> .git/info/exclude",
        f"LABEL taskfactory.repo={json.dumps(spec.repo)} taskfactory.commit={spec.commit} "
        f"taskfactory.test_cmd={json.dumps(spec.test_cmd)} taskfactory.language={spec.language}",
        "WORKDIR /testbed",
    ]
    return "\n".join(lines) + "\n"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def build_lang_env_image(client, co: Checkout, spec: EnvSpec, log=print, force: bool = False) -> EnvImage:
    """Build (or find) a JavaScript/TypeScript/Go environment image; InstallFailed names the reason."""
    from verifiers.images import _build, _image_id, _last_line, _read_file_from_image  # noqa: PLC0415

    t0 = time.monotonic()
    image_id = None if force else _image_id(client, spec.tag)
    if image_id:
        versions = _read_file_from_image(client, spec.tag, "/opt/taskfactory/versions.txt")
        return EnvImage(tag=spec.tag, image_id=image_id, spec=spec, build_seconds=time.monotonic() - t0,
                        cached=True, pip_freeze=tuple(versions.splitlines()), install_log_tail="(cached)")
    with tempfile.TemporaryDirectory(prefix="tf-env-") as ctx:
        ctxp = Path(ctx)
        (ctxp / "Dockerfile").write_text(_env_dockerfile(spec))
        (ctxp / "repo.tar").write_bytes(co.archive())
        for name, data in support_files().items():
            (ctxp / name).write_bytes(data)
        log(f"building {spec.tag} ({', '.join(spec.detected_from)})")
        ok, text = _build(client, ctxp, spec.tag, nocache=force)
    if not ok:
        raise InstallFailed(f"{co.key}: install failed: {_last_line(text)}", log_tail=text[-4000:])
    versions = _read_file_from_image(client, spec.tag, "/opt/taskfactory/versions.txt")
    return EnvImage(tag=spec.tag, image_id=_image_id(client, spec.tag) or "", spec=spec,
                    build_seconds=time.monotonic() - t0, cached=False, pip_freeze=tuple(versions.splitlines()),
                    install_log_tail=text[-4000:])
