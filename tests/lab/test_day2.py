"""Day 2 on real lab hosts: add a node, remove it, reset it, refuse to remove the last master;
CoreDNS follows the node count (one replica per node, up to two); reset refuses a host of
another CA and removes only what kubesmith made; a second inventory cannot take the state."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

from kubesmith import addons, settings
from kubesmith.binaries import cache
from kubesmith.lab import hosts as lab
from tests.lab.conftest import PROJECT, TEST_BRIDGE, TEST_SUBNET

pytestmark = pytest.mark.lab

UNITS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld",
         "containerd", "kubelet", "kube-proxy")
KUBESMITH_PATHS = ("/etc/kubernetes", "/var/lib/etcd", "/var/lib/kubelet", "/var/lib/kube-proxy",
                   "/etc/containerd", "/etc/cni", "/opt/cni", "/run/flannel", "/var/lib/kubesmith",
                   "/usr/local/bin/kubelet", "/usr/local/bin/containerd",
                   "/etc/sysctl.d/90-kubesmith.conf", "/etc/modules-load.d/kubesmith.conf")


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(2)  # lab-1 master, lab-2 the only node: one CoreDNS replica


def dns_replicas(cluster) -> str:
    """CoreDNS's wanted and ready replicas, as `kubectl get deployment` shows them."""
    return cluster.kubectl("get", "-n", "kube-system", "deployment/coredns", "-o",
                           "jsonpath={.spec.replicas} {.status.readyReplicas}")


def test_add_node_touches_only_the_new_host(cluster) -> None:
    before = {h: cluster.started(h, UNITS) for h in ("lab-1", "lab-2")}
    assert dns_replicas(cluster) == "1 1"
    lab.up(3, TEST_SUBNET, cluster.lab.paths, log=lambda _m: None, bridge=TEST_BRIDGE)
    added = cluster.deploy("add-node", "lab-3")
    assert added.returncode == 0, added.stdout + added.stderr
    # Only the first master's binary mirror, which already holds every node file (none sent).
    touched = [line for line in added.stdout.splitlines()
               if "] lab-2" in line or ("] lab-1" in line and "[binary mirror" not in line)]
    assert not touched, f"add-node touched an existing host:\n{added.stdout}"
    assert "[binary mirror] lab-1" in added.stdout and "lab-1: mirror " not in added.stdout
    assert {h: cluster.started(h, UNITS) for h in before} == before, "an existing service restarted"
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-3", "--timeout=60s")
    version = settings.versions()["kubernetes_version"]
    assert version in cluster.kubectl("get", "node", "lab-3", "--no-headers")
    images = cluster.ssh("lab-3", "ctr -n k8s.io images ls -q").stdout.split()
    data = settings.group_data()
    assert {a.image_ref(data) for a in addons.enabled(data)} <= set(images), images
    assert dns_replicas(cluster) == "2 2", "add-node did not scale CoreDNS to the second node"


def test_pods_schedule_on_the_new_node(cluster) -> None:
    busybox = settings.versions()["busybox_version"]
    cluster.apply(f"""apiVersion: v1
kind: Pod
metadata: {{name: on-lab-3}}
spec:
  nodeSelector: {{kubernetes.io/hostname: lab-3}}
  containers:
  - name: c
    image: kubesmith.local/busybox:{busybox}
    imagePullPolicy: Never
    command: ["sleep", "3600"]
""")
    cluster.kubectl("wait", "--for=condition=Ready", "pod/on-lab-3", "--timeout=60s")
    assert "lab-3" in cluster.kubectl("get", "pod", "on-lab-3", "-o", "wide", "--no-headers")


def etcdctl(cluster, credential: str, *args: str) -> subprocess.CompletedProcess:
    """etcdctl from the control machine against lab-1's client port, with one credential of
    the state directory (the same files the hosts were given)."""
    versions = settings.versions()
    binary = cache.component_dir(cache.default_root(), "etcd", versions["etcd_version"],
                                 cache.host_arch()) / "etcdctl"
    pki, address = cluster.state / "pki", cluster.lab.state.host("lab-1").address
    return subprocess.run(
        [str(binary), f"--endpoints=https://{address}:2379", f"--cacert={pki}/etcd-ca.crt",
         f"--cert={pki}/{credential}.crt", f"--key={pki}/{credential}.key",
         "--dial-timeout=10s", "--command-timeout=20s", *args],
        capture_output=True, text=True, timeout=60, check=False)


