"""The cluster config model: hosts with roles and addresses, networks, derived endpoints."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

from kubesmith.errors import UserError
from kubesmith.services import (
    APISERVER_LB_PORT,
    APISERVER_PORT,
    ETCD_CLIENT_PORT,
    ETCD_PEER_PORT,
)

ROLES = ("etcd", "masters", "nodes")


class UnknownHost(UserError):
    """A host name that the inventory does not list."""


@dataclass(frozen=True)
class Host:
    """One machine of the cluster as the deploy sees it."""

    name: str
    address: str
    groups: frozenset[str]
    iface: str | None = None

    def has(self, role: str) -> bool:
        """Whether the host is in that group."""
        return role in self.groups

    @property
    def peer_url(self) -> str:
        """The URL etcd members use to reach this host's member."""
        return f"https://{self.address}:{ETCD_PEER_PORT}"


@dataclass(frozen=True)
class Cluster:
    """Every host with its roles, plus the cluster-wide networks."""

    hosts: tuple[Host, ...]
    pod_cidr: str = "10.200.0.0/16"
    service_cidr: str = "10.32.0.0/24"
    cluster_domain: str = "cluster.local"
    cluster_dns: str = "10.32.0.10"
    # An external VIP/load balancer URL (group data, validated), or "".
    apiserver_endpoint: str = ""

    def role(self, role: str) -> tuple[Host, ...]:
        """Hosts in a group, in inventory order."""
        return tuple(h for h in self.hosts if h.has(role))

    @property
    def etcd(self) -> tuple[Host, ...]:
        """The etcd members."""
        return self.role("etcd")

    @property
    def masters(self) -> tuple[Host, ...]:
        """The control-plane hosts."""
        return self.role("masters")

    @property
    def nodes(self) -> tuple[Host, ...]:
        """The hosts that run kubelet and pods."""
        return self.role("nodes")

    @property
    def pod_hosts(self) -> tuple[Host, ...]:
        """Hosts that run flanneld: nodes and masters (masters reach pods through flannel)."""
        return tuple(h for h in self.hosts if h.has("nodes") or h.has("masters"))

    def host(self, name: str) -> Host:
        """The host of that name."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise UnknownHost(f"{name} is not in the inventory")

    @property
    def service_vip(self) -> str:
        """The `kubernetes` Service's ClusterIP: the first address of the service CIDR."""
        return str(ipaddress.ip_network(self.service_cidr).network_address + 1)

    @property
    def apiserver_url(self) -> str:
        """The operator's default apiserver URL: the external endpoint, else the first master."""
        return self.apiserver_urls[0]

    @property
    def apiserver_urls(self) -> tuple[str, ...]:
        """Every URL reaching an apiserver from the control machine, in the order kubesmith's
        own API calls try them: the external endpoint (when set), then each master."""
        masters = tuple(self.master_url(h) for h in self.masters)
        return (self.apiserver_endpoint, *masters) if self.apiserver_endpoint else masters

    @staticmethod
    def master_url(master: Host) -> str:
        """One master's apiserver URL."""
        return f"https://{master.address}:{APISERVER_PORT}"

    @property
    def balancer_url(self) -> str:
        """Where a node's kubelet and kube-proxy reach the apiservers: the node's own balancer."""
        return f"https://127.0.0.1:{APISERVER_LB_PORT}"

    @property
    def etcd_client_urls(self) -> str:
        """Comma-separated client URLs of every etcd member."""
        return ",".join(f"https://{h.address}:{ETCD_CLIENT_PORT}" for h in self.etcd)

    @property
    def etcd_initial_cluster(self) -> str:
        """etcd's --initial-cluster value for the current members."""
        return ",".join(f"{h.name}={h.peer_url}" for h in self.etcd)

    def without(self, names: set[str]) -> Cluster:
        """The same cluster with these hosts gone (what remains after removing them)."""
        return replace(self, hosts=tuple(h for h in self.hosts if h.name not in names))
