"""Node daemons: kubelet and kube-proxy (iptables mode)."""

from __future__ import annotations

from pyinfra import host

from kubesmith import paths
from kubesmith.context import DeployContext
from tasks import _ops, artifacts


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start kubelet and kube-proxy on this node."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    kubelet = artifacts.service_binaries(ctx, "kubelet")
    proxy = artifacts.service_binaries(ctx, "kube-proxy")
    kubelet_config = _ops.template("kubelet configuration", "node/kubelet-config.yaml.j2",
                                   f"{paths.KUBELET_DIR}/config.yaml", "600", **values)
    kubelet_unit = _ops.template("kubelet unit", "node/kubelet.service.j2",
                                 paths.unit("kubelet"), "600", **values)
    proxy_config = _ops.template("kube-proxy configuration", "node/kube-proxy-config.yaml.j2",
                                 f"{paths.KUBE_PROXY_DIR}/config.yaml", **values)
    proxy_unit = _ops.template("kube-proxy unit", "node/kube-proxy.service.j2",
                               paths.unit("kube-proxy"), "600", **values)
    synced = _ops.sync([
        *kubelet.values(), *proxy.values(),
        _ops.directory(paths.KUBELET_DIR), _ops.directory(paths.KUBE_PROXY_DIR),
        kubelet_config, kubelet_unit, proxy_config, proxy_unit,
    ])
    # kube-proxy only rewrites rules it thinks changed: an emptied KUBE-SERVICES needs a restart.
    rules = host.get_fact(_ops.ShellOutput,
                          probe="iptables -t nat -S KUBE-SERVICES | grep -c '^-A'")
    _ops.services(ctx, synced, [
        _ops.Service("kubelet", kubelet_unit, [kubelet["kubelet"], kubelet_config]),
        _ops.Service("kube-proxy", proxy_unit, [proxy["kube-proxy"], proxy_config],
                     restart=rules == "0"),
    ])