def test_a_nodes_etcd_credential_reaches_only_flannels_keys(cluster) -> None:
    node = "flannel-etcd-client-lab-3"
    config = etcdctl(cluster, node, "get", "--print-value-only", "/coreos.com/network/config")
    assert config.returncode == 0 and '"Network"' in config.stdout, config.stderr
    leases = etcdctl(cluster, node, "get", "--prefix", "--keys-only", "/coreos.com/network/subnets")
    assert leases.stdout.count("/coreos.com/network/subnets/") == 3, leases.stdout
    for args in (("get", "--prefix", "--keys-only", "/registry"),
                 ("put", "/registry/stolen", "x"), ("put", "/elsewhere", "x"),
                 ("put", "/coreos.com/network/config", "{}")):
        denied = etcdctl(cluster, node, *args)
        assert denied.returncode != 0 and "permission denied" in denied.stderr, (args, denied)
    # kube-apiserver's credential (root) reads what the node's may not: the check can fail.
    registry = etcdctl(cluster, "apiserver-etcd-client", "get", "--prefix", "--keys-only",
                       "--limit=1", "/registry")
    assert registry.stdout.startswith("/registry/"), registry.stderr


def test_a_nodes_etcd_credential_is_refused_on_the_peer_port(cluster) -> None:
    etcd = cluster.lab.state.host("lab-1").address
    curl = ("curl -sS --http1.1 --max-time 5 -o /dev/null -w '%{http_code}' "
            "--cacert /etc/kubernetes/pki/etcd-ca.crt "
            "--cert /etc/kubernetes/pki/CRED.crt --key /etc/kubernetes/pki/CRED.key "
            f"https://{etcd}:2380/version")
    refused = cluster.ssh("lab-3", curl.replace("CRED", "flannel-etcd-client-lab-3"))
    assert refused.returncode != 0 and refused.stdout != "200", refused
    peer = cluster.ssh("lab-1", curl.replace("CRED", "etcd-peer-lab-1"))
    assert peer.stdout == "200", peer


