"""A task image rebuilt with ``docker build`` alone, from the task repo's Dockerfile, grades the same.

``python:3.11-slim`` cannot be pulled here (no Docker Hub). The test stands one in: the project's
own debootstrap base (``taskfactory/debian:bookworm-minbase``, what ``verifiers.images`` builds
where no registry answers) plus a ``python`` link (python:X-slim has one) and this machine's CA
bundle in PIP_CERT/SSL_CERT_FILE (an egress proxy here re-signs TLS), tagged ``python:3.11-slim``
for the build and untagged afterwards (only if the test made the tag). Everything else — git from
Debian's packages, the sdist from PyPI checked by sha256, pip installs — comes from the network as
it would on a user's machine, through plain ``docker build``.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.factory.demo_run import demo_rows, demo_run  # noqa: F401  (fixture)

pytestmark = [pytest.mark.docker, pytest.mark.slow]

STANDIN = """\
FROM taskfactory/debian:bookworm-minbase
COPY ca.crt /usr/local/share/host-ca.crt
ENV PIP_CERT=/usr/local/share/host-ca.crt SSL_CERT_FILE=/usr/local/share/host-ca.crt \\
    REQUESTS_CA_BUNDLE=/usr/local/share/host-ca.crt
RUN ln -s /usr/bin/python3 /usr/local/bin/python
"""


@pytest.fixture
def python_slim(docker_client, base_image, tmp_path):
    import docker

    try:
        docker_client.images.get("python:3.11-slim")
        yield "python:3.11-slim"  # a real one (or someone's stand-in): use it, leave it
        return
    except docker.errors.ImageNotFound:
        pass
    ctx = tmp_path / "standin"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(STANDIN)
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", ctx / "ca.crt")
    image, _ = docker_client.images.build(path=str(ctx), tag="tf-test/python-slim-standin:3.11", rm=True)
    image.tag("python", "3.11-slim")
    yield "python:3.11-slim"
    docker_client.images.remove("python:3.11-slim")  # the tag only; the stand-in stays cached


def test_rebuilt_image_grades_the_gold_patch_the_same_way(demo_run, python_slim, docker_client, tmp_path):  # noqa: F811
    from factory.rebuild import Recipes
    from verifiers.grade import grade_patch
    from verifiers.sandbox import SandboxLimits

    row = demo_rows(demo_run)[0]
    with Recipes(demo_run) as recipes:
        build = recipes.build(row)
    ctx = tmp_path / "ctx"
    build.write(ctx)
    dockerfile = (ctx / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "\nFROM python:3.11-slim\n" in dockerfile
    assert row["base_commit"] in dockerfile  # the build checks its start state against the row
    tag = "tf-test/rebuilt:" + row["instance_id"].lower()[-40:]
    proc = subprocess.run(["docker", "build", "-q", "-t", tag, str(ctx)], capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    try:
        limits = SandboxLimits(timeout_s=300)
        original = grade_patch(docker_client, row, row["patch"], limits)
        rebuilt = grade_patch(docker_client, {**row, "image_name": tag}, row["patch"], limits)
        assert original.resolved and rebuilt.resolved, rebuilt.error or rebuilt.test_output[-1500:]
        assert json.dumps(rebuilt.report()) == json.dumps(original.report())
        empty = grade_patch(docker_client, {**row, "image_name": tag}, "", limits)
        assert not empty.resolved
        # and the unfixed start state fails its FAIL_TO_PASS tests in the rebuilt image too
        noop = grade_patch(docker_client, {**row, "image_name": tag}, _noop_patch(row), limits)
        assert noop.patch_applied and not noop.resolved and set(noop.f2p_failure) == set(row["FAIL_TO_PASS"])
    finally:
        docker_client.images.remove(tag, force=True)


def _noop_patch(row: dict) -> str:
    """A patch that changes only a comment-free new file: applies, fixes nothing."""
    return ("diff --git a/NOTES.txt b/NOTES.txt\nnew file mode 100644\nindex 0000000..8e27be7\n"
            "--- /dev/null\n+++ b/NOTES.txt\n@@ -0,0 +1 @@\n+text\n")
