"""Boot 3 real lab hosts; reach them with pyinfra and testinfra; run the cached binaries."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import testinfra

from kubesmith import settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.lab import hosts as lab
from kubesmith.lab.inventory import groups as lab_groups
from tests.lab.conftest import TEST_BRIDGE, missing_binaries

pytestmark = pytest.mark.lab

# binary -> (command inside the host, text its output must contain); {v} is the pinned version.
VERSION_CHECKS = {
    "kube-apiserver": ("kube-apiserver --version", "Kubernetes {kubernetes_version}"),
    "kube-controller-manager": ("kube-controller-manager --version",
                                "Kubernetes {kubernetes_version}"),
    "kube-scheduler": ("kube-scheduler --version", "Kubernetes {kubernetes_version}"),
    "kubelet": ("kubelet --version", "Kubernetes {kubernetes_version}"),
    "kube-proxy": ("kube-proxy --version", "Kubernetes {kubernetes_version}"),
    "kubectl": ("kubectl version --client", "Client Version: {kubernetes_version}"),
    "etcd": ("etcd --version", "etcd Version: {etcd_bare}"),
    "etcdctl": ("etcdctl version", "etcdctl version: {etcd_bare}"),
    "etcdutl": ("etcdutl version", "etcdutl version: {etcd_bare}"),
    "flanneld": ("flanneld --version", "{flannel_version}"),
    "flannel": ("CNI_COMMAND=VERSION flannel", "supportedVersions"),
    "bridge": ("CNI_COMMAND=VERSION bridge", "supportedVersions"),
    "host-local": ("CNI_COMMAND=VERSION host-local", "supportedVersions"),
    "loopback": ("CNI_COMMAND=VERSION loopback", "supportedVersions"),
    "portmap": ("CNI_COMMAND=VERSION portmap", "supportedVersions"),
    "containerd": ("containerd --version", "{containerd_version}"),
    "containerd-shim-runc-v2": ("containerd-shim-runc-v2 -v", "{containerd_version}"),
    "ctr": ("ctr --version", "{containerd_version}"),
    "runc": ("runc --version", "runc version {runc_bare}"),
    "crictl": ("crictl --version", "crictl version {crictl_version}"),
    "kube-bench": ("kube-bench version", "{kube_bench_version}"),
}


@pytest.fixture(scope="module")
def three(lab_factory):
    return lab_factory(3)


def test_hosts_have_own_identity_and_systemd(three) -> None:
    """pyinfra reaches every host over ssh (known_hosts enforced) and sees systemd as PID 1."""
    from pyinfra.api import Config, State
    from pyinfra.api.connect import connect_all, disconnect_all
    from pyinfra.facts.server import Command, Hostname

    from kubesmith.inventory import to_pyinfra

    inventory = to_pyinfra(lab_groups(three.paths), {})
    state = State(inventory, Config())
    connect_all(state)
    try:
        assert len(state.activated_hosts) == 3
        seen = {}
        for host in inventory:
            seen[host.name] = host.get_fact(Hostname)
            assert host.get_fact(Command, "cat /proc/1/comm") == "systemd"
            assert host.get_fact(Command, "systemctl is-system-running") in ("running",)
        assert seen == {"lab-1": "lab-1", "lab-2": "lab-2", "lab-3": "lab-3"}
    finally:
        disconnect_all(state)


def test_testinfra_over_openssh_with_known_hosts(three) -> None:
    """testinfra's ssh backend (OpenSSH, strict host keys) sees sshd and the host's own IP."""
    for host in three.state.hosts:
        remote = testinfra.get_host(f"ssh://{host.name}", ssh_config=str(three.paths.ssh_config))
        assert remote.service("ssh").is_running
        assert remote.check_output("hostname") == host.name
        assert host.address in remote.check_output("ip -4 -o addr show dev host0")
        assert remote.system_info.distribution == "debian"


def test_hosts_reach_each_other_but_not_outside(three) -> None:
    ping = subprocess.run([*three.ssh_args("lab-1"), "ping -c1 -W2 10.241.0.13"],
                          capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    out = subprocess.run([*three.ssh_args("lab-1"), "ping -c1 -W2 192.0.2.1"],
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0, "lab hosts must not route beyond this machine"


def test_wrong_host_key_is_refused(three, tmp_path: Path) -> None:
    """Strict host key checking is real: a known_hosts with another key fails to connect."""
    lines = three.paths.known_hosts.read_text().splitlines()
    swapped = [lines[1].replace("lab-2,10.241.0.12", "lab-1,10.241.0.11")]
    bad = tmp_path / "known_hosts"
    bad.write_text("\n".join(swapped) + "\n")
    result = subprocess.run(
        [*three.ssh_args("lab-1")[:3], "-o", f"UserKnownHostsFile={bad}", "lab-1", "true"],
        capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr, result.stderr


def test_cached_binaries_run_inside_a_host(three) -> None:
    missing = missing_binaries(COMPONENTS)
    if missing:
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    versions = settings.versions()
    values = dict(versions, etcd_bare=versions["etcd_version"].lstrip("v"),
                  runc_bare=versions["runc_version"].lstrip("v"))
    merged = Path(three.state.host("lab-2").merged)
    target = merged / "opt/kubesmith-test/bin"
    target.mkdir(parents=True, exist_ok=True)
    for name, component in COMPONENTS.items():
        if component.image:
            continue
        directory = cache.component_dir(cache.default_root(), name,
                                        versions[component.version_key], cache.host_arch())
        for file in component.files:
            shutil.copy2(directory / file, target / file)
    checked = set()
    for binary, (command, expected) in VERSION_CHECKS.items():
        result = subprocess.run(
            [*three.ssh_args("lab-2"), f"cd /opt/kubesmith-test/bin && PATH=$PWD:$PATH {command}"],
            capture_output=True, text=True, check=False)
        output = result.stdout + result.stderr
        assert expected.format(**values) in output, f"{binary}: {output}"
        checked.add(binary)
    archives = {f for c in COMPONENTS.values() if c.go for f, _dir in c.go.archives}
    every_binary = {f for c in COMPONENTS.values() if not c.image for f in c.files} - archives
    assert checked == every_binary


def test_teardown_leaves_nothing(lab_factory) -> None:
    """lab down removes every bridge, mount, cgroup, process and rule the lab made."""
    booted = lab_factory(3)
    assert lab.leftovers(booted.paths, TEST_BRIDGE), "a running lab must be visible"
    assert lab.down(booted.paths, log=lambda _m: None) == []
    assert lab.leftovers(booted.paths, TEST_BRIDGE) == []
