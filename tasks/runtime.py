"""Container runtime: containerd + runc + CNI plugins, with the local images preloaded."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import files, server

from kubesmith.binaries.images import image_ref
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from tasks._ops import install_binaries, service

IMAGE_DIR = "/var/lib/kubesmith/images"
IMAGES = {
    "pause-image": ("pause", "pause_version"),
    "busybox-image": ("busybox", "busybox_version"),
}


def deploy(ctx: DeployContext) -> None:
    """Install and start containerd, then import the preloaded images it must never pull."""
    bin_dir, cni_bin = str(ctx.data["bin_dir"]), str(ctx.data["cni_bin_dir"])
    values = ctx.values(ctx.cluster.host(host.name))
    pause = image_ref("pause", str(ctx.data["pause_version"]))
    bins = install_binaries(ctx, "containerd", COMPONENTS["containerd"].files, bin_dir)
    bins += install_binaries(ctx, "runc", ("runc",), bin_dir)
    install_binaries(ctx, "crictl", ("crictl",), bin_dir)
    files.directory(name="CNI plugin directory", path=cni_bin, present=True)
    install_binaries(ctx, "cni-plugins", COMPONENTS["cni-plugins"].files, cni_bin)
    install_binaries(ctx, "flannel-cni", ("flannel",), cni_bin)
    files.directory(name="containerd config directory", path="/etc/containerd", present=True)
    config = files.template(name="containerd config",
                            src=ctx.template("runtime", "containerd-config.toml.j2"),
                            dest="/etc/containerd/config.toml", pause_image=pause, **values)
    files.template(name="crictl config", src=ctx.template("runtime", "crictl.yaml.j2"),
                   dest="/etc/crictl.yaml")
    unit = files.template(name="containerd unit",
                          src=ctx.template("runtime", "containerd.service.j2"),
                          dest="/etc/systemd/system/containerd.service", **values)
    service("containerd", unit, [config, *bins])
    files.directory(name="image directory", path=IMAGE_DIR, present=True)
    for component, (image, version_key) in IMAGES.items():
        tar = f"{IMAGE_DIR}/{image}.tar"
        ref = image_ref(image, str(ctx.data[version_key]))
        upload = files.put(name=f"image {ref}", src=ctx.binary(component, f"{image}.tar"),
                           dest=tar, mode="644")

        def absent(ref: str = ref) -> bool:
            ok, out = host.run_shell_command(f"ctr -n k8s.io images ls -q name=={ref}")
            return not ok or ref not in "".join(out.stdout_lines)

        server.shell(name=f"import {ref}",
                     commands=[f"ctr -n k8s.io images import {tar}"],
                     _if=lambda upload=upload, absent=absent: upload.did_change() or absent())
