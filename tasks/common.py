"""Every host: directories and the kernel settings pods and Services need."""

from __future__ import annotations

from pyinfra.operations import server

from kubesmith.context import DeployContext
from tasks import _ops

SYSCTL = "/etc/sysctl.d/90-kubesmith.conf"


def deploy(ctx: DeployContext) -> None:
    """Base directories and net sysctls (applied at once when they change, and on boot)."""
    ops = _ops.sync([
        _ops.directory(str(ctx.data["kube_config_dir"])),
        _ops.directory("/var/lib/kubesmith"),
        _ops.directory("/var/log/kubernetes", "700"),
        _ops.template("sysctl for pods and Services", "common/sysctl.conf.j2", SYSCTL),
    ])
    if ops["sysctl for pods and Services"]:
        server.shell(name="apply sysctl", commands=[f"sysctl -q -p {SYSCTL}"])
