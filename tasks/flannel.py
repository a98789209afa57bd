"""flannel: the vxlan overlay, configured in etcd (v3 API) and run by flanneld on pod hosts."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import files, server

from kubesmith.context import DeployContext
from tasks._ops import install_binaries, service

SUBNET_ENV = "/run/flannel/subnet.env"


def network_config(ctx: DeployContext) -> None:
    """Put flannel's network config into etcd once (again only if the rendered config changes)."""
    conf = str(ctx.data["kube_config_dir"])
    path = f"{conf}/flannel-net-conf.json"
    rendered = files.template(name="flannel network config",
                              src=ctx.template("flannel", "net-conf.json.j2"), dest=path,
                              **ctx.values(ctx.cluster.host(host.name)))
    key = f"{ctx.data['flannel_etcd_prefix']}/config"
    etcdctl = f". {conf}/etcdctl.env && etcdctl"

    def missing() -> bool:
        ok, output = host.run_shell_command(f"{etcdctl} get --print-value-only {key}")
        return not ok or not "".join(output.stdout_lines).strip()

    server.shell(name="flannel network config into etcd",
                 commands=[f"{etcdctl} put {key} < {path}"],
                 _if=lambda: rendered.did_change() or missing())


def deploy(ctx: DeployContext) -> None:
    """flanneld on this host; the flannel CNI conflist where pods run."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    bins = install_binaries(ctx, "flannel", ("flanneld",), str(ctx.data["bin_dir"]))
    unit = files.template(name="flanneld unit", src=ctx.template("flannel", "flanneld.service.j2"),
                          dest="/etc/systemd/system/flanneld.service", **values)
    service("flanneld", unit, bins)
    if me.has("nodes"):
        files.directory(name="CNI config directory", path=str(ctx.data["cni_conf_dir"]),
                        present=True)
        files.template(name="flannel CNI conflist",
                       src=ctx.template("flannel", "10-flannel.conflist.j2"),
                       dest=f"{ctx.data['cni_conf_dir']}/10-flannel.conflist")

