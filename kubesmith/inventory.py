"""Load an inventory file into pyinfra's Inventory and kubesmith's Cluster model."""

from __future__ import annotations

import runpy
from pathlib import Path

from pyinfra.api import Inventory

from kubesmith import settings
from kubesmith.errors import UserError
from kubesmith.model import ROLES, Cluster, Host
from kubesmith.rules import printable

HostEntry = tuple[str, dict[str, object]]
Groups = dict[str, list[HostEntry]]


class InventoryError(UserError):
    """An inventory file that cannot be used; the message names the file and the problem."""


def load_groups(path: Path, files: dict[str, dict[str, object]] | None = None) -> Groups:
    """The groups an inventory file defines: module-level lists of names or (name, data), or
    pyinfra's (hosts, group data) tuples, with the group data files' data (files: group ->
    data, over the tuple's as pyinfra does); anything else in a role group is refused."""
    if not path.exists():
        raise InventoryError(f"inventory {path} not found")
    try:
        values = runpy.run_path(str(path))
    except (Exception, SystemExit) as error:  # an inventory is user code: report it as its own
        raise InventoryError(printable(f"inventory {path}: {type(error).__name__}: {error}")
                             ) from error
    files = files or {}
    groups: Groups = {}
    for name, value in values.items():
        if name.startswith("_") or not isinstance(value, list | tuple):
            continue
        entries = _entries(path, name, value, files.get(name, {}))
        if entries is not None:
            groups[name] = entries
    for name, data in files.items():  # (pyinfra makes a group of a file's data alone)
        if name not in groups and name not in ROLES and data:
            raise foreign_group_data(path, name, data)
    return groups


def foreign_group_data(source: object, group: str, data: dict) -> InventoryError:
    """The refusal of group data (pyinfra's `(hosts, {data})` form, or its group_data/<group>.py)
    in a group other than etcd, masters and nodes: pyinfra applies it to the hosts' connections
    while kubesmith reads host data only from those groups; both routes (`deploy.py up`, and
    pyinfra's CLI through kubesmith.pyinfra_cli) refuse it alike. A host's own entry's data is
    its data in any group, on both routes."""
    keys = ", ".join(sorted(map(str, data)))
    return InventoryError(printable(
        f"inventory {source}: `{group}` has group data ({keys}): kubesmith reads group data only "
        "for etcd, masters and nodes: move it there or into each host's own entry"))


def _entries(path: Path, group: str, value: list | tuple,
             from_file: dict[str, object]) -> list[HostEntry] | None:
    """A group's (name, data) entries; None for a list that is no host group (pyinfra ignores
    those too); InventoryError naming the group and entry for a malformed one, or for group data
    in a group other than the roles."""
    hosts, shared = value, {}
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], list) \
            and isinstance(value[1], dict):
        hosts, shared = value
    if group not in ROLES and not all(isinstance(i, str | tuple) for i in hosts):
        return None
    shared = {**shared, **from_file}
    if group not in ROLES and shared:
        raise foreign_group_data(path, group, shared)
    entries = []
    for number, item in enumerate(hosts, 1):
        if isinstance(item, str):
            entries.append((item, dict(shared)))
        elif isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[0], str) \
                and isinstance(item[1], dict):
            entries.append((item[0], {**shared, **item[1]}))
        else:
            raise InventoryError(printable(
                f"inventory {path}: `{group}` entry {number} {item!r:.60}: use a host name or "
                "(name, {data})"))
    return entries


def host_names(groups: Groups) -> list[str]:
    """Every host name, in first-seen order."""
    names: list[str] = []
    for entries in groups.values():
        names += [n for n, _ in entries if n not in names]
    return names


def host_data(groups: Groups) -> dict[str, dict[str, object]]:
    """Each host's data, merged over every group it is in."""
    merged: dict[str, dict[str, object]] = {}
    for entries in groups.values():
        for name, data in entries:
            merged.setdefault(name, {}).update(data)
    return merged


def to_cluster(groups: Groups, data: dict[str, object] | None = None) -> Cluster:
    """The cluster model of the inventory with group_data defaults."""
    data = data if data is not None else settings.group_data()
    per_host = host_data(groups)
    hosts = tuple(
        Host(
            name=name,
            address=str(per_host[name].get("address") or per_host[name].get("ssh_hostname")
                        or name),
            groups=frozenset(g for g in ROLES if name in {n for n, _ in groups.get(g, [])}),
            iface=per_host[name].get("iface"),  # type: ignore[arg-type]
        )
        for name in host_names(groups)
    )
    return Cluster(
        hosts=hosts,
        pod_cidr=str(data["pod_cidr"]),
        service_cidr=str(data["service_cidr"]),
        cluster_domain=str(data["cluster_domain"]),
        cluster_dns=str(data["cluster_dns"]),
        apiserver_endpoint=str(data.get("apiserver_endpoint") or ""),
    )


def to_pyinfra(groups: Groups, data: dict[str, object] | None = None,
               only: list[str] | None = None,
               override: dict[str, object] | None = None) -> Inventory:
    """A pyinfra Inventory with group_data as global data, optionally limited to some hosts;
    `override` wins over every host's own data (e.g. accept new host keys for one run)."""
    data = data if data is not None else settings.group_data()
    names = [n for n in host_names(groups) if only is None or n in only]
    per_host = host_data(groups)
    group_args = {
        group: ([(n, d) for n, d in entries if n in names], {})
        for group, entries in groups.items()
    }
    return Inventory(([(n, per_host[n]) for n in names], dict(data)),
                     override_data=dict(override or {}), **group_args)
