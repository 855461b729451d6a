"""Base images and per-repository environment images.

The base image holds a Python with a virtual environment at ``/opt/venv``, git, pytest and
coverage. It comes from ``python:X-slim`` where a registry answers; otherwise it is built from
Debian's packages with debootstrap and ``docker import`` (machines without a registry). The
host's CA bundle goes in, so pip inside the image trusts what the host trusts.

An environment image is the base plus one repository snapshot at ``/testbed`` (a fresh git
repository with a single commit: no history to leak) installed by its recipe, plus our pytest
report plugin. Its tag is a content hash of everything that determines it (``EnvSpec.tag``), so
an unchanged repository and recipe is a cache hit that costs one image lookup.

Not for: running tests (``verifiers.sandbox``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from factory.errors import ImageError, InstallFailed
from factory.repo import Checkout
from factory.schema import EnvImage, EnvSpec, content_hash
from verifiers.detect import detect_install
from verifiers.failures import Explained, explain_install, strip_ansi
from verifiers.pythons import DEBIAN_PYTHONS, choose_python, requires_python
from verifiers.truth import check_install, packages_under_test

__all__ = ["START_EPOCH", "build_env_image", "ensure_base_image", "env_spec_for", "normalise_tree", "plugin_source"]

HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
_DEBIAN_SUITES = {s: suite for s, (suite, _v) in DEBIAN_PYTHONS.items()}
_DEBIAN_MIRROR = os.environ.get("TASKFACTORY_DEBIAN_MIRROR", "http://deb.debian.org/debian")
# pytest 8: new majors turn deprecations into collection errors under the `filterwarnings = error`
# that many suites set; a repository's own pins (its test extras) still win over this.
_BASE_TOOLS = "'pytest>=8.3,<9' coverage"
_LOG_TAIL = 4000
# Debian package names; python3-dev/python3-tk only where the Python is Debian's (python:X-slim has
# its own headers and tkinter-less build, so there tk-dev only gives the headers).
_TOOLCHAIN_COMMON = ("build-essential pkg-config less gettext locales tk-dev libffi-dev libssl-dev zlib1g-dev "
                     "libbz2-dev liblzma-dev libyaml-dev libxml2-dev libxslt1-dev libjpeg-dev libsqlite3-dev")
_TOOLCHAIN = _TOOLCHAIN_COMMON + " python3-dev python3-tk"

Log = Callable[[str], None]


# Every file under /testbed carries this mtime (2000-01-01T00:00:00Z, like the snapshot commits),
# and a mode that follows git's (0755 where executable, else 0644; folders 0755): nothing in a
# start state's metadata points at the file a task changed.
START_EPOCH = 946684800


def normalise_tree(only_changed: bool = False) -> str:
    """Shell that gives /testbed's files one mtime and git's modes.

    ``only_changed``: touch only what is newer than ``START_EPOCH`` (a task image's layer then
    holds just the files the task changed, not a copy of the whole tree).
    """
    newer = f" -newermt @{START_EPOCH}" if only_changed else ""
    walk = f"find /testbed -path /testbed/.git -prune -o{newer}"
    stamp = f"touch -h -d @{START_EPOCH}"
    return (f"{walk} -type d -exec chmod 755 {{}} + ; "
            f"{walk} -type f -perm /111 -exec chmod 755 {{}} + ; "
            f"{walk} -type f ! -perm /111 -exec chmod 644 {{}} + ; "
            f"find /testbed{newer} -exec {stamp} {{}} + ; "
            # git's index records each file's stat: refresh it, then stamp what the refresh wrote.
            "(cd /testbed && git update-index -q --refresh >/dev/null 2>&1; true) ; "
            f"{stamp} /testbed /testbed/.git /testbed/.git/index 2>/dev/null; true")


def plugin_source() -> bytes:
    return (Path(__file__).parent / "plugin" / "tf_report.py").read_bytes()


# ---------------------------------------------------------------------------------------------
# Base image
# ---------------------------------------------------------------------------------------------


def _base_dockerfile(root_image: str, from_debian: bool, with_ca: bool) -> str:
    lines = [f"FROM {root_image}", "ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1"]
    if with_ca:
        lines += [
            "COPY ca-bundle.crt /usr/local/share/taskfactory/ca-bundle.crt",
            "ENV PIP_CERT=/usr/local/share/taskfactory/ca-bundle.crt "
            "SSL_CERT_FILE=/usr/local/share/taskfactory/ca-bundle.crt "
            "REQUESTS_CA_BUNDLE=/usr/local/share/taskfactory/ca-bundle.crt",
        ]
    # A toolchain, so C extensions build (and are built in place by the editable install), and
    # what suites commonly expect of a machine: a pager, tkinter, gettext, locales.
    packages = _TOOLCHAIN if from_debian else _TOOLCHAIN_COMMON + " git"
    lines.append(f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends {packages} "
                 "&& rm -rf /var/lib/apt/lists/* "
                 "&& sed -i 's/^# *en_US.UTF-8/en_US.UTF-8/' /etc/locale.gen && locale-gen >/dev/null")
    python = "python3" if from_debian else "python"
    lines += [
        f"RUN {python} -m venv /opt/venv && /opt/venv/bin/python -m pip install -q --upgrade pip "
        f"&& /opt/venv/bin/python -m pip install -q {_BASE_TOOLS}",
        "ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv PIP_DISABLE_PIP_VERSION_CHECK=1 "
        "PIP_ROOT_USER_ACTION=ignore",
        "RUN git config --system user.name taskfactory && git config --system user.email taskfactory@localhost "
        "&& git config --system init.defaultBranch main && git config --system advice.detachedHead false",
        "WORKDIR /testbed",
    ]
    return "\n".join(lines) + "\n"


def ensure_base_image(client, python: str = "3.11", log: Log = print) -> str:
    """The base image for ``python``, built if missing; returns its image id."""
    with_ca = HOST_CA_BUNDLE.is_file()
    ca_digest = hashlib.sha256(HOST_CA_BUNDLE.read_bytes()).hexdigest()[:12] if with_ca else ""
    recipe_tag = f"taskfactory/base:py{python}-{content_hash(_base_dockerfile('X', True, with_ca), ca_digest, _BASE_TOOLS, length=10)}"
    existing = _image_id(client, recipe_tag)
    if existing:
        return existing

    root_image, from_debian = _root_image(client, python, log)
    with tempfile.TemporaryDirectory(prefix="tf-base-") as ctx:
        ctxp = Path(ctx)
        (ctxp / "Dockerfile").write_text(_base_dockerfile(root_image, from_debian, with_ca))
        if with_ca:
            shutil.copyfile(HOST_CA_BUNDLE, ctxp / "ca-bundle.crt")
        log(f"building base image {recipe_tag} on {root_image}")
        ok, text = _build(client, ctxp, recipe_tag)
    if not ok:
        raise ImageError(f"base image build failed: {_last_line(text)}")
    return _image_id(client, recipe_tag) or recipe_tag


def _root_image(client, python: str, log: Log) -> tuple[str, bool]:
    """``python:X-slim`` if a registry gives it to us, else a debootstrapped Debian."""
    slim = f"python:{python}-slim"
    if _image_id(client, slim):
        return slim, False
    if os.environ.get("TASKFACTORY_NO_PULL") != "1":
        try:
            log(f"pulling {slim} ...")
            client.images.pull("python", tag=f"{python}-slim")
            return slim, False
        except Exception as e:  # registry unreachable, rate limited, ...: fall back, say why
            log(f"cannot pull {slim} ({e.__class__.__name__}); building a base from Debian packages")
    suite = _DEBIAN_SUITES.get(python)
    if suite is None:
        raise ImageError(
            f"python {python}: no registry answered for {slim}, and Debian ships only "
            f"{', '.join(sorted(_DEBIAN_SUITES))}; pick one of those or make a registry reachable"
        )
    name = f"taskfactory/debian:{suite}-minbase"
    if _image_id(client, name):
        return name, True
    _debootstrap_import(client, suite, name, log)
    return name, True


def _debootstrap_import(client, suite: str, name: str, log: Log) -> None:
    if shutil.which("debootstrap") is None:
        if os.geteuid() == 0 and shutil.which("apt-get"):
            log("installing debootstrap with apt-get ...")
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "debootstrap"]):
                subprocess.run(cmd, capture_output=True, check=False, env=env)
        if shutil.which("debootstrap") is None:
            raise ImageError("no registry for python:X-slim and no debootstrap to build a base; "
                             "apt-get install debootstrap (as root) or make a registry reachable")
    include = "python3,python3-venv,python3-pip,git,ca-certificates,bash"
    with tempfile.TemporaryDirectory(prefix="tf-rootfs-") as d:
        root = Path(d) / "rootfs"
        log(f"debootstrap {suite} (about a minute) ...")
        proc = subprocess.run(
            ["debootstrap", "--variant=minbase", f"--include={include}", suite, str(root), _DEBIAN_MIRROR],
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise ImageError(f"debootstrap {suite} failed: {_last_line(proc.stdout + proc.stderr)}")
        tar_path = Path(d) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(root), "-cf", str(tar_path), "."], check=True)
        repo, tag = name.split(":")
        client.api.import_image_from_file(str(tar_path), repository=repo, tag=tag)
    if not _image_id(client, name):
        raise ImageError(f"docker import of {name} produced no image")


# ---------------------------------------------------------------------------------------------
# Environment images
# ---------------------------------------------------------------------------------------------


def env_spec_for(client, co: Checkout, log: Log = print) -> EnvSpec:
    """The EnvSpec (and so the tag) for a checkout: cheap, no image is built.

    The Python is the spec's unless the project's ``requires-python`` excludes it and another one on
    offer satisfies it (``verifiers.pythons``); InstallFailed (``python_unsatisfiable``) when none does.
    """
    spec = co.spec
    from verifiers.langs import language_of  # noqa: PLC0415  (JavaScript, TypeScript, Go: verifiers.langs)

    if language_of(co.tracked_files()) != "python":
        from verifiers.langs.envimage import lang_env_spec  # noqa: PLC0415

        return lang_env_spec(client, co, language_of(co.tracked_files()), log=log)
    with tempfile.TemporaryDirectory(prefix="tf-tree-") as d:
        with tarfile.open(fileobj=io.BytesIO(co.archive())) as tf:
            tf.extractall(d, filter="data")
        python, base_id = _python_for(client, Path(d), spec.python, log)
        recipe = detect_install(Path(d), spec, python=python)
    for note in recipe.notes:
        log(f"{co.key}: {note}")
    env = EnvSpec(
        repo=co.key, commit=co.commit, base_image=base_id, python=python,
        install=recipe.commands, detected_from=recipe.detected_from, test_cmd=recipe.test_cmd,
        system_packages=tuple(spec.system_packages),
        plugin_digest=hashlib.sha256(plugin_source()).hexdigest()[:16], env=recipe.env,
    )
    return dataclasses.replace(env, dockerfile_digest=hashlib.sha256(_env_dockerfile(env).encode()).hexdigest()[:16])


_BASE_VERSIONS: dict[str, str] = {}


def base_python_version(client, base_id: str) -> str:
    """The exact Python version of a base image (``3.11.2``), asked of the image once per process."""
    if base_id not in _BASE_VERSIONS:
        out = client.containers.run(base_id, ["python", "-c", "import platform; print(platform.python_version())"],
                                    remove=True, network_disabled=True)
        _BASE_VERSIONS[base_id] = out.decode().strip()
    return _BASE_VERSIONS[base_id]


def _python_for(client, tree: Path, asked: str, log: Log) -> tuple[str, str]:
    """(series, base image id) for a tree: ``asked`` unless its requires-python rules it out."""
    base_id = ensure_base_image(client, asked, log=log)
    req = requires_python(tree)
    if req is None:
        return asked, base_id
    offered = {s: v for s, (_suite, v) in DEBIAN_PYTHONS.items()}
    offered[asked] = base_python_version(client, base_id)
    choice = choose_python(asked, req[0], offered)
    if choice.unsatisfiable:
        raise _failed(Explained("python_unsatisfiable", f"{choice.unsatisfiable} (read from {req[1]})",
                                "python: a version on offer, if the project really supports it"), "",
                      what="no Python for it")
    if choice.series == asked:
        return asked, base_id
    log(f"{choice.note} (read from {req[1]})")
    return choice.series, ensure_base_image(client, choice.series, log=log)


def _failed(why: Explained, log_tail: str, key: str = "", what: str = "install failed") -> InstallFailed:
    """InstallFailed whose ``reason`` is the explained key and whose message is its one-line cause."""
    err = InstallFailed(f"{key + ': ' if key else ''}{what} ({why.key}): {why.line()}", log_tail=strip_ansi(log_tail))
    err.reason = why.key
    return err


def _env_dockerfile(spec: EnvSpec) -> str:
    lines = [f"FROM {spec.base_image}"]
    if spec.env:
        lines.append("ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in (e.split("=", 1) for e in spec.env)))
    if spec.system_packages:
        pkgs = " ".join(spec.system_packages)
        lines.append(f"RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends {pkgs} "
                     "&& rm -rf /var/lib/apt/lists/*")
    # The snapshot: one commit, no history, no remotes — nothing that could leak a later fix.
    lines += [
        "COPY repo.tar /tmp/repo.tar",
        "RUN mkdir -p /testbed && tar -C /testbed -xf /tmp/repo.tar && rm /tmp/repo.tar "
        "&& cd /testbed && git init -q && git add -A -f && "
        "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z GIT_COMMITTER_DATE=2000-01-01T00:00:00Z "
        f"git commit -q --no-verify -m {json.dumps('snapshot ' + spec.commit)}",
    ]
    for cmd in spec.install:
        lines.append(f"RUN cd /testbed && echo '+ '{_sh_quote(cmd)} && {cmd}")
    lines += [
        "COPY tf_report.py /opt/taskfactory/tf_report.py",
        # One mtime and git's modes before anything is compiled, so the caches below stay valid.
        f"RUN {normalise_tree()}",
        "RUN cp /opt/taskfactory/tf_report.py \"$(python -c 'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])')/\" "
        "&& python -c 'import pytest, coverage, tf_report' "
        "&& python -m pip freeze --all > /opt/taskfactory/pip-freeze.txt "
        # Bytecode, and pytest's assertion-rewritten test modules, compiled once here rather than
        # in every sandboxed run (which writes no bytecode). A changed file's cache is stale by
        # its mtime and ignored; task images delete these caches (they would show the clean code).
        "&& cd /testbed && (python -m compileall -q -j 0 . > /dev/null 2>&1; "
        f"PYTHONDONTWRITEBYTECODE= timeout 300 {spec.test_cmd} -p no:cacheprovider --collect-only -q "
        "> /dev/null 2>&1; true) "
        # What the install left in the tree (egg-info, generated versions, built extensions, the
        # caches above) stays, but is excluded so `git status` and `git diff` show only real changes.
        "&& git ls-files --others --exclude-standard >> .git/info/exclude",
        f"LABEL taskfactory.repo={json.dumps(spec.repo)} taskfactory.commit={spec.commit} "
        f"taskfactory.test_cmd={json.dumps(spec.test_cmd)}",
        "WORKDIR /testbed",
    ]
    return "\n".join(lines) + "\n"


def _sh_quote(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


def build_env_image(client, co: Checkout, spec: EnvSpec | None = None, log: Log = print,
                    force: bool = False) -> EnvImage:
    """Build (or find) the environment image for a checkout; InstallFailed names the reason."""
    t0 = time.monotonic()
    spec = spec or env_spec_for(client, co, log=log)
    if spec.language != "python":
        from verifiers.langs.envimage import build_lang_env_image  # noqa: PLC0415

        return build_lang_env_image(client, co, spec, log=log, force=force)
    image_id = None if force else _image_id(client, spec.tag)
    if image_id:
        freeze = _read_file_from_image(client, spec.tag, "/opt/taskfactory/pip-freeze.txt")
        truth = _check_install(client, co, spec.tag, "")
        return EnvImage(tag=spec.tag, image_id=image_id, spec=spec, build_seconds=time.monotonic() - t0,
                        cached=True, pip_freeze=tuple(freeze.splitlines()), install_log_tail="(cached)",
                        checks=truth.to_json())
    with tempfile.TemporaryDirectory(prefix="tf-env-") as ctx:
        ctxp = Path(ctx)
        (ctxp / "Dockerfile").write_text(_env_dockerfile(spec))
        (ctxp / "repo.tar").write_bytes(co.archive())
        (ctxp / "tf_report.py").write_bytes(plugin_source())
        log(f"building {spec.tag} ({', '.join(spec.detected_from) or 'no install files found'})")
        ok, text = _build(client, ctxp, spec.tag, nocache=force)
    if not ok:
        raise _failed(explain_install(text, python=spec.python), _tail(text), co.key)
    image_id = _image_id(client, spec.tag)
    freeze = _read_file_from_image(client, spec.tag, "/opt/taskfactory/pip-freeze.txt")
    truth = _check_install(client, co, spec.tag, text)
    return EnvImage(tag=spec.tag, image_id=image_id or "", spec=spec, build_seconds=time.monotonic() - t0,
                    cached=False, pip_freeze=tuple(freeze.splitlines()), install_log_tail=_tail(text),
                    checks=truth.to_json())


def _tail(text: str) -> str:
    """The log's end, without ANSI codes, and the lines our soft steps wrote wherever they were."""
    text = strip_ansi(text)
    notes = [ln for ln in text.splitlines() if ln.startswith("taskfactory: ")]
    tail = text[-_LOG_TAIL:]
    missing = [n for n in notes if n not in tail]
    return ("\n".join(missing) + "\n...\n" if missing else "") + tail


