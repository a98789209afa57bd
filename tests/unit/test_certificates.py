"""The certificate table: which host gets which file, and who restarts when it changes."""

from __future__ import annotations

from kubesmith import certificates
from kubesmith.model import Cluster, Host

M = Host("m1", "10.0.0.1", frozenset({"etcd", "masters"}))
N = Host("n1", "10.0.0.2", frozenset({"nodes"}))
CLUSTER = Cluster((M, N))


def _files(host: Host) -> set[str]:
    return {f for c in certificates.of_host(CLUSTER, host) for f in c.file_names}


def test_nodes_get_no_ca_key_and_no_apiserver_credentials() -> None:
    files = _files(N)
    assert {"kubernetes-ca.crt", "etcd-ca.crt", "kubelet-n1.crt", "kubelet-n1.key",
            "kube-proxy.crt", "flannel-etcd-client-n1.key"} <= files
    assert not files & {"kubernetes-ca.key", "sa.key", "kube-apiserver-m1.key", "admin.key",
                        "etcd-server-m1.key"}


def test_masters_get_signing_keys_and_their_member_certs() -> None:
    files = _files(M)
    assert {"kubernetes-ca.key", "sa.key", "sa.pub", "kube-apiserver-m1.crt", "kubesmith.key",
            "etcd-server-m1.crt", "etcd-peer-m1.key", "etcd-healthcheck-client.crt"} <= files
    assert "kubelet-n1.crt" not in files


def test_readers_follow_the_table() -> None:
    assert certificates.readers(CLUSTER, M, "kube-apiserver-m1.crt") == ("kube-apiserver",)
    assert certificates.readers(CLUSTER, M, "etcd-peer-m1.key") == ("etcd",)
    assert certificates.readers(CLUSTER, M, "kubernetes-ca.key") == ("kube-controller-manager",)
    assert "kubelet" in certificates.readers(CLUSTER, N, "kubernetes-ca.crt")
    assert certificates.readers(CLUSTER, N, "kubelet.kubeconfig") == ("kubelet",)
    assert certificates.readers(CLUSTER, M, "kubesmith.crt") == ()


def test_every_leaf_has_one_entry_and_a_spec() -> None:
    names = [c.name for c in certificates.table(CLUSTER) if c.spec is not None]
    assert len(names) == len(set(names))
    assert names == [s.name for s in certificates.cert_specs(CLUSTER)]


def test_front_proxy_credentials_go_to_masters_only() -> None:
    assert {"front-proxy-ca.crt", "front-proxy-client.crt", "front-proxy-client.key"} <= _files(M)
    assert "front-proxy-ca.key" not in _files(M)
    assert not {f for f in _files(N) if f.startswith("front-proxy")}
    assert certificates.readers(CLUSTER, M, "front-proxy-client.key") == ("kube-apiserver",)
    spec = next(s for s in certificates.cert_specs(CLUSTER) if s.name == "front-proxy-client")
    assert spec.ca == "front-proxy-ca" and spec.usages() == {"clientAuth"}


def test_each_pod_host_has_its_own_etcd_user_and_no_node_has_root() -> None:
    users = certificates.etcd_users(CLUSTER)
    assert users == {"kube-apiserver-etcd-client": "root", "etcd-healthcheck-client": "root",
                     "flannel-m1": "flannel", "flannel-n1": "flannel"}
    root_files = {f"{c.name}.key" for c in certificates.table(CLUSTER) if c.etcd_role == "root"}
    assert not root_files & _files(N)
    assert "flannel-etcd-client-m1.key" not in _files(N)


def test_peer_certificates_share_the_allowed_peer_cn() -> None:
    specs = {s.name: s for s in certificates.cert_specs(CLUSTER)}
    assert specs["etcd-peer-m1"].common_name == certificates.ETCD_PEER_CN
    clients = [s for s in specs.values() if s.ca == "etcd-ca" and not s.name.startswith("etcd-")]
    assert clients and all(s.common_name != certificates.ETCD_PEER_CN for s in clients)


def test_cluster_admin_is_by_rbac_and_system_masters_stays_on_the_control_machine() -> None:
    credentials = {c.name: c for c in certificates.table(CLUSTER)}
    masters_group = [c.name for c in credentials.values()
                     if c.spec is not None and "system:masters" in c.spec.organizations]
    assert masters_group == ["super-admin"]
    assert credentials["super-admin"].hosts == () and credentials["admin"].hosts == ()
    assert credentials["admin"].spec.organizations == (certificates.ADMIN_GROUP,)
    assert credentials["kubesmith"].spec.common_name == certificates.KUBESMITH_USER
    local = {c.name for c in credentials.values() if c.control_machine}
    assert local == {"admin", "super-admin", "kubesmith"}


def test_each_master_has_its_own_apiserver_certificate() -> None:
    """A master added or removed changes no other master's certificate (no apiserver restart)."""
    second = Host("m2", "10.0.0.3", frozenset({"masters"}))
    one = {s.name: s for s in certificates.cert_specs(CLUSTER)}
    two = {s.name: s for s in certificates.cert_specs(Cluster((M, second, N)))}
    assert two["kube-apiserver-m1"] == one["kube-apiserver-m1"]
    assert "m2" not in two["kube-apiserver-m1"].dns_names
    assert {"m2", "kubernetes"} <= set(two["kube-apiserver-m2"].dns_names)
    assert {"10.0.0.3", "127.0.0.1"} <= set(two["kube-apiserver-m2"].ip_addresses)
    assert "kube-apiserver-m2.key" not in _files(M)
