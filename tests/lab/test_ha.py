"""HA control plane on real lab hosts: two masters (lab-1, lab-2) behind the local balancer of
the node lab-3, three etcd members (quorum survives one host). Master 1 goes down while a reader
reads through the node's balancer; kubesmith's own API calls fail over too."""

from __future__ import annotations

import shlex
import subprocess
import time

import pytest

from kubesmith import balancer, inventory, settings
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.lab import hosts as lab
from kubesmith.lab import inventory as lab_inventory
from tests.lab.conftest import NODE_READ, longest_failure

pytestmark = pytest.mark.lab

NODE = "lab-3"
GAP_LIMIT = 10.0  # seconds of failed reads in a row through a node's balancer
READY_FOR = 60.0  # seconds the node must stay Ready after master 1 is gone
# Reads the node's own Node object with its kubelet credential, through 127.0.0.1:6444, twice a
# second for $1 seconds: one "<epoch seconds> ok|fail" line per read.
READER = (
    'end=$(( $(date +%s) + $1 )); while [ "$(date +%s)" -lt "$end" ]; do t=$(date +%s.%N); '
    f'if {NODE_READ}; then echo "$t ok"; else echo "$t fail"; fi; sleep 0.5; done'
)


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(3, etcd=3, masters=2)


def _stats(cluster, host: str = NODE) -> str:
    return cluster.ssh(host, balancer.STATS_COMMAND).stdout


def _main_pid(cluster, unit: str = "apiserver-lb.service") -> str:
    return cluster.ssh(NODE, f"systemctl show -p MainPID --value {unit}").stdout.strip()


@pytest.fixture(scope="module")
def ctx(cluster) -> DeployContext:
    """The deploy's context of the test cluster: its model, and kubesmith's own kubectl calls."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBESMITH_LAB_MASTERS", "2")
        patch.setenv("KUBESMITH_LAB_ETCD", "3")
        groups = lab_inventory.groups(cluster.lab.paths)
    data = settings.group_data()
    return DeployContext(inventory.to_cluster(groups, data), data, cluster.state, groups)


def test_node_balancer_has_every_master_up(cluster, ctx) -> None:
    assert [m.name for m in ctx.cluster.masters] == ["lab-1", "lab-2"]
    assert balancer.problem(_stats(cluster), ctx.cluster) is None, _stats(cluster)
    kubeconfig = cluster.ssh(NODE, "grep server: /etc/kubernetes/kubelet.kubeconfig").stdout
    assert "https://127.0.0.1:6444" in kubeconfig


def test_master_one_down_node_keeps_working(cluster, ctx) -> None:
    pid = _main_pid(cluster)
    command = f"sh -c {shlex.quote(READER)} reader 40"
    reader = subprocess.Popen([*cluster.lab.ssh_args(NODE), command], stdout=subprocess.PIPE,
                              text=True)
    time.sleep(8)
    stopped = time.time()
    lab.stop("lab-1", paths=cluster.lab.paths, log=lambda _msg: None)
    out, _ = reader.communicate(timeout=90)
    lines = [line for line in out.splitlines() if line.endswith((" ok", " fail"))]
    failed = [line for line in lines if line.endswith("fail")]
    gap = longest_failure(lines)
    marked = cluster.ssh(NODE, "journalctl -u apiserver-lb -o short-unix --no-pager "
                               "| grep 'apiservers/lab-1 is DOWN' | tail -1").stdout.split()
    down_after = float(marked[0]) - stopped if marked else float("nan")
    print(f"failover: lab-1 marked down {down_after:.1f} s after its stop began; {len(lines)} "
          f"reads through {NODE}'s balancer, {len(failed)} failed, longest failure {gap:.1f} s")
    assert len(lines) > 40 and [line for line in lines if float(line.split()[0]) > stopped]
    assert gap <= GAP_LIMIT, f"reads failed for {gap:.1f} s in a row: {failed}"
    stats = _stats(cluster)
    assert balancer.servers(stats) == {"lab-1": "DOWN", "lab-2": "UP"}, stats
    # kubesmith's own API calls: the admin kubeconfig names master 1; they fail over to lab-2.
    deadline = time.monotonic() + READY_FOR
    while time.monotonic() < deadline:
        ready = kubectl(ctx, "get", "node", NODE, "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
        assert ready.stdout == "True", f"{NODE} Ready={ready.stdout or ready.stderr}"
        time.sleep(5)
    assert _main_pid(cluster) == pid, "the balancer was restarted"


def test_master_one_back_rejoins_without_restarts(cluster) -> None:
    pid = _main_pid(cluster)
    lab.start("lab-1", paths=cluster.lab.paths, log=lambda _msg: None)
    deadline = time.monotonic() + 120
    while balancer.servers(_stats(cluster)) != {"lab-1": "UP", "lab-2": "UP"}:
        assert time.monotonic() < deadline, _stats(cluster)
        time.sleep(2)
    assert _main_pid(cluster) == pid


def test_rerun_changes_nothing_and_restarts_nothing(cluster) -> None:
    units = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld",
             "containerd", "apiserver-lb", "kubelet", "kube-proxy")
    hosts = ("lab-1", "lab-2", NODE)
    # A unit systemd is still restarting (a controller-manager that lost its lease when master 1
    # came back: `activating`, auto-restart) would enter `active` during the re-run: wait.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(cluster.ssh(
            h, f"systemctl is-active {' '.join(units)} | grep -qx activating").returncode == 0
            for h in hosts):
        time.sleep(1)
    before = {h: (cluster.started(h, units), cluster.restarts(h, units)) for h in hosts}
    result = cluster.deploy("up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 operations changed" in result.stdout, result.stdout
    after = {h: (cluster.started(h, units), cluster.restarts(h, units)) for h in hosts}
    # A unit systemd itself restarted (NRestarts up: e.g. a controller-manager that lost its
    # lease after master 1 came back) is not one `up` restarted.
    restarted = [f"{h} {u}" for h in hosts for u in units
                 if after[h][0][u] != before[h][0][u] and after[h][1][u] == before[h][1][u]]
    assert restarted == [], f"restarted by the re-run: {restarted}"


@pytest.mark.ha_drill
def test_removing_a_master_reloads_every_balancer(cluster) -> None:
    pid = _main_pid(cluster)
    result = cluster.deploy("remove-node", "lab-1", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert balancer.servers(_stats(cluster)) == {"lab-2": "UP"}
    assert _main_pid(cluster) == pid, "the balancer was restarted, not reloaded"
