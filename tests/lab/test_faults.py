"""Faults on real lab hosts: a killed deploy, an unreachable host, a tampered binary cache."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubesmith import balancer, settings
from kubesmith.binaries import cache
from tests.lab.conftest import PROJECT, TEST_SUBNET

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(3)


def test_killed_during_control_plane_phase_then_rerun_converges(cluster) -> None:
    cluster.kubectl("create", "configmap", "before-kill", "--from-literal=k=v")
    # Force the control plane phase to do work: an apiserver unit that must be re-rendered.
    cluster.ssh("lab-1", "sed -i 's/--v=1/--v=2/' /etc/systemd/system/kube-apiserver.service")
    proc = subprocess.Popen([sys.executable, str(PROJECT / "deploy.py"), "up"], env=cluster.env,
                            cwd=PROJECT, stdout=subprocess.PIPE, text=True)
    seen = []
    assert proc.stdout is not None
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("[control plane] lab-1"):
            time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "".join(seen)
    again = cluster.deploy("up")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cluster.kubectl("get", "configmap", "before-kill", "-o", "jsonpath={.data.k}") == "v"
    assert cluster.deploy("verify", "-k", "cluster or master").returncode == 0


def test_rerun_waits_for_a_master_its_balancer_saw_down_as_it_connected(cluster) -> None:
    # lab-2's balancer has lab-1 DOWN when the re-run reads lab-2 ahead (its checks rejected),
    # and UP again seconds later: the balancer check must ask again, not keep that first answer.
    lab1 = cluster.lab.state.host("lab-1").address
    rule = f"OUTPUT -p tcp -d {lab1} --dport 6443 -j REJECT --reject-with tcp-reset"
    cluster.ssh("lab-2", f"iptables -I {rule}")
    try:
        deadline = time.monotonic() + 30
        while balancer.servers(cluster.ssh("lab-2", balancer.STATS_COMMAND).stdout).get(
                "lab-1") != "DOWN":
            assert time.monotonic() < deadline, "lab-1 never marked DOWN on lab-2"
            time.sleep(0.5)
        lifted = cluster.ssh("lab-2", f"systemd-run --on-active=6 iptables -D {rule}")
        assert lifted.returncode == 0, lifted.stderr
        again = cluster.deploy("up")
    finally:
        cluster.ssh("lab-2", f"while iptables -D {rule}; do :; done")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[apiserver balancers] ok" in again.stdout


def test_unreachable_host_is_named_and_nothing_changes(cluster, tmp_path: Path) -> None:
    ghost = ipaddress.ip_network(TEST_SUBNET)[99]  # an address on the lab's bridge, no host
    inventory = tmp_path / "with_ghost.py"
    inventory.write_text(
        (PROJECT / "inventories" / "lab.py").read_text()
        + f'\nnodes = nodes + [("ghost", {{"ssh_hostname": "{ghost}", "address": "{ghost}",'
        ' "ssh_user": "root", "ssh_key": etcd[0][1]["ssh_key"],'
        ' "ssh_known_hosts_file": etcd[0][1]["ssh_known_hosts_file"]})]\n')
    before = cluster.ssh("lab-2", "systemctl show -p ActiveEnterTimestampMonotonic kubelet").stdout
    result = cluster.deploy("up", "-i", str(inventory))
    assert result.returncode != 0
    assert "ghost" in result.stderr and "cannot connect" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    after = cluster.ssh("lab-2", "systemctl show -p ActiveEnterTimestampMonotonic kubelet").stdout
    assert before == after
    assert cluster.deploy("up").returncode == 0


def test_tampered_cached_binary_is_refused_before_any_host(cluster, tmp_path: Path) -> None:
    versions = settings.versions()
    root = tmp_path / "cache"
    shutil.copytree(cache.default_root(), root, copy_function=os.link,
                    ignore=shutil.ignore_patterns("lab-rootfs"))
    kubelet = cache.component_dir(root, "kubernetes", versions["kubernetes_version"],
                                  cache.host_arch()) / "kubelet"
    kubelet.unlink()
    kubelet.write_bytes(b"#!/bin/sh\necho not kubelet\n")
    env = dict(cluster.env, KUBESMITH_CACHE=str(root))
    result = subprocess.run([sys.executable, str(PROJECT / "deploy.py"), "up"], env=env,
                            cwd=PROJECT, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr and str(kubelet) in result.stderr
    assert "[hosts]" not in result.stdout, "no host may be touched"
    real = cluster.ssh("lab-2", "kubelet --version").stdout
    assert versions["kubernetes_version"] in real
