"""Node daemons: kubelet and kube-proxy (iptables mode)."""

from __future__ import annotations

from pyinfra import host

from kubesmith.context import DeployContext
from tasks import _ops


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start kubelet and kube-proxy on this node."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    ops = _ops.sync([
        *_ops.binaries(ctx, "kubernetes", ("kubelet", "kube-proxy", "kubectl"),
                       str(ctx.data["bin_dir"])),
        _ops.directory("/var/lib/kubelet"),
        _ops.directory("/var/lib/kube-proxy"),
        _ops.template("kubelet configuration", "node/kubelet-config.yaml.j2",
                      "/var/lib/kubelet/config.yaml", "600", **values),
        _ops.template("kubelet unit", "node/kubelet.service.j2",
                      "/etc/systemd/system/kubelet.service", "600", **values),
        _ops.template("kube-proxy configuration", "node/kube-proxy-config.yaml.j2",
                      "/var/lib/kube-proxy/config.yaml", **values),
        _ops.template("kube-proxy unit", "node/kube-proxy.service.j2",
                      "/etc/systemd/system/kube-proxy.service", "600", **values),
    ])
    # kube-proxy only rewrites rules it thinks changed: an emptied KUBE-SERVICES needs a restart.
    rules = host.get_fact(_ops.ShellOutput,
                          probe="iptables -t nat -S KUBE-SERVICES | grep -c '^-A'")
    _ops.services([
        _ops.Service("kubelet", ops["kubelet unit"],
                     [ops["install kubelet"], ops["kubelet configuration"],
                      ctx.replaced_any(me.name, f"kubelet-{me.name}", "kubernetes-ca",
                                       "kubelet.")]),
        _ops.Service("kube-proxy", ops["kube-proxy unit"],
                     [ops["install kube-proxy"], ops["kube-proxy configuration"],
                      ctx.replaced_any(me.name, "kube-proxy"), rules == "0"]),
    ])
