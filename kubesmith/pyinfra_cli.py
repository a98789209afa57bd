"""The deploy context under pyinfra's CLI (`pyinfra INVENTORY deploy.py`): the same validation,
local preparation and preflight as `deploy.py up`, built once per pyinfra run."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from pyinfra import inventory

from kubesmith import context as context_mod
from kubesmith import settings
from kubesmith.context import DeployContext
from kubesmith.inventory import Groups, foreign_group_data
from kubesmith.model import ROLES
from kubesmith.runner import DeployError
from kubesmith.workflows import steps
from tasks import preflight

_CONTEXTS: dict[int, DeployContext] = {}
# pyinfra's CLI prepares hosts concurrently (greenlets under its monkey-patching): one at a time.
_LOCK = threading.Lock()


def _groups() -> Groups:
    """The role groups with each host's own and its group's data (not the global settings).
    Group data of another group (but `all`, whose data is the settings) is refused, as
    `deploy.py up` refuses it: pyinfra would apply it to the hosts, kubesmith would not read it."""
    name = _inventory_name()
    for group in inventory.groups:
        if group not in (*ROLES, "all") and (data := inventory.get_group_data(group)):
            raise foreign_group_data(_inventory_file(name), group, data)
    return {
        role: [(h.name, {**inventory.get_group_data(role), **inventory.get_host_data(h.name)})
               for h in inventory.get_group(role, [])]
        for role in ROLES
    }


def _inventory_name() -> str:
    """The inventory file's name: pyinfra's CLI adds a group of that name holding every host."""
    everyone = {h.name for h in inventory}
    for name, members in inventory.groups.items():
        if name not in (*ROLES, "all") and {h.name for h in members} == everyone:
            return name
    return "inventory"


def _inventory_file(name: str) -> str:
    """The inventory file on pyinfra's command line (its absolute path), else its name."""
    for arg in sys.argv[1:]:
        path = Path(arg)
        if path.suffix == ".py" and path.stem == name and path.is_file():
            return str(path.resolve())
    return name


def _unverified_hosts() -> list[str]:
    """Hosts pyinfra connected to without strict host key checking, unless the command line
    asked for it (`--data ssh_strict_host_key_checking=accept-new`, like --trust-new-host-keys).

    The project's group_data/all.py sets "yes" for pyinfra's CLI run from the project directory;
    elsewhere pyinfra's default (accept-new) applies and is refused here, before any upload."""
    key = "ssh_strict_host_key_checking"
    if inventory.get_override_data().get(key) == "accept-new":
        return []
    return [h.name for h in inventory if h.data.get(key) != "yes"]


def context() -> DeployContext:
    """Validate, make the local PKI, check the hosts: once per pyinfra run, then reused."""
    with _LOCK:
        return _context()


def _context() -> DeployContext:
    """The cached context, made on first use."""
    if id(inventory) not in _CONTEXTS:
        data = {**settings.group_data(), **inventory.get_data()}
        name = _inventory_name()
        ctx = context_mod.build(_groups(), data, name, source=_inventory_file(name))
        if unverified := _unverified_hosts():
            raise DeployError(
                f"{', '.join(unverified)}: host keys were not checked strictly: set "
                "ssh_strict_host_key_checking = \"yes\" (run pyinfra from the kubesmith directory,"
                " whose group_data/all.py does), or pass --data "
                "ssh_strict_host_key_checking=accept-new to trust and pin new keys")
        ctx.mirror = False  # no phase runner here to fill and serve it
        ctx.dry = "--dry" in sys.argv[1:]  # pyinfra's own flag: prepare only, change nothing
        steps.prepare_local(ctx, print, ctx.dry)
        issues = preflight.check(ctx, list(inventory.get_active_hosts()), whole_cluster=True,
                                 clocks={})
        if issues:
            raise DeployError(preflight.refusal(issues))
        _CONTEXTS[id(inventory)] = ctx
    return _CONTEXTS[id(inventory)]
