"""`deploy.py up`: bootstrap or converge the whole cluster, phase after phase."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith import encryption, membership
from kubesmith.runner import Report, Runner
from kubesmith.workflows import rotate_encryption_key, steps
from tasks.phases import CONTROL_PLANE, ETCD, PHASES

# Phases whose restarts cost the cluster its service when they happen everywhere at once (etcd's
# quorum, every apiserver): on a cluster already running them, one host at a time.
ROLLING = (ETCD, CONTROL_PLANE)


def run(runner: Runner, dry: bool = False, skip_preflight: bool = False) -> Report:
    """Every phase in order on every host; stops at the first failure. Then Secrets move to a
    secretbox key when they are written with another provider (aescbc, from an earlier
    kubesmith), or an interrupted key rotation is finished."""
    start = time.monotonic()
    runner.read_ahead("up")
    converge(runner, dry, skip_preflight)
    ring = encryption.load(runner.ctx.pki.directory)
    if ring is not None and ring.needs_rotation:
        if dry:
            runner.out(f"[encryption] would rotate Secrets from {ring.primary.provider} "
                       f"{ring.primary.name} to a new {encryption.PROVIDER} key")
        else:
            rotate_encryption_key.rotate(runner)
    return runner.finish(start, f"kubeconfig: {runner.ctx.state / 'admin.kubeconfig'}", dry)


def converge(runner: Runner, dry: bool = False, skip_preflight: bool = False,
             names: Sequence[str] | None = None) -> None:
    """Preparation, preflight and every phase on every host (or only the named ones); etcd and
    the control plane one host at a time where they already run."""
    cluster = runner.ctx.cluster
    runner.ctx.dry = dry
    steps.prepare_local(runner.ctx, runner.out, dry)
    if not skip_preflight:
        targets = tuple(h for h in cluster.hosts if names is None or h.name in names)
        steps.check_hosts(runner, targets, whole_cluster=names is None)
    if names is not None and not dry:
        # The named hosts' etcd users, made through a member before their flanneld starts.
        with membership.peer(runner) as peer:
            peer.grant_access(cluster)
    rolling = {p.name for p in ROLLING if not dry and steps.serving(runner, p.on(cluster, names),
                                                                    p.services)}
    for phase in PHASES:
        hosts = phase.on(cluster, names)
        if phase is ETCD and phase.name in rolling:
            steps.roll_etcd(runner, hosts)
            continue
        if phase is ETCD and not dry:
            steps.expect_etcd_roll(runner, hosts)
        for group in ([(h,) for h in hosts] if phase.name in rolling else [hosts]):
            runner.run(phase, group, dry)
