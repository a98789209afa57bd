"""A 3-member etcd cluster, bootstrapped with pyinfra's own CLI (`pyinfra INVENTORY deploy.py`)."""

from __future__ import annotations

import pytest

from kubesmith import encryption

pytestmark = pytest.mark.lab

ETCDCTL = ". /etc/kubernetes/etcdctl.env && etcdctl "


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(3, etcd=3, via_pyinfra_cli=True)


def _etcd_servers(cluster) -> str:
    """The client URLs of the three members, from the lab's addresses."""
    return ",".join(f"https://{cluster.lab.state.host(h).address}:2379"
                    for h in ("lab-1", "lab-2", "lab-3"))


def test_pyinfra_cli_ran_every_phase_barrier(cluster) -> None:
    for phase in ("hosts", "etcd", "control plane", "cluster config", "network", "nodes",
                  "add-ons"):
        assert f"{phase}: ready" in cluster.first_up
    assert "PRIVATE KEY" not in cluster.first_up


def test_pyinfra_diff_shows_no_key_material(cluster) -> None:
    # The bootstrap ran with --diff: files.put printed the files it created (units, configs)...
    assert "Will create" in cluster.first_up and "ExecStart=" in cluster.first_up
    # ...but keys, kubeconfigs and the encryption config went through kubesmith's upload.
    secret = encryption.load(cluster.state / "pki").primary.secret
    assert secret not in cluster.first_up and "PRIVATE KEY" not in cluster.first_up


def test_every_member_healthy_over_tls(cluster) -> None:
    members = cluster.ssh("lab-1", ETCDCTL + "member list -w simple").stdout
    assert sorted(line.split(", ")[2] for line in members.splitlines()) == [
        "lab-1", "lab-2", "lab-3"]
    endpoints = _etcd_servers(cluster)
    health = cluster.ssh("lab-2", f". /etc/kubernetes/etcdctl.env && "
                         f"ETCDCTL_ENDPOINTS={endpoints} etcdctl endpoint health")
    assert health.returncode == 0, health.stdout + health.stderr
    assert (health.stdout + health.stderr).count("is healthy") == 3


def test_componentstatuses_healthy(cluster) -> None:
    """Kubernetes 1.34 reports one etcd entry per storage backend (its client spans every
    member), so per-member health is asserted with etcdctl above."""
    out = cluster.kubectl("get", "componentstatuses", "--no-headers")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert rows == {"scheduler": "Healthy", "controller-manager": "Healthy", "etcd-0": "Healthy"}
    unit = cluster.ssh("lab-1", "cat /etc/systemd/system/kube-apiserver.service").stdout
    assert f"--etcd-servers={_etcd_servers(cluster)}" in unit


def test_nodes_ready(cluster) -> None:
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-2", "node/lab-3", "--timeout=60s")


def test_deploy_up_after_pyinfra_cli_changes_nothing(cluster) -> None:
    again = cluster.deploy("up")
    assert again.returncode == 0, again.stderr
    assert "0 operations changed" in again.stdout, again.stdout


def test_stopped_member_is_named_and_cluster_keeps_serving(cluster) -> None:
    assert cluster.ssh("lab-3", "systemctl stop etcd").returncode == 0
    cluster.kubectl("create", "configmap", "during-outage", "--from-literal=ok=yes")
    assert "yes" in cluster.kubectl("get", "configmap", "during-outage",
                                    "-o", "jsonpath={.data.ok}")
    failing = cluster.deploy("verify", "-k", "etcd")
    assert failing.returncode != 0
    table = failing.stdout
    assert any(line.split()[:3] == ["lab-3", "etcd_service", "FAIL"]
               for line in table.splitlines()), table
    assert any(line.split()[:3] == ["lab-3", "etcd_endpoint_healthy", "FAIL"]
               for line in table.splitlines()), table
    assert any(line.split()[:3] == ["lab-1", "etcd_service", "PASS"]
               for line in table.splitlines()), table
    repaired = cluster.deploy("up")
    assert repaired.returncode == 0, repaired.stderr
    assert "lab-3: etcd running and enabled" in repaired.stdout
    verified = cluster.deploy("verify")
    assert verified.returncode == 0, verified.stdout[-4000:]
