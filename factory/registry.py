"""Task images in a container registry: push what a dataset needs, pull it back elsewhere.

``push_images`` tags each local task image under the registry the user names
(``REGISTRY/taskfactory/task:TAG``) and pushes it; the engine uploads only the layers the registry
lacks, so the environment layers every task of a repository shares go up once. The registry's own
manifests then say what each image is made of: ``ImageRecord`` keeps the manifest digest and the
compressed size of every layer, which is what ``images.json`` beside a published dataset records
and what the layer-sharing numbers in ``bench/RESULTS.md`` are computed from.

``pull_images`` is the other end: every distinct ``image_name`` of a dataset, skipping an image
already present at the recorded digest (so an interrupted pull resumes where it stopped; the
engine itself skips layers it holds), with progress per image and a byte count.

``ensure_registry`` starts a registry on localhost the way ``verifiers.engine`` starts Docker:
Debian's ``docker-registry`` package (distribution 2.8), installed with apt-get when we are root,
started with a config of our own (its own storage folder and port). The tests start theirs
through it; ``python -m factory.registry`` starts one for a user (``make registry``).

Not for: building images (``verifiers.images``, ``factory.rebuild``).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from factory.errors import FactoryError

__all__ = [
    "IMAGES_FILE",
    "ImageRecord",
    "PullReport",
    "PushReport",
    "Registry",
    "RegistryError",
    "ensure_registry",
    "layer_sharing",
    "pull_images",
    "push_images",
    "registry_ref",
]

IMAGES_FILE = "images.json"  # beside a published dataset: what each image_name is made of
_MANIFEST_TYPES = ", ".join((
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))

Log = Callable[[str], None]


class RegistryError(FactoryError):
    """A registry could not be started, reached, pushed to or pulled from."""


# ---------------------------------------------------------------------------------------------
# Starting a registry on localhost
# ---------------------------------------------------------------------------------------------


@dataclass
class Registry:
    """A registry on this machine: ``address`` is what image references start with."""

    address: str  # host:port
    root: Path | None = None  # its storage folder, when we started it
    pid: int | None = None  # the process we started (None: it was already running)

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def stop(self) -> None:
        """Stop the registry process we started (no-op for one that was already running)."""
        if self.pid is None:
            return
        try:
            os.kill(self.pid, 15)
        except ProcessLookupError:
            pass
        for _ in range(50):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        self.pid = None


def _answers(address: str, timeout: float = 2.0) -> bool:
    import requests  # noqa: PLC0415

    try:
        return requests.get(f"http://{address}/v2/", timeout=timeout).status_code in (200, 401)
    except requests.RequestException:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _registry_binary(install: bool, log: Log) -> str:
    for name in ("docker-registry", "registry"):
        path = shutil.which(name)
        if path:
            return path
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if not (install and is_root and shutil.which("apt-get")):
        raise RegistryError(
            "no container registry is installed and one cannot be installed here (needs root and apt-get): "
            "`apt-get install docker-registry`, or run `docker run -d -p 5000:5000 registry:2`"
        )
    log("installing docker-registry with apt-get (one time)...")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "docker-registry"]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0 and cmd[1] != "update":
            raise RegistryError(f"`{' '.join(cmd)}` failed: {proc.stderr.strip()[-300:]}")
    path = shutil.which("docker-registry")
    if path is None:
        raise RegistryError("apt-get installed docker-registry but no docker-registry binary is on PATH")
    return path


def ensure_registry(root: str | os.PathLike[str] | None = None, port: int | None = None, install: bool = True,
                    wait_s: float = 30.0, log: Log = lambda _m: None) -> Registry:
    """A registry answering on ``127.0.0.1:port``; started (and installed) if nothing answers there.

    ``port`` None picks a free port and always starts a fresh registry with storage under
    ``root`` (default: a folder in the taskfactory cache). Docker treats loopback registries as
    insecure by default, so plain HTTP on localhost needs no engine configuration.
    """
    if port is not None and _answers(f"localhost:{port}"):
        return Registry(address=f"localhost:{port}")
    binary = _registry_binary(install, log)
    port = port or _free_port()
    if root is None:
        from factory.repo import cache_dir  # noqa: PLC0415

        root = cache_dir() / "registry" / str(port)
    root = Path(root).resolve()
    (root / "storage").mkdir(parents=True, exist_ok=True)
    config = root / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log_path = root / "registry.log"
    with open(log_path, "ab") as fh:
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=fh, stderr=fh, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    address = f"localhost:{port}"
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if _answers(address, timeout=1.0):
            log(f"registry {address} is up (storage {root / 'storage'})")
            return Registry(address=address, root=root, pid=proc.pid)
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-400:]
    if proc.poll() is None:
        proc.terminate()
    raise RegistryError(f"the registry at {address} did not answer within {wait_s:.0f}s; its log ends: {tail}")


# ---------------------------------------------------------------------------------------------
# Manifests
# ---------------------------------------------------------------------------------------------


@dataclass
class ImageRecord:
    """One pushed image: its pullable reference, manifest digest and compressed layers."""

    ref: str  # REGISTRY/taskfactory/task:TAG
    digest: str  # sha256:... of the manifest
    layers: list[tuple[str, int]] = field(default_factory=list)  # (blob digest, compressed bytes)
    config_size: int = 0

    @property
    def size(self) -> int:
        return sum(s for _d, s in self.layers) + self.config_size

    def to_json(self) -> dict:
        return {"digest": self.digest, "layers": [list(x) for x in self.layers], "config_size": self.config_size}

    @classmethod
    def from_json(cls, ref: str, d: dict) -> ImageRecord:
        return cls(ref=ref, digest=d["digest"], layers=[(a, int(b)) for a, b in d.get("layers", [])],
                   config_size=int(d.get("config_size", 0)))


def split_ref(ref: str) -> tuple[str, str, str]:
    """(registry host, repository path, tag) of ``host:port/path/name:tag``."""
    host, _, rest = ref.partition("/")
    if not rest or ("." not in host and ":" not in host and host != "localhost"):
        raise RegistryError(f"{ref}: not a registry reference (HOST[:PORT]/NAME:TAG)")
    name, _, tag = rest.rpartition(":")
    if not name or "/" in tag:
        name, tag = rest, "latest"
    return host, name, tag


def fetch_manifest(ref: str, timeout: float = 30.0) -> ImageRecord:
    """The registry's manifest for ``ref`` (plain HTTP for loopback hosts, HTTPS otherwise)."""
    import requests  # noqa: PLC0415

    host, name, tag = split_ref(ref)
    scheme = "http" if host.split(":")[0] in ("localhost", "127.0.0.1") else "https"
    url = f"{scheme}://{host}/v2/{name}/manifests/{tag}"
    try:
        resp = requests.get(url, headers={"Accept": _MANIFEST_TYPES}, timeout=timeout)
    except requests.RequestException as e:
        raise RegistryError(f"{ref}: cannot reach the registry ({e.__class__.__name__}: {e})") from e
    if resp.status_code != 200:
        raise RegistryError(f"{ref}: the registry answered {resp.status_code} for its manifest")
    m = resp.json()
    digest = resp.headers.get("Docker-Content-Digest", "")
    layers = [(x["digest"], int(x["size"])) for x in m.get("layers", [])]
    return ImageRecord(ref=ref, digest=digest, layers=layers, config_size=int(m.get("config", {}).get("size", 0)))


