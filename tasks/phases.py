"""The bootstrap's phases in order (the phase table), their readiness checks, and the same
phases as a plain pyinfra deploy for `pyinfra INVENTORY deploy.py`."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.context import ctx_host
from pyinfra.operations import python

from kubesmith import addons as addon_table
from kubesmith import balancer as balancer_state
from kubesmith import readiness
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import Phase, each, on_each, poll, retry, run_on
from tasks import (
    addons,
    balancer,
    common,
    controlplane,
    etcd,
    etcd_access,
    flannel,
    node,
    pki,
    reset,
    runtime,
)

# The node's clock and when its kubelet last started: `<epoch seconds> @<epoch seconds>`.
KUBELET_STARTED = ('echo "$(date +%s) $(systemctl show -p ActiveEnterTimestamp --timestamp=unix '
                   '--value kubelet)"')
# Seconds after a kubelet's start within which its add-on pods' Ready may predate it (they probe
# every 2 s; a kubelet that kept their readiness across its restart never reports them again).
REPROBE_GRACE = 15


def etcd_ready(ctx: DeployContext, member: PyinfraHost) -> None:
    """Every etcd member healthy over TLS (asked from this member)."""
    retry(member, etcd.health_command(ctx), "etcd healthy on every member", 90)


def apiserver_ready(ctx: DeployContext, master: PyinfraHost) -> None:
    """/readyz answers ok on this master."""
    retry(master, controlplane.readyz_command(ctx), "kube-apiserver /readyz", 120)


def flannel_ready(ctx: DeployContext, pod_host: PyinfraHost) -> None:
    """flanneld started (through systemd's restarts if need be) and holds a subnet lease here."""
    retry(pod_host, flannel.ready_command(), "flanneld running with a subnet lease",
          flannel.READY_TIMEOUT)


def balancer_ready(ctx: DeployContext, node_host: PyinfraHost, timeout: float = 60) -> None:
    """This node's balancer has every master as a backend, each passing its /readyz check."""
    def attempt() -> str | None:
        ok, stats = run_on(node_host, balancer_state.STATS_COMMAND)
        return balancer_state.problem(stats, ctx.cluster) if ok else "no statistics answer"

    poll(attempt, f"{node_host.name}: apiserver balancer ready", timeout)


def _kubelet_started(node_host: PyinfraHost) -> tuple[float, float]:
    """When this node's kubelet last started (epoch seconds, the node's clock; 0 when unknown)
    and how long ago."""
    _ok, text = run_on(node_host, KUBELET_STARTED)
    now, _, stamp = text.strip().partition(" @")
    started = float(stamp) if stamp.isdigit() and now.isdigit() else 0.0
    return started, float(now or 0) - started


def nodes_ready(ctx: DeployContext, node_hosts: Sequence[PyinfraHost]) -> None:
    """These nodes registered and Ready, as the operator's kubectl sees them; within
    REPROBE_GRACE of a kubelet's start, also the add-on pods on its node Ready since
    (readiness.unprobed): a re-run that restarted a kubelet ends with the add-ons serving.
    Each try reads every node in one `kubectl get` (and their pods in one more)."""
    names = [h.name for h in node_hosts]
    starts = dict(zip(names, each(node_hosts, _kubelet_started), strict=True))
    began = time.monotonic()

    def attempt() -> str | None:
        elapsed = time.monotonic() - began
        recent = {name: started for name, (started, age) in starts.items()
                  if started and age + elapsed < REPROBE_GRACE}
        return (readiness.not_ready(ctx, [f"node/{name}" for name in names])
                or (readiness.pods_probed(ctx, recent) if recent else None))
    poll(attempt, f"{', '.join(names)} Ready", 180)


def addons_ready(ctx: DeployContext, _masters: Sequence[PyinfraHost]) -> None:
    """The add-ons phase's readiness check (on the control machine, whatever the host)."""
    wait_for_addons(ctx)


def wait_for_addons(ctx: DeployContext) -> None:
    """Every add-on turned on is ready: its Deployments rolled out (every replica), its other
    objects (APIServices) Available; all read in one kubectl get per try."""
    names = [name for addon in addon_table.enabled(ctx.data) for name in addon.ready]
    if names:
        poll(lambda: readiness.not_ready(ctx, names, "kube-system"),
             f"add-ons ready ({', '.join(names)})", 180)


def cluster_config(ctx: DeployContext) -> None:
    """Once per cluster: RBAC on the first master; via the first member, flannel's config in
    etcd, then etcd's users and roles and authentication on."""
    if host.name == ctx.cluster.masters[0].name:
        controlplane.bootstrap_rbac(ctx)
    if host.name == ctx.cluster.etcd[0].name:
        flannel.network_config(ctx)
        etcd_access.deploy(ctx)


def _first_master_and_etcd(cluster: Cluster) -> tuple[Host, ...]:
    return tuple(dict.fromkeys((cluster.masters[0], cluster.etcd[0])))


HOSTS = Phase("hosts", lambda c: c.hosts, (common.deploy, pki.deploy))
ETCD = Phase("etcd", lambda c: c.etcd, (etcd.deploy,), ("etcd",), on_each(etcd_ready))
CONTROL_PLANE = Phase("control plane", lambda c: c.masters, (controlplane.deploy,),
                      controlplane.SERVICES, on_each(apiserver_ready))
CLUSTER_CONFIG = Phase("cluster config", _first_master_and_etcd, (cluster_config,))
NETWORK = Phase("network", lambda c: c.pod_hosts, (flannel.deploy,), ("flanneld",),
                on_each(flannel_ready))
BALANCERS = Phase("apiserver balancers", lambda c: c.nodes, (balancer.deploy,),
                  (balancer.SERVICE,), on_each(balancer_ready))
NODES = Phase("nodes", lambda c: c.nodes, (runtime.deploy, node.deploy),
              ("containerd", "kubelet", "kube-proxy"), nodes_ready)
# Applied from the control machine once the nodes are Ready; the first master only places the
# phase (its ops run locally, with the operator's kubeconfig).
ADD_ONS = Phase("add-ons", lambda c: c.masters[:1], (addons.deploy,), (), addons_ready)
PHASES = (HOSTS, ETCD, CONTROL_PLANE, CLUSTER_CONFIG, NETWORK, BALANCERS, NODES, ADD_ONS)
# A rolling converge's check after an etcd member changed: every apiserver serves again (its etcd
# client reconnected) before the next restart, so two outages never run into one.
APISERVERS_SERVING = Phase("apiservers serving", lambda c: c.masters, (),
                           controlplane.SERVICES, on_each(apiserver_ready))

# A new member's first start: no all-members health check yet (it is a learner until promoted).
ETCD_JOIN = Phase("etcd join", lambda c: c.etcd, (etcd.deploy,), ("etcd",))
RESET = Phase("reset", lambda c: c.hosts, (reset.deploy,))


def ready_here(ctx: DeployContext, phase: Phase) -> None:
    """Under pyinfra's CLI: the phase's readiness check for the current host, if in the phase.
    The check gets the host itself, not pyinfra's context `host`: it may run in other
    greenlets (on_each), where that context is unset."""
    if phase.ready and _in(ctx, phase):
        phase.ready(ctx, [ctx_host.get()])


def _barrier(ctx: DeployContext, phase: Phase) -> None:
    """An op on every host that runs the phase's readiness check for this host, if in the phase:
    pyinfra's CLI runs each op on every host before the next, so no host goes on early."""
    python.call(name=f"{phase.name}: ready", function=ready_here, ctx=ctx, phase=phase)


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
    if _in(ctx, BALANCERS):
        balancer.deploy(ctx)
    _barrier(ctx, BALANCERS)
    if _in(ctx, NODES):
        runtime.deploy(ctx)
        node.deploy(ctx)
    _barrier(ctx, NODES)
    if _in(ctx, ADD_ONS):
        addons.deploy(ctx)
    _barrier(ctx, ADD_ONS)
