"""Images where the work lands: what a node makes true before an item runs there, and after.

On one machine the env stage's image is simply there when baseline and validate need it. On a
cluster the item that built it ran on some node, and the next item may land on another, so no
item assumes an image exists on its node. ``Placement.before`` gives the node the repository's
environment image when it lacks it: pulled from the registry when one is configured (and tagged
as the run recorded it), else built here — tags are content hashes (``EnvSpec.tag``), so this
node's build has the very tag the run recorded, which is checked. ``Placement.after`` pushes what
a node built to the registry (the env stage's image; a validate batch's task images), so the next
node pulls instead of building.

Not for: deciding where items run (``factory.executors_ray``) or building (``verifiers.images``).
"""

from __future__ import annotations

from dataclasses import dataclass

from factory.config import RunConfig
from factory.errors import FactoryError
from factory.stage import Log, StageOutcome, WorkItem, load_env
from factory.store import RunStore

__all__ = ["Placement", "ensure_image_here"]


def ensure_image_here(client, tag: str, spec, registry: str | None = None, log: Log = print) -> str:
    """Make ``tag`` present on this node's engine: ``present``, ``pulled`` or ``built``.

    Raises FactoryError when it can be neither pulled nor built with that tag."""
    import docker  # noqa: PLC0415

    try:
        client.images.get(tag)
        return "present"
    except docker.errors.ImageNotFound:
        pass
    if registry:
        from factory.registry import RegistryError, pull_images, registry_ref  # noqa: PLC0415

        ref = registry_ref(registry, tag)
        try:
            pull_images(client, [ref], log=log)
            repo, _, name = tag.rpartition(":")
            client.images.get(ref).tag(repo, name)
            log(f"{spec.key}: pulled {tag} from {registry}")
            return "pulled"
        except (RegistryError, docker.errors.APIError) as e:
            log(f"{spec.key}: {tag} not pulled from {registry} ({str(e)[:200]}); building it here")
    from factory.repo import checkout  # noqa: PLC0415
    from verifiers.images import build_env_image  # noqa: PLC0415

    built = build_env_image(client, checkout(spec), log=log)
    if built.tag != tag:
        raise FactoryError(f"{spec.key}: this node builds {built.tag}, but the run recorded {tag}: the "
                           "repository or its recipe changed since the env stage (run `env` again)")
    log(f"{spec.key}: built {tag} on this node (it had no copy)")
    return "built"


@dataclass
class Placement:
    """``registry``: HOST[:PORT][/NAMESPACE] that nodes push to and pull from (None: build here)."""

    registry: str | None = None

    def before(self, cfg: RunConfig, store: RunStore, item: WorkItem, log: Log) -> StageOutcome | None:
        """None when the item may run; an outcome (its failure) when its image cannot be had."""
        from factory.stages import stage_named  # noqa: PLC0415

        if item.spec is None or "env.json" not in stage_named(item.stage).reads or item.batch == ():
            return None
        env = load_env(store, item.repo)
        if env is None:
            return None  # the stage itself names the missing input
        from verifiers.engine import ensure_engine  # noqa: PLC0415

        try:
            ensure_image_here(ensure_engine(quiet=True), env.tag, item.spec, self.registry, log)
        except FactoryError as e:
            return StageOutcome(item.stage, item.repo, ok=False, reason=f"no image {env.tag} on this node: {e}")
        return None

    def after(self, cfg: RunConfig, store: RunStore, item: WorkItem, outcome: StageOutcome, log: Log) -> None:
        """Push what this item built, so other nodes pull it (a refused push is logged, not fatal)."""
        if not self.registry or not outcome.ok or item.spec is None:
            return
        refs: list[str] = []
        if item.stage == "env":
            env = load_env(store, item.repo)
            refs = [env.tag] if env is not None else []
        elif item.stage == "validate" and item.batch:
            refs = _task_images(store, item)
        if not refs:
            return
        from factory.registry import RegistryError, push_images  # noqa: PLC0415
        from verifiers.engine import ensure_engine  # noqa: PLC0415

        try:
            rep = push_images(ensure_engine(quiet=True), refs, self.registry)
            log(f"{item.key}: {rep.summary()}")
        except (RegistryError, FactoryError) as e:
            log(f"{item.key}: push to {self.registry} failed: {e}")


def _task_images(store: RunStore, item: WorkItem) -> list[str]:
    import json  # noqa: PLC0415

    out = []
    d = store.repo(item.repo).root / "validations"
    for cid in item.batch or ():
        p = d / f"{cid}.json"
        if p.exists():
            inst = json.loads(p.read_text()).get("instance") or {}
            if inst.get("image_name"):
                out.append(inst["image_name"])
    return out
