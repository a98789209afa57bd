"""etcd: a TLS cluster (peer and client certificates required) with a 0700 data directory."""

from __future__ import annotations

from pyinfra import host

from kubesmith.context import DeployContext
from tasks import _ops

BINARIES = ("etcd", "etcdctl", "etcdutl")


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start the etcd member on this host."""
    me = ctx.cluster.host(host.name)
    conf = str(ctx.data["kube_config_dir"])
    ops = _ops.sync([
        *_ops.binaries(ctx, "etcd", BINARIES, str(ctx.data["bin_dir"])),
        _ops.directory(str(ctx.data["etcd_data_dir"]), "700"),
        _ops.template("etcdctl environment", "etcd/etcdctl.env.j2", f"{conf}/etcdctl.env",
                      etcd_endpoints=f"https://{me.address}:2379", pki_dir=ctx.data["pki_dir"]),
        _ops.template("etcd unit", "etcd/etcd.service.j2", "/etc/systemd/system/etcd.service",
                      **ctx.values(me)),
    ])
    certs = ctx.replaced_any(me.name, f"etcd-server-{me.name}", f"etcd-peer-{me.name}", "etcd-ca")
    _ops.services([_ops.Service("etcd", ops["etcd unit"], [ops["install etcd"], certs])])


def etcdctl(ctx: DeployContext, args: str, endpoints: str | None = None) -> str:
    """A shell command running etcdctl over TLS with the host's etcdctl environment."""
    override = f"ETCDCTL_ENDPOINTS={endpoints} " if endpoints else ""
    return f". {ctx.data['kube_config_dir']}/etcdctl.env && {override}etcdctl {args}"


def health_command(ctx: DeployContext) -> str:
    """etcdctl over TLS against every member: exits non-zero unless all are healthy."""
    return etcdctl(ctx, "endpoint health", ctx.cluster.etcd_client_urls)
