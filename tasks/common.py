"""Every host: directories and the kernel settings pods and Services need."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import server

from kubesmith import paths
from kubesmith.context import DeployContext
from tasks import _ops

# Modules to load now: those whose feature is not in effect (built-in ones are, and have no
# entry in /proc/modules). vxlan loads itself when flanneld creates its device.
MODULES = ("br_netfilter", "overlay")
MISSING_MODULES = (
    "test -e /proc/sys/net/bridge/bridge-nf-call-iptables || echo br_netfilter; "
    "grep -qw overlay /proc/filesystems || echo overlay"
)


def deploy(ctx: DeployContext) -> None:
    """Base directories, kernel modules and net sysctls (applied at once, and on boot)."""
    sysctl = _ops.template("sysctl for pods and Services", "common/sysctl.conf.j2",
                           paths.SYSCTL)
    synced = _ops.sync([
        _ops.template("kernel modules for pods", "common/modules-load.conf.j2", paths.MODULES),
        _ops.directory(str(ctx.data["kube_config_dir"])),
        _ops.directory(paths.STATE_DIR),
        _ops.directory(paths.LOG_DIR, "700"),
        sysctl,
    ])
    missing = host.get_fact(_ops.ShellOutput, probe=MISSING_MODULES).split()
    for module in (m for m in MODULES if m in missing):  # only names kubesmith asked about
        server.modprobe(name=f"load kernel module {module}", module=module)
    if synced.changed(sysctl):
        server.shell(name="apply sysctl", commands=[f"sysctl -q -p {paths.SYSCTL}"])