def layer_sharing(records: Iterable[ImageRecord]) -> dict:
    """How much a set of images shares: total and unique bytes, and bytes unique to each image."""
    recs = list(records)
    owners: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for r in recs:
        for d, s in r.layers:
            owners.setdefault(d, set()).add(r.ref)
            sizes[d] = s
    per_image = {r.ref: sum(s for d, s in set(r.layers) if len(owners[d]) == 1) + r.config_size for r in recs}
    shared = {d: s for d, s in sizes.items() if len(owners[d]) > 1}
    return {
        "images": len(recs),
        "sum_of_image_sizes": sum(r.size for r in recs),
        "unique_bytes": sum(sizes.values()) + sum(r.config_size for r in recs),
        "shared_layers": len(shared),
        "shared_bytes": sum(shared.values()),
        "unique_bytes_per_image": per_image,
    }


# ---------------------------------------------------------------------------------------------
# Push
# ---------------------------------------------------------------------------------------------


def registry_ref(registry: str, local_ref: str) -> str:
    """Where ``taskfactory/task:TAG`` goes under ``registry`` (``host[:port][/namespace]``)."""
    registry = registry.strip().rstrip("/")
    for prefix in ("http://", "https://"):
        registry = registry.removeprefix(prefix)
    if not registry:
        raise RegistryError("--push-images needs a registry (HOST[:PORT][/NAMESPACE])")
    name, _, tag = local_ref.rpartition(":")
    if not name or "/" in tag:
        name, tag = local_ref, "latest"
    # a reference that already names a registry keeps only its path
    first = name.split("/")[0]
    if "/" in name and ("." in first or ":" in first or first == "localhost"):
        name = name.split("/", 1)[1]
    return f"{registry}/{name}:{tag}"


