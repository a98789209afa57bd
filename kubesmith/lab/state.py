"""The lab's state on disk, so that `lab down` can clean up even after a crash."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_SUBNET = "10.240.0.0/24"
DEFAULT_BRIDGE = "kslab0"
FIRST_HOST_OCTET = 11


def default_dir() -> Path:
    """The lab directory: $KUBESMITH_LAB_DIR, else /var/lib/kubesmith/lab."""
    return Path(os.environ.get("KUBESMITH_LAB_DIR", "/var/lib/kubesmith/lab"))


@dataclass
class LabHost:
    """One lab host as it was launched."""

    name: str
    address: str
    pid: int = 0
    merged: str = ""
    cgroups: list[str] = field(default_factory=list)


@dataclass
class LabState:
    """Everything the lab created on this machine."""

    subnet: str = DEFAULT_SUBNET
    bridge: str = DEFAULT_BRIDGE
    gateway: str = ""
    rootfs: str = ""
    hosts: list[LabHost] = field(default_factory=list)

    @property
    def prefix_len(self) -> int:
        """The subnet's prefix length."""
        return int(self.subnet.split("/")[1])

    def host(self, name: str) -> LabHost:
        """The host of that name."""
        for host in self.hosts:
            if host.name == name:
                return host
        raise KeyError(f"no lab host named {name!r}")


class LabPaths:
    """The files of one lab directory."""

    def __init__(self, directory: Path | None = None) -> None:
        self.root = directory or default_dir()
        self.state = self.root / "state.json"
        self.ssh_key = self.root / "id_ed25519"
        self.known_hosts = self.root / "known_hosts"
        self.ssh_config = self.root / "ssh_config"
        self.hosts = self.root / "hosts"

    def host_dir(self, name: str) -> Path:
        """Per-host directory: overlay upper/work/merged, containerd data, console log."""
        return self.hosts / name


def load(paths: LabPaths) -> LabState | None:
    """The recorded state, or None when no lab is recorded."""
    if not paths.state.exists():
        return None
    raw = json.loads(paths.state.read_text())
    hosts = [LabHost(**h) for h in raw.pop("hosts", [])]
    return LabState(**raw, hosts=hosts)


def save(paths: LabPaths, state: LabState) -> None:
    """Write the state atomically."""
    paths.root.mkdir(parents=True, exist_ok=True)
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, paths.state)
