"""Every host: directories and the kernel settings pods and Services need."""

from __future__ import annotations

from pyinfra.operations import files, server

from kubesmith.context import DeployContext


def deploy(ctx: DeployContext) -> None:
    """Base directories and net sysctls (applied at once and on boot)."""
    for path, mode in ((ctx.data["kube_config_dir"], "755"), ("/var/lib/kubesmith", "755"),
                       ("/var/log/kubernetes", "700")):
        files.directory(name=f"directory {path}", path=str(path), mode=mode, present=True)
    sysctl = files.template(name="sysctl for pods and Services",
                            src=ctx.template("common", "sysctl.conf.j2"),
                            dest="/etc/sysctl.d/90-kubesmith.conf")
    server.shell(name="apply sysctl", commands=["sysctl -q -p /etc/sysctl.d/90-kubesmith.conf"],
                 _if=sysctl.did_change)
