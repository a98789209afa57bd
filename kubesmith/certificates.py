"""The certificate table: every PKI file, the hosts it goes to, the kubeconfig that embeds it by
reference, and the services that must restart when it changes. Tasks, verify and reset read it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from kubesmith.model import Cluster, Host
from kubesmith.pki import CertSpec
from kubesmith.rules import endpoint_host

# Every etcd peer certificate carries this CN and etcd accepts no other on its peer port
# (--peer-cert-allowed-cn): a client certificate of the same CA is refused there.
ETCD_PEER_CN = "etcd-peer"
# etcd users are certificate CNs (client-cert auth). Each pod host's flanneld has its own,
# FLANNEL_USER_PREFIX + host name, with the flannel role; removing the host deletes the user.
FLANNEL_USER_PREFIX = "flannel-"
ETCD_ROOT_ROLE = "root"
FLANNEL_ROLE = "flannel"
# Cluster-admin by RBAC (revocable): the operator's certificate is in ADMIN_GROUP, kubesmith's own
# API calls use the user KUBESMITH_USER; each is bound to cluster-admin by a ClusterRoleBinding
# (templates/controlplane/rbac-admins.yaml.j2) that the super-admin (system:masters, on the
# control machine only) applies.
ADMIN_GROUP = "kubesmith:cluster-admins"
KUBESMITH_USER = "kubesmith"
# Files kubesmith once placed on hosts and no longer uses: deleted from the hosts on converge.
# (The masters' admin credential, in system:masters, became kubesmith's own RBAC-bound one.)
# (One apiserver certificate shared by every master became one per master: adding or removing a
# master no longer changes, and restarts, the other masters' apiservers.)
RETIRED = ("flannel-etcd-client.crt", "flannel-etcd-client.key", "admin.crt", "admin.key",
           "kube-apiserver.crt", "kube-apiserver.key")
RETIRED_KUBECONFIGS = ("admin",)


@dataclass(frozen=True)
class Kubeconfig:
    """A component kubeconfig naming a credential's files: <kube_config_dir>/<file>.kubeconfig."""

    file: str
    user: str
    # Masters talk to their own apiserver; nodes to every master through their local balancer.
    local_apiserver: bool


@dataclass(frozen=True)
class Credential:
    """One PKI file set (<name>.crt/.key, or a CA/key file) and who uses it."""

    name: str
    hosts: tuple[Host, ...]
    readers: tuple[str, ...]
    spec: CertSpec | None = None
    files: tuple[str, ...] = ("crt", "key")
    kubeconfig: Kubeconfig | None = None
    # The etcd role of the certificate's CN (an etcd user of that name), for etcd clients.
    etcd_role: str | None = None
    # Also a kubeconfig with embedded credentials in the state directory, <name>.kubeconfig.
    control_machine: bool = False

    @property
    def file_names(self) -> tuple[str, ...]:
        """The file names in the PKI directory."""
        return tuple(f"{self.name}.{ext}" for ext in self.files)


def _etcd_member(host: Host) -> list[Credential]:
    """The serving and peer certificates of one etcd member (peers share ETCD_PEER_CN)."""
    sans = {"dns_names": (host.name, "localhost"), "ip_addresses": (host.address, "127.0.0.1")}
    return [
        Credential(f"etcd-{kind}-{host.name}", (host,), ("etcd",),
                   CertSpec(f"etcd-{kind}-{host.name}", "etcd-ca", common_name, server=True,
                            client=True, **sans))
        for kind, common_name in (("server", host.name), ("peer", ETCD_PEER_CN))
    ]


def _flannel(host: Host) -> Credential:
    """A pod host's own etcd credential for flanneld: etcd user flannel-<host>, flannel role."""
    name = f"flannel-etcd-client-{host.name}"
    return Credential(name, (host,), ("flanneld",),
                      _client(name, "etcd-ca", f"{FLANNEL_USER_PREFIX}{host.name}"),
                      etcd_role=FLANNEL_ROLE)


def apiserver_name(host: Host) -> str:
    """The name of a master's apiserver serving certificate (<name>.crt/.key)."""
    return f"kube-apiserver-{host.name}"


