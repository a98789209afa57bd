"""The one transfer step for cached artifacts (binaries, image tarballs): every host fetches
them from the binary mirror on the first master (tasks/mirror.py), which gets each once from the
control machine. Sums come from the verified cache manifest, never re-hashed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kubesmith import addons
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from kubesmith.services import SERVICES
from tasks import mirror
from tasks._ops import Item, local


def artifact(ctx: DeployContext, component: str, file: str, dest: str, mode: str = "755",
             name: str | None = None) -> Item:
    """One cached file of a component, installed at dest."""
    path = Path(ctx.binary(component, file))
    try:
        digest = cache.read_manifest(path.parent)[file]
    except (cache.CacheIncomplete, KeyError):
        if not ctx.dry:  # a dry run does not build: the binary is pending, like its upload
            raise
        digest = ""
    item = local(name or f"install {file}", str(path), dest, mode, digest)
    if not ctx.mirror:
        return item
    return replace(item, url=mirror.url(ctx, digest), cacert=mirror.cacert(ctx))


def files(ctx: DeployContext, component: str, names: tuple[str, ...], dest_dir: str) -> list[Item]:
    """Several cached files of a component into one directory."""
    return [artifact(ctx, component, n, f"{dest_dir}/{n}") for n in names]


def service_binaries(ctx: DeployContext, service: str) -> dict[str, Item]:
    """A service's binaries (from the service table) into bin_dir: {file: item}."""
    bin_dir = str(ctx.data["bin_dir"])
    return {f: artifact(ctx, component, f, f"{bin_dir}/{f}")
            for component, names in SERVICES[service].binaries for f in names}


def every(ctx: DeployContext) -> dict[str, str]:
    """Every cached artifact a cluster of this inventory installs (sha256 -> local file), in
    the component table's order: the deployed components, add-on images of those turned on."""
    unused = addons.unused_images(ctx.data)
    found: dict[str, str] = {}
    for name, component in COMPONENTS.items():
        if not component.deployed or name in unused:
            continue
        directory = Path(ctx.binary(name, component.files[0])).parent
        sums = cache.read_manifest(directory)
        found.update((sums[f], str(directory / f)) for f in component.files)
    return found
