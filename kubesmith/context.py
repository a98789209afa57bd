"""What every task needs: the cluster model, settings, PKI, cached binaries and template values;
built in one place (`load`) for the CLI, the pyinfra-CLI path and verify."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from kubesmith import inventory, settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.errors import UserError
from kubesmith.model import Cluster, Host
from kubesmith.pki import CA_LIFETIME, LEAF_LIFETIME, PKI
from kubesmith.validate import ERROR, Problem, ValidationError, check

TEMPLATES = settings.PROJECT / "templates"


STATE_ROOT = settings.PROJECT / "state"  # $KUBESMITH_STATE_ROOT overrides it
# The file in a state directory naming the inventory that owns it (and its cluster_name).
OWNER = "owner.json"


class StateError(UserError):
    """A state directory that belongs to another inventory."""


def cluster_name(data: dict[str, object], inventory_name: str) -> str:
    """The cluster's name: group data `cluster_name`, else the inventory file's name."""
    return str(data.get("cluster_name") or inventory_name)


# An inventory file's name (stem) that may name its state directory: a plain file name, not
# hidden ('..py' has the stem '.', '...py' '..': state/.. is the state root's parent).
STEM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")


def _name_problem(data: dict[str, object], inventory_name: str) -> Problem | None:
    """An inventory file name that would name the state directory (cluster_name unset, no
    $KUBESMITH_STATE) must be a plain name (STEM)."""
    if data.get("cluster_name") or os.environ.get("KUBESMITH_STATE") or STEM.fullmatch(
            inventory_name):
        return None
    return Problem(ERROR, "cluster_name", f"unset, and the inventory's file name "
                                          f"{inventory_name!r} (the default) is no plain name "
                                          "(1-63 of A-Za-z0-9_.-, not starting with '.' or '-': "
                                          "it names the state directory): set cluster_name in "
                                          "group data, or rename the inventory")


def state_root() -> Path:
    """Where the clusters' state directories are: $KUBESMITH_STATE_ROOT, else state/."""
    return Path(os.environ.get("KUBESMITH_STATE_ROOT") or STATE_ROOT)


def state_dir(name: str) -> Path:
    """The control-side state of a cluster: $KUBESMITH_STATE (named outright), else
    <state root>/<cluster name>/."""
    if env := os.environ.get("KUBESMITH_STATE"):
        return Path(env)
    return state_root() / name


def owner(state: Path) -> str | None:
    """The inventory recorded as the state directory's owner (None: none recorded yet)."""
    try:
        return str(json.loads((state / OWNER).read_text())["inventory"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise StateError(f"{state / OWNER}: unreadable ({error}): it names the inventory "
                         "owning this state directory; fix or remove it") from error


def check_owner(state: Path, source: str, name: str, inventory_name: str) -> None:
    """Refuse a state directory another inventory owns, and a cluster_name that would start a
    new state (a new CA) while this inventory's state is still under its old name. A state
    directory named outright ($KUBESMITH_STATE, e.g. several inventories of one test lab) is
    the caller's choice: not checked."""
    if os.environ.get("KUBESMITH_STATE"):
        return
    found = owner(state)
    if found is not None and found != source:
        raise StateError(f"state directory {state} belongs to inventory {found}, not {source}: "
                         "two inventories would share a CA; give this one its own "
                         f"`cluster_name` (group data), or, if the inventory moved, put its path "
                         f"in {state / OWNER}")
    legacy = state_root() / inventory_name
    if name != inventory_name and not state.exists() and legacy.is_dir() \
            and owner(legacy) in (None, source):
        raise StateError(f"cluster_name {name!r}: {state} does not exist but {legacy} holds this "
                         f"inventory's state (its CAs): move it there (mv {legacy} {state}), or "
                         "remove cluster_name; kubesmith never starts a new CA silently")


def private_state(state: Path) -> None:
    """Make the state directory (it holds the CAs' keys and kubeconfigs with keys) 0700: created
    so whatever the umask, and tightened if it exists with a wider mode."""
    state.parent.mkdir(parents=True, exist_ok=True)
    state.mkdir(mode=0o700, exist_ok=True)
    if state.stat().st_mode & 0o777 != 0o700:
        try:
            os.chmod(state, 0o700)
        except OSError as error:
            raise StateError(f"state directory {state}: cannot make it private (0700): "
                             f"{error.strerror}") from error


def claim(ctx: DeployContext) -> None:
    """Make the state directory private and record the inventory as its owner (once, when
    first written)."""
    private_state(ctx.state)
    if owner(ctx.state) is None:
        (ctx.state / OWNER).write_text(json.dumps(
            {"inventory": ctx.inventory, "cluster_name": ctx.name}, indent=1) + "\n")


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
    # Artifacts come from the binary mirror, which the phase runner fills and serves
    # (tasks/mirror.py); pyinfra's CLI, without that runner, uploads them to every host.
    mirror: bool = True
    # The inventory (its file's absolute path) and the cluster's name, which keys the state.
    inventory: str = ""
    name: str = ""

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
        """The cluster PKI on the control machine, issuing with the settings' lifetimes."""
        return PKI(self.state / "pki", str(self.data.get("leaf_cert_lifetime", LEAF_LIFETIME)),
                   str(self.data.get("ca_cert_lifetime", CA_LIFETIME)))

    def lifetime(self, kind: str) -> timedelta:
        """The lifetime of a new leaf ("leaf") or CA ("ca") certificate."""
        return self.pki.leaf_lifetime if kind == "leaf" else self.pki.ca_lifetime

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


def build(groups: inventory.Groups, data: dict[str, object], inventory_name: str,
          warn: Callable[[str], None] = print, source: str = "") -> DeployContext:
    """Validate an inventory's groups and settings (raising on errors), check that its state
    directory is its own, and build its context. `source` identifies the inventory (its file's
    absolute path; default: its name)."""
    problems = check(groups, data)
    if (named := _name_problem(data, inventory_name)) is not None:
        problems.append(named)
    if any(p.level == ERROR for p in problems):
        raise ValidationError(problems)
    for warning in problems:
        warn(str(warning))
    name = cluster_name(data, inventory_name)
    state = state_dir(name)
    check_owner(state, source or inventory_name, name, inventory_name)
    return DeployContext(inventory.to_cluster(groups, data), data, state, groups,
                         inventory=source or inventory_name, name=name)


def load(path: Path, warn: Callable[[str], None] = print) -> DeployContext:
    """The context of an inventory file with its settings (the CLI's and verify's entry)."""
    return build(inventory.load_groups(path, settings.group_files(path)),
                 settings.group_data(path), path.stem, warn,
                 str(path.resolve()))