def _apiserver(cluster: Cluster, host: Host) -> CertSpec:
    """A master's apiserver serving certificate: its own name and address, and every name a
    client may use for any apiserver (the service, loopback for the node balancers, the
    endpoint). One per master, so a master added or removed changes no other master's."""
    dns = (
        host.name,
        "kubernetes",
        "kubernetes.default",
        "kubernetes.default.svc",
        f"kubernetes.default.svc.{cluster.cluster_domain}",
        "localhost",
    )
    ips = (host.address, cluster.service_vip, "127.0.0.1")
    dns, ips = _with_endpoint(cluster, dns, ips)
    return CertSpec(apiserver_name(host), "kubernetes-ca", "kube-apiserver",
                    dns_names=dns, ip_addresses=ips, server=True)


def _with_endpoint(cluster: Cluster, dns: tuple[str, ...], ips: tuple[str, ...]
                   ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The SANs plus the external VIP/load balancer's name or address (apiserver_endpoint)."""
    name = endpoint_host(cluster.apiserver_endpoint)
    if not name:
        return dns, ips
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return (*dns, name), ips
    return dns, (*ips, name)


def _metrics_server(cluster: Cluster) -> CertSpec:
    """metrics-server's serving certificate, for the name the apiserver dials (svc.namespace)."""
    service = "metrics-server.kube-system.svc"
    return CertSpec("metrics-server", "kubernetes-ca", service,
                    dns_names=(service, f"{service}.{cluster.cluster_domain}"), server=True)


def _client(name: str, ca: str, common_name: str, *organizations: str) -> CertSpec:
    """A client-only certificate."""
    return CertSpec(name, ca, common_name, organizations=organizations, client=True)


def _kubelet(host: Host) -> Credential:
    """A node's kubelet certificate: client of the apiserver and server for it."""
    spec = CertSpec(f"kubelet-{host.name}", "kubernetes-ca", f"system:node:{host.name}",
                    organizations=("system:nodes",), dns_names=(host.name,),
                    ip_addresses=(host.address,), server=True, client=True)
    return Credential(spec.name, (host,), ("kubelet",), spec,
                      kubeconfig=Kubeconfig("kubelet", f"system:node:{host.name}", False))


def _component(cluster: Cluster, name: str, user: str, *organizations: str) -> Credential:
    """A component's client certificate with its kubeconfig (masters' or nodes' components)."""
    on_masters = name != "kube-proxy"
    hosts = cluster.masters if on_masters else cluster.nodes
    readers = (name,) if name != KUBESMITH_USER else ()
    return Credential(name, hosts, readers, _client(name, "kubernetes-ca", user, *organizations),
                      kubeconfig=Kubeconfig(name, user, on_masters),
                      control_machine=name == KUBESMITH_USER)


def _admins() -> list[Credential]:
    """The operator's credential (admin.kubeconfig, RBAC-bound) and the system:masters
    super-admin for recovery: on the control machine only, on no host."""
    return [
        Credential("admin", (), (), _client("admin", "kubernetes-ca", "admin", ADMIN_GROUP),
                   control_machine=True),
        Credential("super-admin", (), (), _client("super-admin", "kubernetes-ca",
                                                  "kubesmith:super-admin", "system:masters"),
                   control_machine=True),
    ]


# The binary mirror's serving certificate, on the first master (tasks/mirror.py).
MIRROR = "kubesmith-mirror"


def _mirror(host: Host) -> Credential:
    """The first master's certificate for the binary mirror it serves to every host."""
    return Credential(MIRROR, (host,), (), CertSpec(MIRROR, "kubernetes-ca", MIRROR,
                                                    dns_names=(host.name,),
                                                    ip_addresses=(host.address,), server=True))


def table(cluster: Cluster) -> list[Credential]:
    """Every PKI file of the cluster: CAs and keys first, then leaf certificates."""
    masters, etcd, pods = cluster.masters, cluster.etcd, cluster.pod_hosts
    clients = tuple(dict.fromkeys((*masters, *etcd)))
    return [
        Credential("kubernetes-ca", cluster.hosts, ("kube-apiserver", "kube-controller-manager",
                                                    "kubelet", "kube-proxy"), files=("crt",)),
        Credential("kubernetes-ca", masters, ("kube-controller-manager",), files=("key",)),
        Credential("etcd-ca", cluster.hosts, ("etcd", "kube-apiserver", "flanneld"),
                   files=("crt",)),
        Credential("front-proxy-ca", masters, ("kube-apiserver",), files=("crt",)),
        Credential("sa", masters, ("kube-apiserver", "kube-controller-manager"),
                   files=("key", "pub")),
        *(c for h in etcd for c in _etcd_member(h)),
        Credential("apiserver-etcd-client", masters, ("kube-apiserver",),
                   _client("apiserver-etcd-client", "etcd-ca", "kube-apiserver-etcd-client"),
                   etcd_role=ETCD_ROOT_ROLE),
        *(_flannel(h) for h in pods),
        # kubesmith's own etcdctl (health, membership, flannel's config, users and roles), on
        # masters and members only.
        Credential("etcd-healthcheck-client", clients, (),
                   _client("etcd-healthcheck-client", "etcd-ca", "etcd-healthcheck-client"),
                   etcd_role=ETCD_ROOT_ROLE),
        *(Credential(apiserver_name(h), (h,), ("kube-apiserver",), _apiserver(cluster, h))
          for h in masters),
        Credential("apiserver-kubelet-client", masters, ("kube-apiserver",),
                   _client("apiserver-kubelet-client", "kubernetes-ca",
                           "kube-apiserver-kubelet-client")),
        Credential("front-proxy-client", masters, ("kube-apiserver",),
                   _client("front-proxy-client", "front-proxy-ca", "front-proxy-client")),
        *(_kubelet(h) for h in cluster.nodes),
        # The node balancers' /readyz checks: no group, so RBAC grants it only what every
        # authenticated user has (system:public-info-viewer: /readyz, /livez, /healthz, /version).
        Credential("apiserver-lb-healthcheck", cluster.nodes, ("apiserver-lb",),
                   _client("apiserver-lb-healthcheck", "kubernetes-ca",
                           "kubesmith:apiserver-lb-healthcheck")),
        _component(cluster, "kube-controller-manager", "system:kube-controller-manager"),
        _component(cluster, "kube-scheduler", "system:kube-scheduler"),
        _component(cluster, "kube-proxy", "system:kube-proxy", "system:node-proxier"),
        # kubesmith's own API calls: /readyz on masters, kubectl from the control machine.
        _component(cluster, KUBESMITH_USER, KUBESMITH_USER),
        *_admins(),
        # On no host: the add-ons phase puts it in metrics-server's Secret, and the cluster CA
        # in its APIService's caBundle, so the apiserver verifies the aggregated API it proxies.
        Credential("metrics-server", (), (), _metrics_server(cluster)),
        _mirror(masters[0]),
    ]


def etcd_users(cluster: Cluster) -> dict[str, str]:
    """etcd user (certificate CN) -> its role, for every etcd client certificate of the table."""
    return {c.spec.common_name: c.etcd_role for c in table(cluster)
            if c.spec is not None and c.etcd_role is not None}


def cert_specs(cluster: Cluster) -> list[CertSpec]:
    """Every leaf certificate the cluster needs (what the PKI issues)."""
    return [c.spec for c in table(cluster) if c.spec is not None]


def of_host(cluster: Cluster, host: Host) -> list[Credential]:
    """The table's entries whose files go to this host."""
    return [c for c in table(cluster) if host in c.hosts]


def readers(cluster: Cluster, host: Host, file_name: str) -> tuple[str, ...]:
    """The services on this host that read a PKI or kubeconfig file (by its file name)."""
    for credential in of_host(cluster, host):
        kubeconfig = credential.kubeconfig
        if file_name in credential.file_names or (
                kubeconfig and file_name == f"{kubeconfig.file}.kubeconfig"):
            return credential.readers
    return ()
