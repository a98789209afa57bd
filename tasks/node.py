"""Node daemons: kubelet and kube-proxy (iptables mode)."""

from __future__ import annotations

import ipaddress
import shlex

from pyinfra import host

from kubesmith import paths, services
from kubesmith.context import DeployContext
from tasks import _ops, artifacts

# One line per candidate file: its path, then the nameservers it lists.
RESOLVERS = "; ".join(
    f"echo {shlex.quote(f)} $(awk '$1 == \"nameserver\" {{print $2}}' {shlex.quote(f)})"
    for f in paths.RESOLV_CONFS)


def _off_loopback(address: str) -> bool:
    """Whether a nameserver entry is a usable address that is not loopback."""
    try:
        return not ipaddress.ip_address(address.split("%")[0]).is_loopback
    except ValueError:
        return False


def resolv_conf(listing: str) -> str | None:
    """The first candidate file naming a resolver off loopback, from the RESOLVERS output; None
    when there is none (a local stub such as systemd-resolved's 127.0.0.53 would, in a pod with
    dnsPolicy Default, be the pod itself: CoreDNS would forward to itself and stop, "loop")."""
    found = dict((line.split()[0], line.split()[1:]) for line in listing.splitlines()
                 if line.strip())
    for path in paths.RESOLV_CONFS:
        if any(_off_loopback(ns) for ns in found.get(path, [])):
            return path
    return None


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start kubelet and kube-proxy on this node."""
    me = ctx.cluster.host(host.name)
    kubelet = artifacts.service_binaries(ctx, "kubelet")
    proxy = artifacts.service_binaries(ctx, "kube-proxy")
    own_resolv = _ops.template("resolv.conf for pods (host has no resolver)",
                               "node/resolv.conf.j2",
                               f"{ctx.data['kube_config_dir']}/resolv.conf", **ctx.values(me))
    resolv = resolv_conf(host.get_fact(_ops.ShellOutput, probe=RESOLVERS))
    values = {**ctx.values(me), "resolv_conf": resolv or own_resolv.dest}
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
        *([] if resolv else [own_resolv]),
        kubelet_config, kubelet_unit, proxy_config, proxy_unit,
    ], retired=[f"{ctx.data['bin_dir']}/{f}" for f in services.retired(me.groups)])
    # kube-proxy only rewrites rules it thinks changed: an emptied KUBE-SERVICES needs a restart.
    rules = host.get_fact(_ops.ShellOutput,
                          probe="iptables -t nat -S KUBE-SERVICES | grep -c '^-A'")
    _ops.services(ctx, synced, [
        _ops.Service("kubelet", kubelet_unit, [kubelet["kubelet"], kubelet_config]),
        _ops.Service("kube-proxy", proxy_unit, [proxy["kube-proxy"], proxy_config],
                     restart=rules == "0"),
    ])
