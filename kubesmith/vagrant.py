"""Vagrant machines as pyinfra inventory groups (etcd, masters, nodes).

The Vagrantfile at the project root only creates the machines. This module recomputes the same
machine list from vagrant/settings.json and the same KUBESMITH_* environment variables, reads
SSH access from `vagrant ssh-config` and gives each host its private static IP as `address`.

Host keys: vagrant's ssh-config turns checking off (StrictHostKeyChecking no, UserKnownHostsFile
/dev/null). kubesmith pins them instead in a known_hosts file of their own, checked strictly like
any inventory: the first deploy pins each machine's key with `--trust-new-host-keys`, later ones
refuse a changed key. A machine recreated by `vagrant destroy` + `vagrant up` has a new key:
delete that file then.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubesmith.errors import UserError

HostEntry = tuple[str, dict[str, object]]

MAX_MASTERS = 9  # masters are <network>.11-.19, nodes start at .21
MAX_NODES = 234  # nodes end at <network>.254


class VagrantError(UserError):
    """Vagrant or its machines cannot give the inventory; the message says what to do."""


@dataclass(frozen=True)
class Machine:
    """One machine the Vagrantfile defines."""

    name: str
    role: str  # "masters" or "nodes"
    address: str  # the static IP on the private network
    iface: str = "eth1"  # the guest NIC carrying the private network


def parse_ssh_config(text: str) -> dict[str, dict[str, str]]:
    """Host blocks of ssh_config text: host -> lowercased option -> value (first one wins)."""
    hosts: dict[str, dict[str, str]] = {}
    options: dict[str, str] | None = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.replace("\t", " ").partition(" ")
        key, value = key.lower(), value.strip().strip('"')
        if key == "host":
            options = hosts.setdefault(value, {})
        elif options is not None:
            options.setdefault(key, value)
    return hosts


def _count(
    settings: Mapping[str, object], env: Mapping[str, str], key: str, low: int, high: int
) -> int:
    """A machine count from the environment or the settings, checked as the Vagrantfile does."""
    variable = f"KUBESMITH_{key.upper()}"
    raw = env.get(variable, settings[key])
    try:
        value = int(str(raw))
    except ValueError as error:
        raise VagrantError(f"{variable} must be an integer, got {raw!r}") from error
    if not low <= value <= high:
        raise VagrantError(f"{variable} must be in {low}..{high}, got {value}")
    return value


def machines(settings_path: Path, env: Mapping[str, str]) -> list[Machine]:
    """The machines the Vagrantfile defines for these settings and environment, masters first."""
    settings = json.loads(settings_path.read_text())
    n_masters = _count(settings, env, "masters", 1, MAX_MASTERS)
    n_nodes = _count(settings, env, "nodes", 0, MAX_NODES)
    network = str(env.get("KUBESMITH_NETWORK", settings["network"]))
    iface = str(env.get("KUBESMITH_PRIVATE_IFACE", settings.get("private_iface", "eth1")))
    try:
        ipaddress.IPv4Address(f"{network}.1")
    except ValueError as error:
        raise VagrantError(
            f"KUBESMITH_NETWORK must be three octets like 192.168.56, got {network}"
        ) from error
    return [
        Machine(f"master-{i}", "masters", f"{network}.{10 + i}", iface)
        for i in range(1, n_masters + 1)
    ] + [Machine(f"node-{i}", "nodes", f"{network}.{20 + i}", iface) for i in range(1, n_nodes + 1)]


def _host_data(
    machine: Machine, ssh: Mapping[str, str], known_hosts: Path | None
) -> dict[str, object]:
    """pyinfra host data of one machine: SSH via vagrant's forwarding, cluster on the private IP."""
    data: dict[str, object] = {
        "ssh_hostname": ssh["hostname"],
        "ssh_port": int(ssh.get("port", "22")),
        "ssh_user": ssh.get("user", "vagrant"),
        "ssh_key": ssh["identityfile"],
        "address": machine.address,
        "iface": machine.iface,
    }
    if data["ssh_user"] != "root":
        data["_sudo"] = True
    if known_hosts is not None:
        data["ssh_known_hosts_file"] = str(known_hosts)
    return data


def groups(
    ssh_config_text: str, machines: list[Machine], known_hosts: Path | None
) -> dict[str, list[HostEntry]]:
    """etcd (= masters), masters and nodes groups of the machines, SSH from `vagrant ssh-config`.

    A single machine (one master, no nodes) is in all three groups.
    """
    ssh = parse_ssh_config(ssh_config_text)
    missing = [m.name for m in machines if m.name not in ssh]
    if missing:
        raise VagrantError(
            f"no SSH config for {', '.join(missing)} (not created yet?): run `vagrant up`"
        )
    entries: dict[str, list[HostEntry]] = {"masters": [], "nodes": []}
    for machine in machines:
        data = _host_data(machine, ssh[machine.name], known_hosts)
        entries[machine.role].append((machine.name, data))
    if len(machines) == 1:  # one machine (KUBESMITH_NODES=0) is etcd, master and node at once
        return {"etcd": entries["masters"], "masters": entries["masters"],
                "nodes": entries["masters"]}
    return {"etcd": entries["masters"], "masters": entries["masters"], "nodes": entries["nodes"]}


def dotfile_dir(project: Path, env: Mapping[str, str]) -> Path:
    """Vagrant's state directory ($VAGRANT_DOTFILE_PATH or .vagrant); known_hosts lives there."""
    return project / env.get("VAGRANT_DOTFILE_PATH", ".vagrant")


def ssh_config_from_vagrant(cwd: Path) -> str:
    """The output of `vagrant ssh-config` for the Vagrantfile in cwd."""
    try:
        result = subprocess.run(
            ["vagrant", "ssh-config"], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError as error:
        raise VagrantError("vagrant is not installed (no `vagrant` on PATH)") from error
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        raise VagrantError(
            f"`vagrant ssh-config` failed in {cwd} (exit {result.returncode}); "
            f"run `vagrant up` if the machines are not created: {detail}"
        )
    return result.stdout
