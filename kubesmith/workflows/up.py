"""`deploy.py up`: bootstrap or converge the whole cluster, phase after phase."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith import membership
from kubesmith.runner import Report, Runner
from kubesmith.workflows import steps
from tasks.phases import PHASES


def run(runner: Runner, dry: bool = False, skip_preflight: bool = False) -> Report:
    """Every phase in order on every host; stops at the first failure."""
    start = time.monotonic()
    converge(runner, dry, skip_preflight)
    return runner.finish(start, f"kubeconfig: {runner.ctx.state / 'admin.kubeconfig'}", dry)


def converge(runner: Runner, dry: bool = False, skip_preflight: bool = False,
             names: Sequence[str] | None = None) -> None:
    """Preparation, preflight and every phase on every host (or only the named ones)."""
    cluster = runner.ctx.cluster
    runner.ctx.dry = dry
    steps.prepare_local(runner.ctx, runner.out, dry)
    if not skip_preflight:
        checked = time.monotonic()
        targets = tuple(h for h in cluster.hosts if names is None or h.name in names)
        steps.check_hosts(runner, targets, whole_cluster=names is None)
        runner.report.seconds["preflight"] = time.monotonic() - checked
    if names is not None and not dry:
        # The named hosts' etcd users, made through a member before their flanneld starts.
        with membership.peer(runner) as peer:
            peer.grant_access(cluster)
    for phase in PHASES:
        runner.run(phase, phase.on(cluster, names), dry)
