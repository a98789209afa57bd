"""Container runtime: containerd + runc + CNI plugins, with the local images preloaded."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith.binaries.images import image_ref
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from tasks import _ops

IMAGE_DIR = "/var/lib/kubesmith/images"
IMAGES = {
    "pause-image": ("pause", "pause_version"),
    "busybox-image": ("busybox", "busybox_version"),
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


def deploy(ctx: DeployContext) -> None:
    """Install and start containerd, then import the preloaded images it must never pull."""
    bin_dir, cni_bin = str(ctx.data["bin_dir"]), str(ctx.data["cni_bin_dir"])
    values = ctx.values(ctx.cluster.host(host.name))
    images = {image_ref(image, str(ctx.data[key])): (component, image)
              for component, (image, key) in IMAGES.items()}
    ops = _ops.sync([
        *_ops.binaries(ctx, "containerd", COMPONENTS["containerd"].files, bin_dir),
        *_ops.binaries(ctx, "runc", ("runc",), bin_dir),
        *_ops.binaries(ctx, "crictl", ("crictl",), bin_dir),
        _ops.directory(cni_bin),
        *_ops.binaries(ctx, "cni-plugins", COMPONENTS["cni-plugins"].files, cni_bin),
        *_ops.binaries(ctx, "flannel-cni", ("flannel",), cni_bin),
        _ops.directory("/etc/containerd"),
        _ops.template("containerd config", "runtime/containerd-config.toml.j2",
                      "/etc/containerd/config.toml",
                      pause_image=image_ref("pause", str(ctx.data["pause_version"])), **values),
        _ops.template("crictl config", "runtime/crictl.yaml.j2", "/etc/crictl.yaml"),
        _ops.template("containerd unit", "runtime/containerd.service.j2",
                      "/etc/systemd/system/containerd.service", **values),
        _ops.directory(IMAGE_DIR),
        *(_ops.local(f"image {ref}", ctx.binary(component, f"{image}.tar"),
                     f"{IMAGE_DIR}/{image}.tar") for ref, (component, image) in images.items()),
    ])
    inputs = [ops["containerd config"], ops["install runc"],
              *(ops[f"install {b}"] for b in COMPONENTS["containerd"].files)]
    _ops.services([_ops.Service("containerd", ops["containerd unit"], inputs)])
    present = host.get_fact(ContainerdImages)
    for ref, (_component, image) in images.items():
        if ops[f"image {ref}"] or ref not in present:
            server.shell(name=f"import {ref}",
                         commands=[f"ctr -n k8s.io images import {IMAGE_DIR}/{image}.tar"])
