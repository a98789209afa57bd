"""`deploy.py remove-node`: cordon, drain, delete, leave etcd, reset; the rest drop the hosts."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith import membership
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Report, Runner
from kubesmith.workflows import reset, steps
from tasks.phases import RESET


def check_removable(cluster: Cluster, names: Sequence[str]) -> None:
    """Refuse to remove the last master or more etcd members than quorum allows."""
    for name in names:
        cluster.host(name)
    masters_left = [m for m in cluster.masters if m.name not in names]
    if cluster.masters and not masters_left:
        raise DeployError("refusing to remove the last master: "
                          f"{', '.join(m.name for m in cluster.masters)}")
    members = [h.name for h in cluster.etcd]
    leaving = [n for n in names if n in members]
    if leaving and len(leaving) > (len(members) - 1) // 2:
        raise DeployError(f"refusing to remove etcd member(s) {', '.join(leaving)}: "
                          f"{len(members)} members tolerate losing "
                          f"{(len(members) - 1) // 2}; remove fewer at a time")


def drain(ctx: DeployContext, name: str) -> None:
    """Cordon and drain a node, then delete its Node object."""
    kubectl(ctx, "cordon", name)
    drained = kubectl(ctx, "drain", name, "--ignore-daemonsets", "--force",
                      "--delete-emptydir-data", "--grace-period=5", "--timeout=60s", timeout=90)
    if drained.returncode != 0:
        raise DeployError(f"drain {name} failed: {drained.stderr.strip()[-300:]}")
    kubectl(ctx, "delete", "node", name, "--ignore-not-found")


def run(runner: Runner, names: Sequence[str]) -> Report:
    """Remove the hosts from the cluster; when they were members or masters, roll the others."""
    start = time.monotonic()
    ctx = runner.ctx
    check_removable(ctx.cluster, names)
    leaving: tuple[Host, ...] = tuple(ctx.cluster.host(n) for n in names)
    reset.check(runner, leaving)  # this cluster's hosts, with manifests: before any drain
    for me in leaving:
        if me.has("nodes"):
            runner.out(f"[remove] {me.name}: cordon, drain, delete node")
            drain(ctx, me.name)
        if me.has("etcd"):
            with membership.peer(runner, exclude=names) as peer:
                peer.leave(me)
    runner.run(RESET, leaving)
    remaining = ctx.cluster.without(set(names))
    if remaining.etcd:
        with membership.peer(runner, exclude=names) as peer:
            peer.forget_leases(leaving)
            # Their etcd users go: their flannel certificates open nothing any more.
            peer.grant_access(remaining)
    ctx.cluster = remaining
    if any(h.has("etcd") or h.has("masters") for h in leaving):
        steps.prepare_local(runner.ctx, runner.out)
        steps.roll(runner, ctx.cluster.hosts)
    steps.converge_addons(runner)
    return runner.finish(start, f"removed: {', '.join(names)}")
