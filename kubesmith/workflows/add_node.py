"""`deploy.py add-node`: bring up new nodes only; no other host is connected to."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith.runner import DeployError, Report, Runner
from kubesmith.workflows import steps, up


def run(runner: Runner, names: Sequence[str], dry: bool = False,
        skip_preflight: bool = False) -> Report:
    """The bootstrap's phases on the named nodes alone, then the add-ons that follow the node
    count (from the control machine)."""
    for me in steps.named(runner, names, "nodes"):
        if me.has("etcd") or me.has("masters"):
            raise DeployError(f"{me.name} is an etcd member or master: add it with "
                              f"`add-etcd {me.name}` or `add-master {me.name}`")
    steps.require_cluster(runner.ctx, "add-node")
    start = time.monotonic()
    up.converge(runner, dry, skip_preflight, names)
    steps.converge_addons(runner, dry)
    return runner.finish(start, f"added: {', '.join(names)}", dry)
