"""Opt-in (`pytest -m vagrant tests/vagrant`): one real VM through Vagrant + libvirt, then
`deploy.py up` and `deploy.py verify` on it as a user runs them, and the node is Ready.

The VM boots kubesmith's own box (built from the lab root filesystem, cached); it is etcd, master
and node at once (KUBESMITH_MASTERS=1 KUBESMITH_NODES=0). Vagrant's state and box store live in a
temporary directory; libvirtd is started by hand if it is not running, and afterwards the VM, the
networks, pools and volumes libvirt made, the iptables chains it added and ip_forward are all put
back as they were. Under software emulation (no usable KVM) this takes tens of minutes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesmith import libvirt_host, vagrant_box
from kubesmith.binaries import cache
from tests.lab.conftest import Deployed, missing_binaries

pytestmark = pytest.mark.vagrant

PROJECT = Path(__file__).resolve().parents[2]
VAGRANT_UP_TIMEOUT = 1800
DEPLOY_TIMEOUT = 3600
VERIFY_TIMEOUT = 1800


def skip_reason() -> str | None:
    """Why this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (libvirtd, loop devices and chroot for the box)"
    missing = libvirt_host.missing_packages() + vagrant_box.missing_tools()
    if missing:
        return f"needs: apt-get install {' '.join(sorted(set(missing)))}"
    binaries = missing_binaries()
    if binaries:
        return f"binary cache lacks {', '.join(binaries)}: run `python deploy.py binaries`"
    return None


def _timed(args: list[str], env: dict[str, str], timeout: int) -> tuple[float, str, int]:
    """Run a command in the project; (seconds, combined output, exit code)."""
    start = time.monotonic()
    result = subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)
    return time.monotonic() - start, result.stdout + result.stderr, result.returncode


class VM:
    """The Vagrant environment of the test: its variables and measured times."""

    def __init__(self, env: dict[str, str], state: Path) -> None:
        self.env, self.state = env, state
        self.times: dict[str, float] = {}

    def deploy(self, *args: str, timeout: int) -> tuple[float, str, int]:
        """`python deploy.py ARGS -i inventories/vagrant.py`, as a user runs it."""
        return _timed([sys.executable, str(PROJECT / "deploy.py"), *args,
                       "-i", str(PROJECT / "inventories" / "vagrant.py")], self.env, timeout)


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    """One VM (master-1: etcd + master + node) from `vagrant up`; destroyed afterwards."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("vagrant")
    start = time.monotonic()
    box = vagrant_box.ensure_box()
    box_seconds = time.monotonic() - start
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("KUBESMITH_", "VAGRANT_"))}
    env = {
        **clean,
        "VAGRANT_HOME": str(work / "vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(work / "dot"),
        "VAGRANT_DEFAULT_PROVIDER": "libvirt",
        "KUBESMITH_MASTERS": "1",
        "KUBESMITH_NODES": "0",
        "KUBESMITH_MEMORY": "3072",
        "KUBESMITH_CPUS": "2",
        "KUBESMITH_STATE": str(work / "state"),
        "KUBESMITH_CACHE": str(cache.default_root()),
        # Checks' timeouts x6: under software emulation the VM answers several times slower.
        "KUBESMITH_VERIFY_SLOWDOWN": os.environ.get("KUBESMITH_VERIFY_SLOWDOWN", "6"),
    }
    libvirt_file = work / "libvirt-host.json"
    libvirt_host.start(libvirt_file)
    machine = VM(env, work / "state")
    machine.times["box build (or cache hit)"] = box_seconds
    try:
        start = time.monotonic()
        env["KUBESMITH_BOX"] = vagrant_box.ensure_added(box, env)
        machine.times["vagrant box add"] = time.monotonic() - start
        seconds, output, code = _timed(["vagrant", "up", "--provider", "libvirt"], env,
                                       VAGRANT_UP_TIMEOUT)
        machine.times["vagrant up"] = seconds
        assert code == 0, f"vagrant up failed:\n{output}"
        yield machine
    finally:
        _timed(["vagrant", "destroy", "-f"], env, 600)
        left = libvirt_host.stop(libvirt_file)
        print(f"\nvagrant test timings (s): {json.dumps(machine.times)}", file=sys.stderr)
        assert not left, f"could not restore the machine: {left}"
        shutil.rmtree(work / "vagrant.d", ignore_errors=True)


def test_bootstrap_and_verify_one_vm(vm: VM) -> None:
    # As on a stock Debian VM: bridge netfilter not loaded; the hosts phase must load it.
    _seconds, output, code = _timed(["vagrant", "ssh", "master-1", "-c",
                                     "rmmod br_netfilter; test ! -e /proc/sys/net/bridge"],
                                    vm.env, 120)
    assert code == 0, f"could not unload br_netfilter on the VM:\n{output}"
    # A fresh VM: its host key is pinned on this first run (strict checking afterwards).
    seconds, output, code = vm.deploy("up", "--trust-new-host-keys", timeout=DEPLOY_TIMEOUT)
    vm.times["deploy up"] = seconds
    assert code == 0, f"deploy.py up failed:\n{output}"

    seconds, output, code = vm.deploy("verify", timeout=VERIFY_TIMEOUT)
    vm.times["deploy verify"] = seconds
    assert code == 0, f"deploy.py verify failed:\n{output}"

    kubectl = Deployed.kubectl_binary()
    result = subprocess.run(
        [str(kubectl), f"--kubeconfig={vm.state / 'admin.kubeconfig'}", "get", "node",
         "master-1", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True", f"master-1 Ready={result.stdout!r}"
    _seconds, output, code = _timed(["vagrant", "ssh", "master-1", "-c",
                                     "grep -w br_netfilter /proc/modules"], vm.env, 120)
    assert code == 0, f"br_netfilter not loaded by the deploy:\n{output}"