def test_remove_node(cluster) -> None:
    removed = cluster.deploy("remove-node", "lab-3", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    # Its etcd user is gone: the certificate (still valid, and in the state directory) opens
    # nothing; another pod host's still works.
    after = etcdctl(cluster, "flannel-etcd-client-lab-3", "get", "/coreos.com/network/config")
    assert after.returncode != 0, after.stdout
    other = etcdctl(cluster, "flannel-etcd-client-lab-2", "get", "/coreos.com/network/config")
    assert other.returncode == 0 and '"Network"' in other.stdout, other.stderr
    assert "lab-3" not in cluster.kubectl("get", "nodes", "--no-headers")
    assert dns_replicas(cluster) == "1 1", "remove-node left a CoreDNS replica with no node"
    # is-active exits non-zero when a unit is not active: one state per unit, exit 0 all the same.
    units = ("kubelet", "kube-proxy", "containerd", "flanneld")
    states = cluster.ssh_ok("lab-3", f"systemctl is-active {' '.join(units)} || true").split()
    assert len(states) == len(units) and "active" not in states, (units, states)


def test_reset_leaves_nothing(cluster) -> None:
    reset = cluster.deploy("reset", "lab-3", "--yes")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    # Each read must succeed (an ssh failure prints nothing, which would pass for "nothing left").
    processes = cluster.ssh_ok("lab-3", "ps -eo comm=").split()
    assert "systemd" in processes, processes
    left = [p for p in processes
            if p.startswith(("kube", "etcd", "flanneld", "containerd", "pause"))]
    assert not left, f"processes left: {left}"
    units = cluster.ssh_ok("lab-3", "ls /etc/systemd/system").split()
    assert not [u for u in units if u.removesuffix(".service") in UNITS]
    existing = cluster.ssh_ok("lab-3", "; ".join(f"if test -e {p}; then echo {p}; fi"
                                                 for p in KUBESMITH_PATHS)).split()
    assert not existing, f"left behind: {existing}"
    # The runtime's state, preloaded (add-on) images included, is gone; the lab's mount stays.
    assert cluster.ssh_ok("lab-3", "ls -A /var/lib/containerd").split() == []
    # IPv4's rules must be read (kube-proxy's mode); IPv6's where the host's kernel has them.
    rules = cluster.ssh_ok("lab-3", "iptables-save && { ip6tables-save || true; }")
    assert not [line for line in rules.splitlines()
                if any(tag in line for tag in ("KUBE-", "FLANNEL", "CNI-"))]
    links = cluster.ssh_ok("lab-3", "ip -o link show")
    assert ": lo:" in links, links
    assert "flannel.1" not in links and "cni0" not in links and "veth" not in links


def test_refuses_to_remove_the_last_master(cluster) -> None:
    refused = cluster.deploy("remove-node", "lab-1", "--yes")
    assert refused.returncode != 0
    assert "last master" in refused.stderr
    assert cluster.ssh("lab-1", "systemctl is-active kube-apiserver").stdout.strip() == "active"


def test_the_operator_is_cluster_admin_by_a_binding_that_revokes_it(cluster) -> None:
    groups = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.groups}")
    assert "kubesmith:cluster-admins" in groups and "system:masters" not in groups, groups
    assert "lab-2" in cluster.kubectl("get", "nodes")
    super_admin = subprocess.run(
        [str(cluster.kubectl_binary()), f"--kubeconfig={cluster.state / 'super-admin.kubeconfig'}",
         "delete", "clusterrolebinding", "kubesmith:cluster-admins"],
        capture_output=True, text=True, timeout=60, check=False)
    assert super_admin.returncode == 0, super_admin.stderr
    deadline = time.monotonic() + 30
    while "Forbidden" not in (denied := cluster.kubectl("get", "nodes", check=False)):
        assert time.monotonic() < deadline, f"still allowed after the binding went: {denied}"
        time.sleep(1)
    # kubesmith's own credential has its own binding: `up` still converges, and restores it.
    again = cluster.deploy("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "lab-2" in cluster.kubectl("get", "nodes")


def test_a_second_inventory_cannot_take_the_clusters_state(cluster, tmp_path) -> None:
    # The lab inventory bootstrapped this cluster and owns its state directory; an inventory
    # elsewhere whose cluster_name names that directory is refused before anything is touched.
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(f"cluster_name = {cluster.state.name!r}\n")
    (tmp_path / "hosts.py").write_text((PROJECT / "inventories" / "lab.py").read_text())
    env = {k: v for k, v in cluster.env.items() if k != "KUBESMITH_STATE"}
    refused = subprocess.run(
        [sys.executable, str(PROJECT / "deploy.py"), "up", "--dry", "-i",
         str(tmp_path / "hosts.py")],
        capture_output=True, text=True, cwd=PROJECT, timeout=120, check=False,
        env=dict(env, KUBESMITH_STATE_ROOT=str(cluster.state.parent)))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (f"error: state directory {cluster.state} belongs to inventory "
            f"{PROJECT / 'inventories' / 'lab.py'}, not {tmp_path / 'hosts.py'}") in refused.stderr


FOREIGN = ("ip link add vethkeep0 type veth peer name vethkeep1; "
           "iptables -N KEEP-ME; iptables -A INPUT -j KEEP-ME; "
           "iptables -A KEEP-ME -s 192.0.2.1 -j ACCEPT; "
           "mkdir -p /var/lib/keep-me; echo mine > /var/lib/keep-me/file")


def test_reset_refuses_another_clusters_host_and_removes_only_kubesmiths(cluster) -> None:
    # Things on lab-2 that kubesmith did not make, beside a working node (pods on cni0 veths).
    assert cluster.ssh("lab-2", FOREIGN).returncode == 0
    pki = "/etc/kubernetes/pki"
    assert cluster.ssh("lab-2", f"cp {pki}/etcd-ca.crt {pki}/kubernetes-ca.crt").returncode == 0
    refused = cluster.deploy("reset", "lab-2", "--yes")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "reset refused, nothing was changed" in refused.stderr
    assert f"lab-2: its {pki}/kubernetes-ca.crt is not the CA in" in refused.stderr
    assert cluster.ssh("lab-2", "systemctl is-active kubelet").stdout.strip() == "active"

    forced = cluster.deploy("reset", "lab-2", "--yes", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    units = cluster.ssh("lab-2", "ls /etc/systemd/system").stdout.split()
    assert not [u for u in units if u.removesuffix(".service") in (*UNITS, "apiserver-lb")]
    existing = cluster.ssh("lab-2", " ; ".join(f"test -e {p} && echo {p}"
                                               for p in KUBESMITH_PATHS)).stdout.split()
    assert not existing, f"left behind: {existing}"
    processes = cluster.ssh("lab-2", "ps -eo comm=").stdout.split()
    assert not [p for p in processes if p.startswith(("kube", "flanneld", "containerd", "pause"))]
    links = cluster.ssh("lab-2", "ip -o link show").stdout
    assert "cni0" not in links and "flannel.1" not in links
    assert sorted(re.findall(r"\b(veth[0-9a-z]+)@", links)) == ["vethkeep0", "vethkeep1"], links
    rules = cluster.ssh("lab-2", "iptables-save").stdout
    assert not [line for line in rules.splitlines()
                if any(tag in line for tag in ("KUBE-", "FLANNEL", "CNI-"))]
    assert "-A INPUT -j KEEP-ME" in rules and "-A KEEP-ME -s 192.0.2.1/32 -j ACCEPT" in rules
    assert cluster.ssh("lab-2", "cat /var/lib/keep-me/file").stdout == "mine\n"
    assert cluster.ssh("lab-2", "ls -A /var/lib/containerd").stdout.split() == []
