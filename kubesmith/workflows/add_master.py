"""`deploy.py add-master`: bring up new masters, then roll the new apiserver SANs out."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith import membership
from kubesmith.runner import DeployError, Report, Runner
from kubesmith.workflows import steps


def run(runner: Runner, names: Sequence[str], skip_preflight: bool = False) -> Report:
    """Converge the new masters first, then every other host one at a time."""
    start = time.monotonic()
    new = steps.named(runner, names, "masters")
    steps.require_cluster(runner.ctx, "add-master")
    steps.prepare_local(runner.ctx, runner.out)
    if not skip_preflight:
        steps.check_hosts(runner, new, whole_cluster=False)
    in_etcd = [h for h in new if h.has("etcd")]
    if in_etcd:
        with membership.peer(runner, exclude=names) as peer:
            for me in in_etcd:
                if peer.member(me) is None:
                    raise DeployError(f"{me.name} is in `etcd` but not a member yet: "
                                      f"run `python deploy.py add-etcd {me.name}` first")
    steps.roll(runner, new + tuple(h for h in runner.ctx.cluster.hosts if h not in new))
    masters = ", ".join(h.name for h in runner.ctx.cluster.masters)
    return runner.finish(start, f"masters: {masters}")
