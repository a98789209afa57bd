"""An inventory with settings of its own (a group_data/all.py beside it) bootstraps another
service network without editing group_data/all.py, logging in as a user with sudo rather than
root; a node that is stopped (cleanly, then by a crash) and started again comes back with its
services and the cluster heals."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.lab.conftest import PROJECT, Deployed, missing_binaries

pytestmark = pytest.mark.lab

SETTINGS = 'service_cidr = "10.33.0.0/24"\ncluster_dns = "10.33.0.10"\n'
# The lab inventory, every host logged in to as `kube`, which becomes root through sudo.
HOSTS = (PROJECT / "inventories" / "lab.py").read_text() + (
    "\nfor _name, _data in etcd + masters + nodes:\n"
    "    _data.update(ssh_user='kube', _sudo=True)\n")
# A login user with passwordless sudo and the lab's client key (kubesmith's hosts need root).
SUDO_USER = ("useradd -m -s /bin/bash kube && install -d -m 700 -o kube -g kube ~kube/.ssh && "
             "install -m 600 -o kube -g kube /root/.ssh/authorized_keys ~kube/.ssh/ && "
             "echo 'kube ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/kube && "
             "chmod 440 /etc/sudoers.d/kube")
NODE_SERVICES = ("containerd", "flanneld", "kubelet", "kube-proxy")


@pytest.fixture(scope="module")
def cluster(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """Two lab hosts (lab-1 etcd+master, lab-2 node) bootstrapped from an inventory that sets
    its own service network."""
    if missing := missing_binaries():
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    lab_ = lab_factory(2)
    directory = Path(tmp_path_factory.mktemp("inventory"))
    (directory / "group_data").mkdir()
    (directory / "group_data" / "all.py").write_text(SETTINGS)
    (directory / "hosts.py").write_text(HOSTS)
    state = Path(tmp_path_factory.mktemp("state"))
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root), KUBESMITH_STATE=str(state))
    deployed = Deployed(lab_, state, env, "")
    for host in ("lab-1", "lab-2"):
        deployed.ssh_ok(host, SUDO_USER)
    deployed.inventory = directory / "hosts.py"
    first = deployed.deploy("up", "-i", str(deployed.inventory))
    assert first.returncode == 0, f"bootstrap failed:\n{first.stdout}\n{first.stderr}"
    return deployed


def test_group_data_all_py_is_untouched() -> None:
    changed = subprocess.run(["git", "status", "--porcelain", "group_data/all.py"], cwd=PROJECT,
                             capture_output=True, text=True, check=True).stdout
    assert changed == ""


def test_services_use_the_inventory_service_network(cluster: Deployed) -> None:
    assert cluster.kubectl("get", "service", "kubernetes", "-o",
                           "jsonpath={.spec.clusterIP}") == "10.33.0.1"
    kubelet = cluster.ssh("lab-2", "cat /var/lib/kubelet/config.yaml").stdout
    assert "10.33.0.10" in kubelet


def test_the_login_user_is_not_root_and_transfers_stay_private(cluster: Deployed) -> None:
    """Every SSH login of the deploy was kube's, and no transfer left a copy behind: with sudo,
    pyinfra copies each transfer through a temporary file, here in a 0700 `mktemp -d`
    directory of kube's removed afterwards (by default a /tmp/pyinfra-* file of the SFTP
    server's umask). A backup's download goes the same way."""
    backup = cluster.deploy("backup", "-i", str(cluster.inventory), "--dest",
                            str(cluster.state / "snapshots"))
    assert backup.returncode == 0, backup.stdout + backup.stderr
    for host in ("lab-1", "lab-2"):
        logins = cluster.ssh_ok(host, "journalctl -u ssh --no-pager -o cat | "
                                      "grep -o 'Accepted publickey for [a-z]*' | sort | uniq -c")
        assert "for kube" in logins, logins
        left = cluster.ssh_ok(host, "find /tmp /var/tmp -mindepth 1 -maxdepth 1 -user kube; "
                                    "ls -d /tmp/pyinfra-* 2>/dev/null; true")
        assert left == "", f"{host}: left behind:\n{left}"


def _services_active(cluster: Deployed, host: str) -> dict[str, str]:
    out = cluster.ssh(host, " ; ".join(f"echo {s} $(systemctl is-active {s})"
                                       for s in NODE_SERVICES)).stdout
    return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)


def _ready(cluster: Deployed, node: str) -> bool:
    conditions = json.loads(cluster.kubectl("get", "node", node, "-o", "json"))
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in conditions["status"]["conditions"])


@pytest.mark.parametrize("how", [(), ("--kill",)], ids=["shutdown", "crash"])
def test_a_stopped_node_comes_back_and_the_cluster_heals(cluster: Deployed, how: tuple) -> None:
    stopped = cluster.deploy("lab", "stop", "lab-2", *how)
    assert stopped.returncode == 0, stopped.stderr
    assert cluster.ssh("lab-2", "true").returncode != 0, "lab-2 still answers after lab stop"
    started = cluster.deploy("lab", "start", "lab-2")
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if set(_services_active(cluster, "lab-2").values()) == {"active"} and \
                _ready(cluster, "lab-2"):
            break
        time.sleep(2)
    assert _services_active(cluster, "lab-2") == dict.fromkeys(NODE_SERVICES, "active")
    assert _ready(cluster, "lab-2"), "lab-2 not Ready within 180 s of lab start"
    # The add-ons ran on lab-2 (the only node): healed means serving again, too.
    cluster.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns",
                    "--timeout=120s")
    cluster.kubectl("-n", "kube-system", "rollout", "status", "deployment/metrics-server",
                    "--timeout=120s")
    cluster.kubectl("wait", "--for=condition=Available", "apiservice/v1beta1.metrics.k8s.io",
                    "--timeout=120s")
    # Those statuses may predate the crash (a node back within its grace period never turned
    # NotReady): healed is the metrics API answering for lab-2 again.
    deadline = time.monotonic() + 120
    while "lab-2" not in cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes",
                                         check=False) and time.monotonic() < deadline:
        time.sleep(2)
    verify = cluster.deploy("verify", "-i", str(cluster.inventory))
    assert verify.returncode == 0, verify.stdout[-3000:]
