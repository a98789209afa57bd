"""Boot 3 real lab hosts; reach them with pyinfra and testinfra; run the cached binaries."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import testinfra

from kubesmith import settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.lab import hosts as lab
from kubesmith.lab.inventory import groups as lab_groups
from kubesmith.lab.state import load
from tests.lab.conftest import PROJECT, TEST_BRIDGE, missing_binaries

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
    lab_3 = three.state.host("lab-3").address
    ping = subprocess.run([*three.ssh_args("lab-1"), f"ping -c1 -W2 {lab_3}"],
                          capture_output=True, text=True, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    out = subprocess.run([*three.ssh_args("lab-1"), "ping -c1 -W2 192.0.2.1"],
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0, "lab hosts must not route beyond this machine"


def test_wrong_host_key_is_refused(three, tmp_path: Path) -> None:
    """Strict host key checking is real: a known_hosts with another key fails to connect."""
    lines = three.paths.known_hosts.read_text().splitlines()
    first, second = (f"{h.name},{h.address}" for h in three.state.hosts[:2])
    swapped = [lines[1].replace(second, first)]
    bad = tmp_path / "known_hosts"
    bad.write_text("\n".join(swapped) + "\n")
    result = subprocess.run(
        [*three.ssh_args("lab-1")[:3], "-o", f"UserKnownHostsFile={bad}", "lab-1", "true"],
        capture_output=True, text=True, check=False)
    assert result.returncode != 0
    assert "HOST IDENTIFICATION HAS CHANGED" in result.stderr, result.stderr


def test_cached_binaries_run_inside_a_host(three) -> None:
    # The conformance suite's optional binaries are test tools built on demand, not checked here.
    built = {n: c for n, c in COMPONENTS.items() if not (c.optional or c.image or c.debs)}
    missing = missing_binaries(built)
    if missing:
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    versions = settings.versions()
    values = dict(versions, etcd_bare=versions["etcd_version"].lstrip("v"),
                  runc_bare=versions["runc_version"].lstrip("v"))
    merged = Path(three.state.host("lab-2").merged)
    target = merged / "opt/kubesmith-test/bin"
    target.mkdir(parents=True, exist_ok=True)
    for name, component in built.items():
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
    archives = {f for c in built.values() if c.go for f, _dir in c.go.archives}
    every_binary = {f for c in built.values() for f in c.files} - archives
    assert checked == every_binary


@pytest.fixture(scope="module")
def two(lab_factory):
    """lab-1 and lab-2 (the module's lab: with `three` booted first, lab-3 runs too)."""
    return lab_factory(2)


def _run(booted, host: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run([*booted.ssh_args(host), command], capture_output=True, text=True,
                          timeout=60, check=False)


def _pid1_start(booted, host: str) -> str:
    """When the host's PID 1 started (clock ticks since the machine booted): a boot's id."""
    return _run(booted, host, "cut -d' ' -f22 /proc/1/stat").stdout.strip()


def _bridge_ports() -> set[str]:
    out = subprocess.run(["ip", "-br", "link", "show", "master", TEST_BRIDGE],
                         capture_output=True, text=True, check=True).stdout
    return {line.split()[0].split("@")[0] for line in out.splitlines()}


@pytest.mark.parametrize("kill", [False, True], ids=["shutdown", "crash"])
def test_stop_then_start_keeps_disk_address_and_host_key(two, kill: bool) -> None:
    """A stopped (or crashed) host is gone from the network and comes back as itself."""
    marker = f"/root/marker-{'crash' if kill else 'shutdown'}"
    assert _run(two, "lab-2", f"echo kept > {marker} && sync").returncode == 0
    known_hosts = two.paths.known_hosts.read_text()
    boot, ports = _pid1_start(two, "lab-2"), _bridge_ports()
    recorded = load(two.paths)
    assert recorded is not None
    veth = lab._host_veth(recorded.host("lab-2"))
    assert veth in ports, (veth, ports)
    said: list[str] = []
    lab.stop("lab-2", kill=kill, paths=two.paths, log=said.append)
    assert said == [f"lab: lab-2 {'killed (crash)' if kill else 'shut down'}"]
    assert _run(two, "lab-2", "true").returncode != 0, "a stopped host must not answer"
    assert _run(two, "lab-1", "hostname").stdout.strip() == "lab-1"
    row = {r["host"]: r for r in lab.status(two.paths)}["lab-2"]
    assert (row["process"], row["ssh"]) == ("stopped", "closed")
    assert not [x for x in lab.leftovers(two.paths, TEST_BRIDGE) if "lab-2" in x]
    assert _bridge_ports() == ports - {veth}, "the stopped host's veth must go"
    assert (two.paths.host_dir("lab-2") / "upper" / marker.lstrip("/")).exists()
    lab.stop("lab-2", paths=two.paths, log=said.append)
    assert said[-1] == "lab: lab-2 is already stopped"

    lab.start("lab-2", paths=two.paths, log=said.append)
    assert said[-1].startswith("lab: started lab-2 (")
    assert _run(two, "lab-2", f"cat {marker}").stdout == "kept\n"
    assert two.state.host("lab-2").address in _run(two, "lab-2", "ip -4 -o addr show host0").stdout
    running = _run(two, "lab-2", "systemctl is-system-running --wait").stdout.strip()
    assert running in ("running", "degraded")
    assert _pid1_start(two, "lab-2") != boot, "lab-2 must have booted again"
    assert two.paths.known_hosts.read_text() == known_hosts  # and strict checking let us in
    lab.start("lab-2", paths=two.paths, log=said.append)
    assert said[-1].startswith("lab: lab-2 is already running (pid ")


def test_stop_start_from_the_command_line(two) -> None:
    """deploy.py lab stop NAME --kill / start NAME, and an unknown name listing the known."""
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(two.paths.root))

    def deploy(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(PROJECT / "deploy.py"), "lab", *args],
                              capture_output=True, text=True, env=env, cwd=PROJECT,
                              timeout=180, check=False)

    unknown = deploy("stop", "lab-9")
    assert unknown.returncode == 1
    assert "no lab host named 'lab-9'; known: lab-1, lab-2" in unknown.stderr
    stopped = deploy("stop", "lab-2", "--kill")
    assert stopped.returncode == 0, stopped.stderr
    assert re.search(r"^lab-2 +\S+ +stopped +ssh closed$", stopped.stdout, re.M), stopped.stdout
    started = deploy("start", "lab-2")
    assert started.returncode == 0, started.stderr
    assert re.search(r"^lab-2 .* running \(pid \d+\) +ssh open$", started.stdout, re.M)
    assert _run(two, "lab-2", "hostname").stdout.strip() == "lab-2"


def test_teardown_leaves_nothing(lab_factory) -> None:
    """lab down removes every bridge, mount, cgroup, process and rule the lab made, including
    what a stopped host keeps (its disk)."""
    booted = lab_factory(3)
    lab.stop("lab-2", paths=booted.paths, log=lambda _m: None)
    assert lab.leftovers(booted.paths, TEST_BRIDGE), "a running lab must be visible"
    assert lab.down(booted.paths, log=lambda _m: None) == []
    assert lab.leftovers(booted.paths, TEST_BRIDGE) == []
