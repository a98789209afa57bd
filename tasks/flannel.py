"""flannel: the vxlan overlay, configured in etcd (v3 API) and run by flanneld on pod hosts."""

from __future__ import annotations

import json

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith.context import DeployContext
from tasks import _ops

SUBNET_ENV = "/run/flannel/subnet.env"


class EtcdValue(FactBase):
    """The value of one etcd key (empty when absent or etcd unreachable)."""

    @staticmethod
    def default() -> str:
        return ""

    def command(self, env_file: str, key: str) -> str:
        return f"( . {env_file} && etcdctl get --print-value-only {key} ) 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()


def network_config(ctx: DeployContext) -> None:
    """Put flannel's network config into etcd when it is absent or differs from the template."""
    conf = str(ctx.data["kube_config_dir"])
    path = f"{conf}/flannel-net-conf.json"
    item = _ops.template("flannel network config", "flannel/net-conf.json.j2", path,
                         **ctx.values(ctx.cluster.host(host.name)))
    _ops.sync([item])
    key = f"{ctx.data['flannel_etcd_prefix']}/config"
    current = host.get_fact(EtcdValue, env_file=f"{conf}/etcdctl.env", key=key)
    try:
        same = json.loads(current) == json.loads(item.content or "")
    except ValueError:
        same = False
    if not same:
        server.shell(name="flannel network config into etcd",
                     commands=[f". {conf}/etcdctl.env && etcdctl put {key} < {path}"])


def deploy(ctx: DeployContext) -> None:
    """flanneld on this host; the flannel CNI conflist where pods run."""
    me = ctx.cluster.host(host.name)
    items = [
        *_ops.binaries(ctx, "flannel", ("flanneld",), str(ctx.data["bin_dir"])),
        _ops.template("flanneld unit", "flannel/flanneld.service.j2",
                      "/etc/systemd/system/flanneld.service", **ctx.values(me)),
    ]
    if me.has("nodes"):
        items += [
            _ops.directory(str(ctx.data["cni_conf_dir"])),
            _ops.template("flannel CNI conflist", "flannel/10-flannel.conflist.j2",
                          f"{ctx.data['cni_conf_dir']}/10-flannel.conflist"),
        ]
    ops = _ops.sync(items)
    certs = ctx.replaced_any(me.name, "flannel-etcd-client", "etcd-ca")
    # A running flanneld whose vxlan device was deleted does not recreate it: restart it.
    device_gone = not host.get_fact(_ops.ShellOutput, probe="ip -o link show flannel.1")
    _ops.services([_ops.Service("flanneld", ops["flanneld unit"],
                                [ops["install flanneld"], certs, device_gone])])