@dataclass
class PushReport:
    registry: str
    images: dict[str, ImageRecord]  # local ref -> record of the pushed image
    seconds: float
    layers_pushed: int
    layers_existing: int

    def mapping(self) -> dict[str, str]:
        return {local: rec.ref for local, rec in self.images.items()}

    def summary(self) -> str:
        share = layer_sharing(self.images.values())
        return (f"pushed {len(self.images)} image(s) to {self.registry} in {self.seconds:.1f}s: "
                f"{self.layers_pushed} layer(s) uploaded, {self.layers_existing} already there; "
                f"{share['unique_bytes'] / 1e6:.1f} MB unique of {share['sum_of_image_sizes'] / 1e6:.1f} MB")


def push_images(client, local_refs: Iterable[str], registry: str, log: Log = lambda _m: None) -> PushReport:
    """Tag and push every local image; a missing image or a refused push raises RegistryError."""
    import docker  # noqa: PLC0415

    refs = sorted(set(local_refs))
    t0 = time.monotonic()
    images: dict[str, ImageRecord] = {}
    pushed = existing = 0
    for i, local in enumerate(refs, 1):
        if not local:
            raise RegistryError("a row has no image_name; publish only runs validated with task images")
        try:
            image = client.images.get(local)
        except docker.errors.ImageNotFound as e:
            raise RegistryError(f"{local}: no such local image to push (was it built on this machine?)") from e
        target = registry_ref(registry, local)
        repo, _, tag = target.rpartition(":")
        image.tag(repo, tag)
        n_up = n_have = 0
        try:
            for ev in client.api.push(repo, tag=tag, stream=True, decode=True):
                if "error" in ev:
                    raise RegistryError(f"push of {target} failed: {ev['error']}")
                status = ev.get("status", "")
                if status == "Pushed":
                    n_up += 1
                elif status in ("Layer already exists", "Mounted from"):
                    n_have += 1
                elif status.startswith("Mounted from"):
                    n_have += 1
        except docker.errors.APIError as e:
            raise RegistryError(f"push of {target} failed: {e.explanation or e}") from e
        pushed += n_up
        existing += n_have
        images[local] = fetch_manifest(target)
        log(f"[{i}/{len(refs)}] {target}: {n_up} layer(s) pushed, {n_have} already there")
    return PushReport(registry=registry, images=images, seconds=time.monotonic() - t0, layers_pushed=pushed,
                      layers_existing=existing)


def write_images_file(dataset_dir: Path, report: PushReport) -> Path:
    from factory.store import atomic_path  # noqa: PLC0415

    data = {"registry": report.registry,
            "images": {rec.ref: rec.to_json() for rec in sorted(report.images.values(), key=lambda r: r.ref)},
            "sharing": {k: v for k, v in layer_sharing(report.images.values()).items()
                        if k != "unique_bytes_per_image"}}
    path = dataset_dir / IMAGES_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


