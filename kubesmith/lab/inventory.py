"""The lab as a pyinfra inventory: groups of (name, host data) from the lab's state on disk."""

from __future__ import annotations

import os

from kubesmith.errors import UserError
from kubesmith.lab.state import LabPaths, load

HostEntry = tuple[str, dict[str, object]]


class NoLab(UserError):
    """No lab is recorded on this machine."""


def _count(variable: str, default: int) -> int:
    return int(os.environ.get(variable, default))


def groups(paths: LabPaths | None = None) -> dict[str, list[HostEntry]]:
    """etcd/masters/nodes groups over the lab hosts.

    Topology from the environment: KUBESMITH_LAB_ETCD members (default 1) and
    KUBESMITH_LAB_MASTERS (default 1) from the first hosts; every other host is a node.
    A one-host lab is etcd, master and node at once.
    """
    paths = paths or LabPaths()
    state = load(paths)
    if state is None or not state.hosts:
        raise NoLab(f"no lab recorded in {paths.root}: run `python deploy.py lab up` first")
    n_etcd = _count("KUBESMITH_LAB_ETCD", 1)
    n_masters = _count("KUBESMITH_LAB_MASTERS", 1)
    entries = [
        (h.name, {
            "ssh_hostname": h.address,
            "ssh_user": "root",
            "ssh_key": str(paths.ssh_key),
            "ssh_known_hosts_file": str(paths.known_hosts),
            "ssh_strict_host_key_checking": "yes",
            "address": h.address,
            "iface": "host0",
        })
        for h in state.hosts
    ]
    if len(entries) == 1:
        return {"etcd": entries, "masters": entries, "nodes": entries}
    return {
        "etcd": entries[:n_etcd],
        "masters": entries[:n_masters],
        "nodes": entries[n_masters:],
    }
