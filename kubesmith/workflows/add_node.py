"""`deploy.py add-node`: bring up new nodes only; no other host is connected to."""

from __future__ import annotations

from collections.abc import Sequence

from kubesmith.runner import DeployError, Report, Runner
from kubesmith.workflows import steps, up


def run(runner: Runner, names: Sequence[str], dry: bool = False,
        skip_preflight: bool = False) -> Report:
    """The bootstrap's phases on the named nodes alone."""
    for me in steps.named(runner, names, "nodes"):
        if me.has("etcd") or me.has("masters"):
            raise DeployError(f"{me.name} is an etcd member or master: add it with "
                              f"`add-etcd {me.name}` or `add-master {me.name}`")
    return up.run(runner, dry, skip_preflight, names)