# ---------------------------------------------------------------------------------------------
# Pull
# ---------------------------------------------------------------------------------------------


@dataclass
class PullReport:
    pulled: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)  # skipped: already here (at the recorded digest)
    bytes: int = 0  # compressed bytes the engine downloaded (layers it did not already hold)
    layers_downloaded: int = 0
    layers_present: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.pulled)} image(s) pulled, {len(self.present)} already present; "
                f"{self.layers_downloaded} layer(s) / {self.bytes / 1e6:.1f} MB downloaded, "
                f"{self.layers_present} layer(s) already here, in {self.seconds:.1f}s")

    def to_json(self) -> dict:
        return asdict(self)


def _present(client, ref: str, digest: str | None) -> bool:
    import docker  # noqa: PLC0415

    try:
        image = client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    if not digest:
        return True
    repo = ref.rpartition(":")[0] if ":" in ref.rsplit("/", 1)[-1] else ref
    return f"{repo}@{digest}" in (image.attrs.get("RepoDigests") or [])


def read_images_file(dataset_dir: Path) -> dict[str, ImageRecord]:
    path = Path(dataset_dir) / IMAGES_FILE
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    return {ref: ImageRecord.from_json(ref, d) for ref, d in data.get("images", {}).items()}


def pull_images(client, refs: Iterable[str], records: dict[str, ImageRecord] | None = None,
                log: Log = lambda _m: None) -> PullReport:
    """Pull each reference not already present; progress per image through ``log``."""
    import docker  # noqa: PLC0415

    records = records or {}
    todo = sorted(set(refs))
    rep = PullReport()
    t0 = time.monotonic()
    for i, ref in enumerate(todo, 1):
        rec = records.get(ref)
        if _present(client, ref, rec.digest if rec else None):
            rep.present.append(ref)
            log(f"[{i}/{len(todo)}] {ref}: present, skipped")
            continue
        repo, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, ":", "latest")
        totals: dict[str, int] = {}
        done: set[str] = set()
        had: set[str] = set()
        t1 = time.monotonic()
        try:
            for ev in client.api.pull(repo, tag=tag, stream=True, decode=True):
                if "error" in ev:
                    raise RegistryError(f"pull of {ref} failed: {ev['error']}")
                lid, status = ev.get("id", ""), ev.get("status", "")
                detail = ev.get("progressDetail") or {}
                if status == "Downloading" and detail.get("total"):
                    totals[lid] = int(detail["total"])
                elif status in ("Download complete", "Pull complete"):
                    done.add(lid)
                elif status == "Already exists":
                    had.add(lid)
        except docker.errors.APIError as e:
            raise RegistryError(f"pull of {ref} failed: {e.explanation or e}") from e
        got = done - had
        if rec is not None:  # exact compressed sizes from the manifest, by short layer id
            by_short = {d.split(":")[-1][:12]: s for d, s in rec.layers}
            nbytes = sum(by_short.get(lid, totals.get(lid, 0)) for lid in got)
        else:
            nbytes = sum(totals.get(lid, 0) for lid in got)
        if rec is not None and not _present(client, ref, rec.digest):
            raise RegistryError(f"{ref}: pulled, but its digest is not the one the dataset records ({rec.digest})")
        rep.pulled.append(ref)
        rep.bytes += nbytes
        rep.layers_downloaded += len(got)
        rep.layers_present += len(had)
        log(f"[{i}/{len(todo)}] {ref}: {len(got)} layer(s), {nbytes / 1e6:.1f} MB in {time.monotonic() - t1:.1f}s"
            f" ({len(had)} already here)")
    rep.seconds = time.monotonic() - t0
    return rep


def main(argv: list[str] | None = None) -> int:
    """``python -m factory.registry [PORT]``: make sure a registry answers on localhost:PORT (5000)."""
    argv = sys.argv[1:] if argv is None else argv
    port = int(argv[0]) if argv else 5000
    try:
        reg = ensure_registry(port=port, log=lambda m: print(f"[registry] {m}", file=sys.stderr))
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"registry answers at {reg.address}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
