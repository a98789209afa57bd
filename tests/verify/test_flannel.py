"""flannel: flanneld, the vxlan device, the lease in etcd, routes to every other pod subnet."""

from __future__ import annotations

import ipaddress
import json

from kubesmith import membership, paths
from kubesmith.model import Host
from tasks import flannel
from tests.verify.checks import etcdctl
from tests.verify.conftest import remote


def _leases(ctx) -> dict[str, str]:
    """flannel's subnet leases in etcd: subnet CIDR -> public IP of the host holding it."""
    prefix = str(ctx.data["flannel_etcd_prefix"])
    out = etcdctl(ctx, membership.leases_args(ctx))
    assert out.rc == 0, out.stderr
    return {key.removeprefix(f"{prefix}/subnets/").replace("-", "/"): owner
            for key, owner in flannel.leases(out.stdout, prefix).items()}


def test_flanneld_running(pod_host: Host) -> None:
    assert remote(pod_host.name).service("flanneld").is_running, "flanneld is not running"


def test_vxlan_device(ctx, pod_host: Host) -> None:
    device = paths.flannel_device(ctx.data)
    result = remote(pod_host.name).run(f"ip -d -j link show {device}")
    assert result.rc == 0, f"{device} does not exist"
    link = json.loads(result.stdout)[0]
    assert link["linkinfo"]["info_kind"] == "vxlan"
    assert link["linkinfo"]["info_data"]["id"] == ctx.data["flannel_vni"], "wrong VNI"
    assert "UP" in link["flags"], f"{device} is down"


def test_subnet_env_matches_etcd_lease(ctx, pod_host: Host) -> None:
    env = remote(pod_host.name).file(paths.FLANNEL_SUBNET_ENV)
    assert env.exists, f"{paths.FLANNEL_SUBNET_ENV} missing"
    values = dict(line.split("=", 1) for line in env.content_string.split())
    subnet = str(ipaddress.ip_interface(values["FLANNEL_SUBNET"]).network)
    leases = _leases(ctx)
    assert leases.get(subnet) == pod_host.address, f"no lease for {subnet} held by this host"


def test_routes_to_other_pod_subnets(ctx, pod_host: Host) -> None:
    device = paths.flannel_device(ctx.data)
    routes = remote(pod_host.name).check_output(f"ip -4 route show dev {device}")
    missing = [subnet for subnet, owner in _leases(ctx).items()
               if owner != pod_host.address and subnet.split("/")[0] not in routes]
    assert not missing, f"no route via {device} to {', '.join(missing)}"
