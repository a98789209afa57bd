"""flannel: the vxlan overlay, configured in etcd (v3 API) and run by flanneld on pod hosts."""

from __future__ import annotations

import ipaddress
import json
import shlex

from pyinfra import host
from pyinfra.operations import server

from kubesmith import paths, rules
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from tasks import _ops, artifacts, etcd

# flanneld (Type=notify) is started only once it has read its config and written its lease in
# etcd: an etcd that cannot answer within systemd's start timeout (90 s), or answers with an
# error, fails that start job and systemd restarts flanneld 5 s later (Restart=on-failure). So
# the deploy does not wait for the start job but for this long: two start timeouts.
READY_TIMEOUT = 180
# Each host's subnet length in the pod network (flannel's SubnetLen, in net-conf.json).
SUBNET_LEN = 24


def ready_command() -> str:
    """Shell check: flanneld started (no start job pending) with a lease; else its state and log."""
    unit = "flanneld.service"
    return (f"state=$(systemctl is-active {unit}); job=$(systemctl show -p Job --value {unit}); "
            f'[ "$state" = active ] && [ -z "$job" ] && [ -s {paths.FLANNEL_SUBNET_ENV} ] '
            "&& exit 0; "
            f'echo "flanneld $state${{job:+, start job $job pending}}; last log lines:"; '
            f"journalctl -u {unit} -n 2 --no-pager -o cat | cut -c1-200; exit 1")


def leases(listing: str, prefix: str) -> dict[str, str]:
    """Lease keys -> the public IP holding them, from `etcdctl get --prefix <prefix>/subnets/`.

    Keys come back from etcd, where any host with flannel's client certificate can write: only
    keys of a lease's exact form under the prefix count (they go into `etcdctl del`)."""
    lines = listing.splitlines()
    found: dict[str, str] = {}
    index = 0
    while index + 1 < len(lines):
        key, value = lines[index], lines[index + 1]
        owner = _public_ip(value) if rules.lease_key(key, prefix) else None
        if owner is None:
            index += 1
            continue
        found[key] = owner
        index += 2
    return found


def _public_ip(value: str) -> str | None:
    """The PublicIP of a lease's JSON value, when it is an IP."""
    try:
        owner = json.loads(value).get("PublicIP")
        ipaddress.ip_address(owner)
    except (ValueError, TypeError, AttributeError):
        return None
    return str(owner)


def config_commands(ctx: DeployContext, path: str) -> tuple[str, str]:
    """etcdctl commands reading flannel's network config, and putting the file at path there."""
    key = f"{ctx.data['flannel_etcd_prefix']}/config"
    return (etcd.etcdctl(ctx, f"get --print-value-only {etcd.quoted(key)}"),
            etcd.etcdctl(ctx, f"put {etcd.quoted(key)} < {shlex.quote(path)}"))


def subnet_seed(cluster: Cluster, me: Host) -> str | None:
    """The subnet this host's flanneld asks for when it has no lease: its place among the pod
    hosts, counting from the pod network's second subnet (flannel's SubnetMin); None past the
    network's last. Hosts that start at once then ask for different subnets: flannel 0.28 picks
    at random among the first 100 free ones, and one that loses the race exits ("failed to
    acquire lease: subnet already exists") until systemd restarts it 5 s later."""
    try:
        network = ipaddress.ip_network(cluster.pod_cidr)
    except ValueError as error:  # validated at the edge: refused here too, in depth
        raise _ops.UnsafeValue(rules.printable(f"pod_cidr: {error}: refused")) from None
    index = cluster.pod_hosts.index(me) + 1
    if network.prefixlen > SUBNET_LEN or index >= 2 ** (SUBNET_LEN - network.prefixlen):
        return None
    start = int(network.network_address) + index * 2 ** (network.max_prefixlen - SUBNET_LEN)
    return str(ipaddress.ip_network((start, SUBNET_LEN)))


def unit_values(ctx: DeployContext, me: Host) -> dict[str, object]:
    """The flanneld unit's values: the host's, and the subnet file flanneld reads its previous
    subnet from, seeded with subnet_seed where there is none."""
    return {**ctx.values(me), "subnet_env": paths.FLANNEL_SUBNET_ENV,
            "run_dir": paths.FLANNEL_RUN_DIR, "subnet_seed": subnet_seed(ctx.cluster, me)}


def network_config(ctx: DeployContext) -> None:
    """Put flannel's network config into etcd when it is absent or differs from the template."""
    conf = str(ctx.data["kube_config_dir"])
    path = f"{conf}/flannel-net-conf.json"
    item = _ops.template("flannel network config", "flannel/net-conf.json.j2", path,
                         subnet_len=SUBNET_LEN, **ctx.values(ctx.cluster.host(host.name)))
    _ops.sync([item])
    get, put = config_commands(ctx, path)
    # Empty when the key is absent or etcd is not reachable yet.
    current = host.get_fact(_ops.ShellOutput, probe=get)
    try:
        same = json.loads(current) == json.loads(item.content or "")
    except ValueError:
        same = False
    if not same:
        server.shell(name="flannel network config into etcd", commands=[put])


def deploy(ctx: DeployContext) -> None:
    """flanneld on this host; the flannel CNI conflist where pods run."""
    me = ctx.cluster.host(host.name)
    binaries = artifacts.service_binaries(ctx, "flanneld")
    unit = _ops.template("flanneld unit", "flannel/flanneld.service.j2", paths.unit("flanneld"),
                         **unit_values(ctx, me))
    items = [*binaries.values(), unit]
    if me.has("nodes"):
        items += [
            _ops.directory(str(ctx.data["cni_conf_dir"])),
            _ops.template("flannel CNI conflist", "flannel/10-flannel.conflist.j2",
                          f"{ctx.data['cni_conf_dir']}/10-flannel.conflist"),
        ]
    synced = _ops.sync(items)
    # A running flanneld whose vxlan device was deleted does not recreate it: restart it.
    device = shlex.quote(paths.flannel_device(ctx.data))
    device_gone = not host.get_fact(_ops.ShellOutput, probe=f"ip -o link show {device}")
    # Not waiting for the start job: the network phase's readiness check (ready_command) waits.
    _ops.services(ctx, synced, [_ops.Service("flanneld", unit, [binaries["flanneld"]],
                                             restart=device_gone, wait=False)])
