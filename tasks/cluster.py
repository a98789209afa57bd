"""The bootstrap as a plain pyinfra deploy (`pyinfra INVENTORY deploy.py`).

pyinfra's CLI orders operations by the line numbers of their call stack, so each phase and task is
called from its own line, in order, and every host runs a readiness barrier between phases: no
host starts a phase before every host finished (and checked) the one before.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.operations import python

from kubesmith import settings
from kubesmith.context import DeployContext, state_dir
from kubesmith.deployer import PHASES, Phase, prepare_local
from kubesmith.inventory import to_cluster
from kubesmith.model import ROLES

_CONTEXTS: dict[int, DeployContext] = {}


def _inventory_path() -> Path:
    """The inventory file named on pyinfra's command line (for the state directory's name)."""
    for arg in sys.argv[1:]:
        if arg.endswith(".py") and Path(arg).name != "deploy.py" and os.path.exists(arg):
            return Path(arg)
    return Path("inventory.py")


def context() -> DeployContext:
    """The deploy context, built (and the local PKI prepared) once per pyinfra run."""
    if id(inventory) not in _CONTEXTS:
        groups = {
            role: [(h.name, {"address": h.data.get("address"),
                             "ssh_hostname": h.data.get("ssh_hostname"),
                             "iface": h.data.get("iface")})
                   for h in inventory.get_group(role, [])]
            for role in ROLES
        }
        data = settings.group_data()
        ctx = DeployContext(to_cluster(groups, data), data, state_dir(_inventory_path()))
        prepare_local(ctx, print)
        _CONTEXTS[id(inventory)] = ctx
    return _CONTEXTS[id(inventory)]


def _ready(ctx: DeployContext, phase: Phase) -> None:
    """Run the phase's readiness check for this host (at execution time)."""
    if phase.ready and ctx.cluster.host(host.name) in phase.hosts(ctx.cluster):
        phase.ready(ctx, host)


def _barrier(ctx: DeployContext, phase: Phase) -> None:
    python.call(name=f"{phase.name}: ready", function=_ready, ctx=ctx, phase=phase)


def _in(ctx: DeployContext, phase: Phase) -> bool:
    return ctx.cluster.host(host.name) in phase.hosts(ctx.cluster)


def run() -> None:
    """Every phase in order for the current host, each followed by a barrier."""
    ctx = context()
    hosts_, etcd_, control, config, network, nodes = PHASES
    if _in(ctx, hosts_):
        hosts_.tasks[0](ctx)
        hosts_.tasks[1](ctx)
    _barrier(ctx, hosts_)
    if _in(ctx, etcd_):
        etcd_.tasks[0](ctx)
    _barrier(ctx, etcd_)
    if _in(ctx, control):
        control.tasks[0](ctx)
    _barrier(ctx, control)
    if _in(ctx, config):
        config.tasks[0](ctx)
    _barrier(ctx, config)
    if _in(ctx, network):
        network.tasks[0](ctx)
    _barrier(ctx, network)
    if _in(ctx, nodes):
        nodes.tasks[0](ctx)
        nodes.tasks[1](ctx)
    _barrier(ctx, nodes)
