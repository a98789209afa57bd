"""The bootstrap's phases in order (the phase table), their readiness checks, and the same
phases as a plain pyinfra deploy for `pyinfra INVENTORY deploy.py`."""

from __future__ import annotations

import time

from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.operations import python

from kubesmith import paths
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Phase, retry
from tasks import (
    common,
    controlplane,
    etcd,
    flannel,
    node,
    pki,
    reset,
    runtime,
)


def etcd_ready(ctx: DeployContext, member: PyinfraHost) -> None:
    """Every etcd member healthy over TLS (asked from this member)."""
    retry(member, etcd.health_command(ctx), "etcd healthy on every member", 90)


def apiserver_ready(ctx: DeployContext, master: PyinfraHost) -> None:
    """/readyz answers ok on this master."""
    retry(master, controlplane.readyz_command(ctx), "kube-apiserver /readyz", 120)


def flannel_ready(ctx: DeployContext, pod_host: PyinfraHost) -> None:
    """flanneld holds a subnet lease on this host."""
    retry(pod_host, f"test -s {paths.FLANNEL_SUBNET_ENV}", "flannel subnet lease", 60)


def node_ready(ctx: DeployContext, node_host: PyinfraHost) -> None:
    """This node registered and Ready, as the operator's kubectl sees it."""
    deadline = time.monotonic() + 180
    while True:
        result = kubectl(ctx, "wait", "--for=condition=Ready", f"node/{node_host.name}",
                         "--timeout=5s")
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"node {node_host.name} not Ready within 180 s: "
                              f"{(result.stderr or result.stdout).strip()[-300:]}")
        time.sleep(1)


def cluster_config(ctx: DeployContext) -> None:
    """Once per cluster: RBAC on the first master, flannel's config in etcd via the first member."""
    if host.name == ctx.cluster.masters[0].name:
        controlplane.bootstrap_rbac(ctx)
    if host.name == ctx.cluster.etcd[0].name:
        flannel.network_config(ctx)


def _first_master_and_etcd(cluster: Cluster) -> tuple[Host, ...]:
    return tuple(dict.fromkeys((cluster.masters[0], cluster.etcd[0])))


HOSTS = Phase("hosts", lambda c: c.hosts, (common.deploy, pki.deploy))
ETCD = Phase("etcd", lambda c: c.etcd, (etcd.deploy,), ("etcd",), etcd_ready)
CONTROL_PLANE = Phase("control plane", lambda c: c.masters, (controlplane.deploy,),
                      controlplane.SERVICES, apiserver_ready)
CLUSTER_CONFIG = Phase("cluster config", _first_master_and_etcd, (cluster_config,))
NETWORK = Phase("network", lambda c: c.pod_hosts, (flannel.deploy,), ("flanneld",),
                flannel_ready)
NODES = Phase("nodes", lambda c: c.nodes, (runtime.deploy, node.deploy),
              ("containerd", "kubelet", "kube-proxy"), node_ready)
PHASES = (HOSTS, ETCD, CONTROL_PLANE, CLUSTER_CONFIG, NETWORK, NODES)

# A new member's first start: no all-members health check yet (it is a learner until promoted).
ETCD_JOIN = Phase("etcd join", lambda c: c.etcd, (etcd.deploy,), ("etcd",))
RESET = Phase("reset", lambda c: c.hosts, (reset.deploy,))


def _barrier(ctx: DeployContext, phase: Phase) -> None:
    """An op on every host that runs the phase's readiness check for this host, if in the phase:
    pyinfra's CLI runs each op on every host before the next, so no host goes on early."""
    def ready(ctx: DeployContext, phase: Phase) -> None:
        if phase.ready and _in(ctx, phase):
            phase.ready(ctx, host)
    python.call(name=f"{phase.name}: ready", function=ready, ctx=ctx, phase=phase)


def _in(ctx: DeployContext, phase: Phase) -> bool:
    return ctx.cluster.host(host.name) in phase.hosts(ctx.cluster)


def pyinfra_cli(ctx: DeployContext) -> None:
    """Every phase for the current host, each followed by a barrier on every host.

    pyinfra's CLI orders operations by the line numbers of their call stack, so each task is
    called from its own line, in phase order (a loop over PHASES would interleave them).
    """
    if _in(ctx, HOSTS):
        common.deploy(ctx)
        pki.deploy(ctx)
    _barrier(ctx, HOSTS)
    if _in(ctx, ETCD):
        etcd.deploy(ctx)
    _barrier(ctx, ETCD)
    if _in(ctx, CONTROL_PLANE):
        controlplane.deploy(ctx)
    _barrier(ctx, CONTROL_PLANE)
    if _in(ctx, CLUSTER_CONFIG):
        cluster_config(ctx)
    _barrier(ctx, CLUSTER_CONFIG)
    if _in(ctx, NETWORK):
        flannel.deploy(ctx)
    _barrier(ctx, NETWORK)
    if _in(ctx, NODES):
        runtime.deploy(ctx)
        node.deploy(ctx)
    _barrier(ctx, NODES)
