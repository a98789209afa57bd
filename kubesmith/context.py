"""What every task needs: the cluster model, settings, PKI, cached binaries and template values."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from kubesmith import settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.model import Cluster, Host
from kubesmith.pki import PKI

TEMPLATES = settings.PROJECT / "templates"


def state_dir(inventory: Path) -> Path:
    """The control-side state of a cluster: $KUBESMITH_STATE or state/<inventory name>/."""
    if env := os.environ.get("KUBESMITH_STATE"):
        return Path(env)
    return settings.PROJECT / "state" / inventory.stem


@dataclass
class DeployContext:
    """Inputs shared by every task of one deploy."""

    cluster: Cluster
    data: dict[str, object]
    state: Path
    # Per host, the certificate/key/kubeconfig files whose content this deploy replaces: the
    # services that read them restart in their own (later) phase.
    replaced: dict[str, set[str]] = field(default_factory=dict)
    # etcd members joining a running cluster: name -> ETCD_INITIAL_CLUSTER for their first start.
    joining: dict[str, str] = field(default_factory=dict)

    def replaced_any(self, host_name: str, *prefixes: str) -> bool:
        """Whether a replaced file of this host starts with one of the prefixes."""
        return any(f.startswith(prefixes) for f in self.replaced.get(host_name, ()))

    @property
    def versions(self) -> dict[str, str]:
        """Every pinned `*_version` of the group data."""
        return {k: str(v) for k, v in self.data.items() if k.endswith("_version")}

    @property
    def pki(self) -> PKI:
        """The cluster PKI on the control machine."""
        return PKI(self.state / "pki")

    def template(self, component: str, name: str) -> str:
        """Path of a template file."""
        return str(TEMPLATES / component / name)

    def binary(self, component: str, file: str) -> str:
        """Local path of a cached, verified binary (verified once per deploy by the deployer)."""
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
