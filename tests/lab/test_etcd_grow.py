"""Growing the control plane while the cluster serves: etcd 1 -> 3 members, one member removed,
then a second master added."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from kubesmith.context import DeployContext
from kubesmith.lab import hosts as lab
from kubesmith.model import Cluster
from kubesmith.settings import group_data
from tasks import etcd
from tests.lab.conftest import TEST_BRIDGE, TEST_SUBNET

pytestmark = pytest.mark.lab

# etcdctl commands as the deploy builds them (they need only group data).
CTX = DeployContext(Cluster(()), group_data(), Path())
SERVING_GAP_LIMIT = 10.0  # seconds: "no error longer than a few seconds"


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(3, etcd=1)


class Reader(threading.Thread):
    """Reads a ConfigMap through the apiserver twice a second; records when reads fail."""

    def __init__(self, cluster) -> None:
        super().__init__(daemon=True)
        self.cluster, self.stop = cluster, threading.Event()
        self.results: list[tuple[float, bool]] = []

    def run(self) -> None:
        kubeconfig = f"--kubeconfig={self.cluster.state / 'admin.kubeconfig'}"
        while not self.stop.is_set():
            started = time.monotonic()
            read = subprocess.run([str(self.cluster.kubectl_binary()), kubeconfig, "get",
                                   "configmap", "probe", "-o", "name", "--request-timeout=3s"],
                                  capture_output=True, text=True, check=False)
            self.results.append((started, read.returncode == 0))
            time.sleep(max(0.0, 0.5 - (time.monotonic() - started)))

    def longest_gap(self) -> float:
        """The longest time from a failed read to the next successful one."""
        longest, failing_since = 0.0, None
        for at, ok in self.results:
            if not ok and failing_since is None:
                failing_since = at
            elif ok and failing_since is not None:
                longest, failing_since = max(longest, at - failing_since), None
        if failing_since is not None:
            return float("inf")
        return longest


def _serving_while(cluster, *args: str) -> tuple[subprocess.CompletedProcess, Reader]:
    """Run `deploy.py ARGS` while a Reader reads the cluster."""
    reader = Reader(cluster)
    reader.start()
    try:
        result = cluster.deploy(*args)
    finally:
        time.sleep(2)  # reads after the command show whether the cluster came back
        reader.stop.set()
        reader.join()
    return result, reader


def _members(cluster) -> list[etcd.Member]:
    return etcd.members(cluster.ssh("lab-1", etcd.etcdctl(CTX, "member list -w simple")).stdout)


def _unit(cluster, host: str, unit: str) -> str:
    return cluster.ssh(host, f"systemctl cat {unit}").stdout


def test_grow_etcd_from_one_to_three_while_serving(cluster) -> None:
    cluster.kubectl("create", "configmap", "probe", "--from-literal=k=v")
    addresses = [h.address for h in cluster.lab.state.hosts]
    assert [m.name for m in _members(cluster)] == ["lab-1"]
    etcd_started = cluster.started("lab-1", ("etcd",))

    cluster.env["KUBESMITH_LAB_ETCD"] = "3"
    grown, reader = _serving_while(cluster, "add-etcd", "lab-2", "lab-3")
    assert grown.returncode == 0, grown.stdout + grown.stderr
    assert "added as learner" in grown.stdout and "promoted to voting member" in grown.stdout

    members = _members(cluster)
    assert sorted(m.name for m in members) == ["lab-1", "lab-2", "lab-3"]
    assert all(m.started and not m.learner for m in members), members
    endpoints = ",".join(f"https://{a}:2379" for a in addresses)
    health = cluster.ssh("lab-1", etcd.etcdctl(CTX, "endpoint health", endpoints))
    assert health.returncode == 0, health.stdout + health.stderr
    for address in addresses:
        assert f"https://{address}:2379" in _unit(cluster, "lab-1", "kube-apiserver")
        assert f"https://{address}:2379" in _unit(cluster, "lab-2", "flanneld")
    assert cluster.started("lab-1", ("etcd",)) == etcd_started, "the first member was restarted"

    gap = reader.longest_gap()
    print(grown.stdout[-3000:])
    print(f"reads: {len(reader.results)}, longest failing stretch {gap:.1f} s")
    assert sum(ok for _t, ok in reader.results) > 10
    assert gap < SERVING_GAP_LIMIT, f"reads failed for {gap:.1f} s while growing etcd"
    verify = cluster.deploy("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_remove_one_member_while_serving(cluster) -> None:
    gone = cluster.lab.state.hosts[2].address
    removed, reader = _serving_while(cluster, "remove-node", "lab-3", "--yes")
    assert removed.returncode == 0, removed.stdout + removed.stderr
    assert sorted(m.name for m in _members(cluster)) == ["lab-1", "lab-2"]
    assert f"https://{gone}:2379" not in _unit(cluster, "lab-1", "kube-apiserver")
    assert f"https://{gone}:2379" not in _unit(cluster, "lab-2", "flanneld")
    assert "lab-3" not in cluster.kubectl("get", "nodes", "--no-headers")
    cluster.kubectl("create", "configmap", "after-removal", "--from-literal=k=v")
    gap = reader.longest_gap()
    print(removed.stdout[-3000:])
    print(f"reads: {len(reader.results)}, longest failing stretch {gap:.1f} s")
    assert gap < SERVING_GAP_LIMIT, f"reads failed for {gap:.1f} s while removing a member"


INVENTORY = """from kubesmith.lab.inventory import groups
from kubesmith.lab.state import LabPaths

_hosts = dict(h for group in groups(LabPaths(__import__("pathlib").Path({root!r}))).values()
              for h in group)
etcd = [(n, _hosts[n]) for n in ("lab-1", "lab-2")]
masters = [(n, _hosts[n]) for n in ("lab-1", "lab-4")]
nodes = [(n, _hosts[n]) for n in ("lab-2",)]
"""


def test_add_a_master_while_serving(cluster, tmp_path) -> None:
    new = lab.up(4, TEST_SUBNET, cluster.lab.paths, log=lambda _m: None,
                 bridge=TEST_BRIDGE).hosts[3].address
    inventory = tmp_path / "two-masters.py"
    inventory.write_text(INVENTORY.format(root=str(cluster.lab.paths.root)))
    added, reader = _serving_while(cluster, "add-master", "lab-4", "-i", str(inventory))
    assert added.returncode == 0, added.stdout + added.stderr
    ready = cluster.kubectl(f"--server=https://{new}:6443", "get", "--raw", "/readyz")
    assert ready.strip() == "ok"  # served by lab-4, its certificate valid for its address
    endpoints = cluster.kubectl("get", "endpointslices", "-l",
                                "kubernetes.io/service-name=kubernetes", "-o",
                                "jsonpath={.items[*].endpoints[*].addresses[*]}").split()
    assert new in endpoints and cluster.lab.state.hosts[0].address in endpoints, endpoints
    sans = cluster.ssh("lab-1", "openssl x509 -noout -ext subjectAltName -in "
                       f"{group_data()['pki_dir']}/kube-apiserver.crt").stdout
    assert new in sans, f"lab-1's apiserver certificate was not rolled: {sans}"
    gap = reader.longest_gap()
    print(added.stdout[-3000:])
    print(f"reads: {len(reader.results)}, longest failing stretch {gap:.1f} s")
    assert gap < SERVING_GAP_LIMIT, f"reads failed for {gap:.1f} s while adding a master"