def _check_install(client, co: Checkout, tag: str, build_log: str):
    """The packages under test import from /testbed, or InstallFailed (``package_shadowed``)."""
    with tempfile.TemporaryDirectory(prefix="tf-tree-") as d:
        with tarfile.open(fileobj=io.BytesIO(co.archive())) as tf:
            tf.extractall(d, filter="data")
        names = packages_under_test(Path(d))
    truth = check_install(client, tag, names, build_log)
    if truth.problem is not None:
        raise _failed(truth.problem, _tail(build_log), co.key, what="the environment does not test /testbed")
    return truth


# ---------------------------------------------------------------------------------------------
# Docker helpers
# ---------------------------------------------------------------------------------------------


def _image_id(client, ref: str) -> str | None:
    import docker  # noqa: PLC0415

    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def _build(client, ctx: Path, tag: str, nocache: bool = False) -> tuple[bool, str]:
    """Run a build, streaming its log; (succeeded, log text)."""
    chunks: list[str] = []
    ok = True
    try:
        for event in client.api.build(path=str(ctx), tag=tag, rm=True, forcerm=True, decode=True, nocache=nocache,
                                      network_mode="host"):
            if "stream" in event:
                chunks.append(event["stream"])
            if "error" in event:
                ok = False
                chunks.append(event["error"] + "\n")
    except Exception as e:  # the engine itself failed mid-build: report, never hang or hide
        ok = False
        chunks.append(f"{e.__class__.__name__}: {e}\n")
    return ok, "".join(chunks)


def _read_file_from_image(client, image: str, path: str) -> str:
    from verifiers.sandbox import read_file  # noqa: PLC0415

    container = client.containers.create(image, command=["true"], network_disabled=True)
    try:
        data = read_file(container, path)
        return data.decode(errors="replace") if data else ""  # missing: an older image, no freeze
    finally:
        container.remove(force=True)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors[-1] if errors else lines[-1] if lines else "no output")[:300]
