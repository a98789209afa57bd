"""A 3-member etcd cluster, bootstrapped with pyinfra's own CLI (`pyinfra INVENTORY deploy.py`);
last, its re-run waits out an etcd outage at flanneld's start.

flanneld started while etcd cannot answer it: the pyinfra-CLI deploy must still converge.

flanneld (Type=notify) reports ready only after it has read its network config and written its
subnet lease in etcd. When etcd cannot answer within systemd's start timeout (90 s by default),
or answers with an error, the start job fails ("Job for flanneld.service failed") although
systemd restarts flanneld (Restart=on-failure) and it comes up once etcd answers. Here etcd is
made unreachable for lab-3's flanneld from the moment its start begins, for longer than that
timeout: deterministically, by a drop-in and an iptables rule on the host (no hook in kubesmith)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kubesmith import encryption
from tests.lab.conftest import PROJECT, Deployed

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
    # The bootstrap ran with --diff: every file went through kubesmith's write, which pyinfra
    # names (the files a step writes) but never prints: no unit, no key, no encryption secret.
    assert "kube-apiserver unit" in cluster.first_up and "ExecStart=" not in cluster.first_up
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


HOST = "lab-3"
# Longer than systemd's default TimeoutStartSec (90 s): the first start attempt always fails.
OUTAGE_SECONDS = 100
RULE = "OUTPUT -p tcp --dport 2379 -j REJECT --reject-with tcp-reset"
MARK = "/run/kubesmith-test-etcd-outage"
DROP_IN = "/etc/systemd/system/flanneld.service.d/90-test-etcd-outage.conf"
# Only flanneld's first start on the host meets the outage (systemd's restarts do not renew it).
OUTAGE = (f"[Service]\nExecStartPre=/bin/sh -c 'test -e {MARK} && exit 0; touch {MARK}; "
          f"iptables -I {RULE}; systemd-run --unit=kubesmith-test-etcd-outage-end "
          f"--on-active={OUTAGE_SECONDS} iptables -D {RULE}'\n")


def _pyinfra_cli(cluster: Deployed) -> subprocess.CompletedProcess:
    """`pyinfra -y inventories/lab.py deploy.py` against the lab, as the bootstrap ran it."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "pyinfra"), "-y", "inventories/lab.py", "deploy.py"],
        capture_output=True, text=True, env=cluster.env, cwd=PROJECT, timeout=900, check=False)


def _ssh_ok(cluster: Deployed, command: str) -> str:
    """Run a command on the host under test; fail the test when it fails."""
    result = cluster.ssh(HOST, command)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result.stdout


def test_deploy_waits_out_an_etcd_outage_at_flanneld_start(cluster: Deployed) -> None:
    """The re-run starts lab-3's flanneld into the outage and still ends with it holding a lease."""
    _ssh_ok(cluster, "systemctl stop flanneld && mkdir -p /etc/systemd/system/flanneld.service.d"
                     f" && rm -f {MARK}")
    _ssh_ok(cluster, f"cat > {DROP_IN} <<'EOF'\n{OUTAGE}EOF\nsystemctl daemon-reload")
    since = _ssh_ok(cluster, "date '+%Y-%m-%d %H:%M:%S'").strip()
    try:
        result = _pyinfra_cli(cluster)
        journal = cluster.ssh(HOST, f"journalctl -u flanneld --since '{since}' --no-pager -o cat"
                              " | grep -v 'Batch elem'").stdout
        restarts = cluster.ssh(HOST, "systemctl show -p NRestarts --value flanneld").stdout
    finally:
        cluster.ssh(HOST, f"rm -f {DROP_IN} {MARK} && rmdir {Path(DROP_IN).parent}; "
                          "systemctl daemon-reload; "
                          "systemctl stop kubesmith-test-etcd-outage-end.timer; "
                          f"while iptables -D {RULE} 2>/dev/null; do :; done")
    output = result.stdout[-4000:] + result.stderr[-2000:]
    # The condition was created: flanneld's first start attempt did time out.
    assert "start operation timed out" in journal, journal[-3000:]
    assert result.returncode == 0, f"deploy failed:\n{output}\n{HOST} flanneld:\n{journal[-3000:]}"
    assert int(restarts) >= 1, journal[-3000:]
    assert "network: ready" in result.stdout + result.stderr
    state = _ssh_ok(cluster, "systemctl is-active flanneld; cat /run/flannel/subnet.env")
    assert state.startswith("active") and "FLANNEL_SUBNET=" in state, state
    address = cluster.lab.state.host(HOST).address
    leases = cluster.ssh("lab-1", ". /etc/kubernetes/etcdctl.env && etcdctl get --prefix "
                                  "/coreos.com/network/subnets/").stdout
    assert f'"PublicIP":"{address}"' in leases, leases
