"""`deploy.py add-etcd`: new etcd members join one at a time, the cluster serving throughout."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith import membership
from kubesmith.runner import Report, Runner
from kubesmith.workflows import steps


def run(runner: Runner, names: Sequence[str], skip_preflight: bool = False) -> Report:
    """Join each new member as a learner, promoted once in sync; then roll every host, one at a
    time and the new ones first, to the new member lists and SANs."""
    start = time.monotonic()
    new = steps.named(runner, names, "etcd")
    steps.require_cluster(runner.ctx, "add-etcd")
    steps.prepare_local(runner.ctx, runner.out)
    if not skip_preflight:
        steps.check_hosts(runner, new, whole_cluster=False)
    with membership.peer(runner, exclude=names) as peer:
        for me in new:
            peer.join(me)
    steps.roll(runner, new + tuple(h for h in runner.ctx.cluster.hosts if h not in new))
    members = ", ".join(h.name for h in runner.ctx.cluster.etcd)
    return runner.finish(start, f"etcd: {members}")
