"""Node daemons: kubelet and kube-proxy (iptables mode)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import files

from kubesmith.context import DeployContext
from tasks._ops import install_binaries, service


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start kubelet and kube-proxy on this node."""
    values = ctx.values(ctx.cluster.host(host.name))
    bin_dir = str(ctx.data["bin_dir"])
    kubelet_bin, proxy_bin = install_binaries(ctx, "kubernetes", ("kubelet", "kube-proxy"), bin_dir)
    install_binaries(ctx, "kubernetes", ("kubectl",), bin_dir)
    for path in ("/var/lib/kubelet", "/var/lib/kube-proxy"):
        files.directory(name=f"directory {path}", path=path, present=True)
    kubelet_conf = files.template(name="kubelet configuration",
                                  src=ctx.template("node", "kubelet-config.yaml.j2"),
                                  dest="/var/lib/kubelet/config.yaml", **values)
    kubelet_unit = files.template(name="kubelet unit",
                                  src=ctx.template("node", "kubelet.service.j2"),
                                  dest="/etc/systemd/system/kubelet.service", **values)
    service("kubelet", kubelet_unit, [kubelet_bin, kubelet_conf])
    proxy_conf = files.template(name="kube-proxy configuration",
                                src=ctx.template("node", "kube-proxy-config.yaml.j2"),
                                dest="/var/lib/kube-proxy/config.yaml", **values)
    proxy_unit = files.template(name="kube-proxy unit",
                                src=ctx.template("node", "kube-proxy.service.j2"),
                                dest="/etc/systemd/system/kube-proxy.service", **values)
    service("kube-proxy", proxy_unit, [proxy_bin, proxy_conf])
