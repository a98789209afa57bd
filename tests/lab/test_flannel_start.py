"""flanneld started while etcd cannot answer it: the pyinfra-CLI deploy must still converge.

flanneld (Type=notify) reports ready only after it has read its network config and written its
subnet lease in etcd. When etcd cannot answer within systemd's start timeout (90 s by default),
or answers with an error, the start job fails ("Job for flanneld.service failed") although
systemd restarts flanneld (Restart=on-failure) and it comes up once etcd answers. Here etcd is
made unreachable for lab-3's flanneld from the moment its start begins, for longer than that
timeout: deterministically, by a drop-in and an iptables rule on the host (no hook in kubesmith).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.lab.conftest import PROJECT, Deployed

pytestmark = pytest.mark.lab

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


@pytest.fixture(scope="module")
def cluster(cluster_factory) -> Deployed:
    """3 hosts, 3 etcd members, bootstrapped by pyinfra's CLI (as in test_etcd_cluster)."""
    return cluster_factory(3, etcd=3, via_pyinfra_cli=True)


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
