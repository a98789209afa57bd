"""etcd: a TLS cluster (peer and client certificates required) with a 0700 data directory."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import files

from kubesmith.context import DeployContext
from tasks._ops import install_binaries, service

BINARIES = ("etcd", "etcdctl", "etcdutl")


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start the etcd member on this host."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    bins = install_binaries(ctx, "etcd", BINARIES, str(ctx.data["bin_dir"]))
    files.directory(name="etcd data directory", path=str(ctx.data["etcd_data_dir"]), mode="700",
                    present=True)
    files.template(name="etcdctl environment", src=ctx.template("etcd", "etcdctl.env.j2"),
                   dest=f"{ctx.data['kube_config_dir']}/etcdctl.env", mode="644",
                   etcd_endpoints=f"https://{me.address}:2379", pki_dir=ctx.data["pki_dir"])
    unit = files.template(name="etcd unit", src=ctx.template("etcd", "etcd.service.j2"),
                          dest="/etc/systemd/system/etcd.service", **values)
    service("etcd", unit, bins[:1])


def health_command(ctx: DeployContext) -> str:
    """etcdctl over TLS against every member: exits non-zero unless all are healthy."""
    return (f". {ctx.data['kube_config_dir']}/etcdctl.env && "
            f"ETCDCTL_ENDPOINTS={ctx.cluster.etcd_client_urls} etcdctl endpoint health")
