"""Container runtime: containerd + runc + CNI plugins, with the local images preloaded."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith import addons, paths
from kubesmith.binaries.images import image_ref
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from tasks import _ops, artifacts

# Images every node must have without a registry: component -> (image name, version key).
# Those of add-ons turned off in group data are left out.
IMAGES = {
    "pause-image": ("pause", "pause_version"),
    "busybox-image": ("busybox", "busybox_version"),
    "coredns": ("coredns", "coredns_version"),
    "metrics-server": ("metrics-server", "metrics_server_version"),
}


class ContainerdImages(FactBase):
    """Image names in containerd's k8s.io namespace (empty when containerd is not running)."""

    @staticmethod
    def default() -> set[str]:
        return set()

    def command(self) -> str:
        return "ctr -n k8s.io images ls -q 2>/dev/null || true"

    def process(self, output: list[str]) -> set[str]:
        return {line.strip() for line in output if line.strip()}


def image_tarballs(ctx: DeployContext) -> dict[str, _ops.Item]:
    """The preloaded images' tarballs on the host: {image ref: item}."""
    found = {}
    unused = addons.unused_images(ctx.data)
    for component, (image, key) in IMAGES.items():
        if component in unused:
            continue
        ref = image_ref(image, str(ctx.data[key]))
        found[ref] = artifacts.artifact(ctx, component, f"{image}.tar",
                                        f"{paths.IMAGE_DIR}/{image}.tar", "644", f"image {ref}")
    return found


def deploy(ctx: DeployContext) -> None:
    """Install and start containerd, then import the preloaded images it must never pull."""
    cni_bin = str(ctx.data["cni_bin_dir"])
    values = ctx.values(ctx.cluster.host(host.name))
    binaries = artifacts.service_binaries(ctx, "containerd")
    config = _ops.template("containerd config", "runtime/containerd-config.toml.j2",
                           f"{paths.CONTAINERD_CONF_DIR}/config.toml",
                           pause_image=image_ref("pause", str(ctx.data["pause_version"])),
                           **values)
    unit = _ops.template("containerd unit", "runtime/containerd.service.j2",
                         paths.unit("containerd"), **values)
    images = image_tarballs(ctx)
    synced = _ops.sync([
        *binaries.values(),
        _ops.directory(cni_bin),
        *artifacts.files(ctx, "cni-plugins", COMPONENTS["cni-plugins"].files, cni_bin),
        *artifacts.files(ctx, "flannel-cni", ("flannel",), cni_bin),
        _ops.directory(paths.CONTAINERD_CONF_DIR),
        config,
        _ops.template("crictl config", "runtime/crictl.yaml.j2", paths.CRICTL_CONF),
        unit,
        _ops.directory(paths.IMAGE_DIR),
        *images.values(),
    ])
    runtime = [binaries[f] for f in (*COMPONENTS["containerd"].files, "runc")]
    _ops.services(ctx, synced, [_ops.Service("containerd", unit, [config, *runtime])])
    present = host.get_fact(ContainerdImages)
    pending = {ref: tarball for ref, tarball in images.items()
               if synced.changed(tarball) or ref not in present}
    if pending:
        server.shell(name=f"import {', '.join(pending)}",
                     commands=[import_command([t.dest for t in pending.values()])])


# ctr's client-side import (--local), not containerd 2's default transfer service: a lab node's
# four images took 0.8-1.1 s and 1.2-1.3 CPU-s (ctr and containerd) instead of 1.6-1.8 s and
# 2.3-2.5 CPU-s; the CRI sees the same (the images listed, the pause image pinned).
IMPORT = "ctr -n k8s.io images import --local"


def import_command(tarballs: list[str]) -> str:
    """Import image tarballs into containerd all at once; fails if any import fails."""
    return _ops.at_once([f"{IMPORT} {shlex.quote(t)}" for t in tarballs])
