"""What every task needs: the cluster model, settings, PKI, cached binaries and template values;
built in one place (`load`) for the CLI, the pyinfra-CLI path and verify."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubesmith import inventory, settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.model import Cluster, Host
from kubesmith.pki import PKI
from kubesmith.validate import validate

TEMPLATES = settings.PROJECT / "templates"


def state_dir(name: str) -> Path:
    """The control-side state of a cluster: $KUBESMITH_STATE or state/<inventory name>/."""
    if env := os.environ.get("KUBESMITH_STATE"):
        return Path(env)
    return settings.PROJECT / "state" / name


@dataclass
class DeployContext:
    """Inputs shared by every task of one deploy, and the restarts its changes call for."""

    cluster: Cluster
    data: dict[str, object]
    state: Path
    groups: inventory.Groups = field(default_factory=dict)
    # Per host, services whose certificates or kubeconfigs this deploy replaced: they restart
    # (or start) in their own, later phase, which consumes the entry.
    restarts: dict[str, set[str]] = field(default_factory=dict)
    # etcd members joining a running cluster: name -> ETCD_INITIAL_CLUSTER for their first start.
    joining: dict[str, str] = field(default_factory=dict)
    # Some etcd member still runs a peer certificate of an earlier kubesmith (CN = its host name):
    # members restarted meanwhile leave the peer CN check out, or they would refuse that member.
    etcd_old_peers: bool = False
    # A dry run: nothing is written locally either, so the PKI and binaries may not exist yet.
    dry: bool = False

    def need_restart(self, host_name: str, services: tuple[str, ...]) -> None:
        """Record that these services on the host read a replaced file."""
        self.restarts.setdefault(host_name, set()).update(services)

    def take_restart(self, host_name: str, service: str) -> bool:
        """Whether the service must restart for replaced files; the caller (re)starts it."""
        pending = self.restarts.get(host_name, set())
        if service in pending:
            pending.discard(service)
            return True
        return False

    @property
    def versions(self) -> dict[str, str]:
        """Every pinned `*_version` of the settings."""
        return settings.versions(self.data)

    @property
    def pki(self) -> PKI:
        """The cluster PKI on the control machine."""
        return PKI(self.state / "pki")

    def binary(self, component: str, file: str) -> str:
        """Local path of a cached binary at the version the settings pin."""
        version = str(self.data[COMPONENTS[component].version_key])
        directory = cache.component_dir(cache.default_root(), component, version,
                                        cache.host_arch())
        return str(directory / file)

    def values(self, host: Host) -> dict[str, object]:
        """Template values for one host: group data, its identity and cluster endpoints."""
        cluster = self.cluster
        return {
            **self.data,
            "host_name": host.name,
            "address": host.address,
            "iface": host.iface,
            "etcd_servers": cluster.etcd_client_urls,
            "etcd_endpoints": cluster.etcd_client_urls,
        }


def build(groups: inventory.Groups, data: dict[str, object], name: str,
          warn: Callable[[str], None] = print) -> DeployContext:
    """Validate an inventory's groups and settings (raising on errors) and build its context."""
    for warning in validate(groups, data):
        warn(str(warning))
    return DeployContext(inventory.to_cluster(groups, data), data, state_dir(name), groups)


def load(path: Path, warn: Callable[[str], None] = print) -> DeployContext:
    """The context of an inventory file with its settings (the CLI's and verify's entry)."""
    return build(inventory.load_groups(path), settings.group_data(path), path.stem, warn)
