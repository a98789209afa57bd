"""`deploy.py upgrade`: read what runs on every host, print the plan, refuse before any change
when the move is unsafe; then etcd snapshot, etcd members, masters, nodes (cordon, drain,
upgrade, Ready, uncordon), each one at a time, through the bootstrap's own phases."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from kubesmith import backup, rules, upgrade, versions
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.model import Host
from kubesmith.runner import DeployError, Report, Runner, journal, run_on
from kubesmith.upgrade import HostVersions, NodeState, Plan
from kubesmith.workflows import steps
from tasks import etcd
from tasks.phases import (
    ADD_ONS,
    BALANCERS,
    CLUSTER_CONFIG,
    CONTROL_PLANE,
    ETCD,
    HOSTS,
    NETWORK,
    NODES,
)

UPGRADING = "kubesmith.io/upgrading"  # on a node this upgrade cordoned, until it uncordons it
DRAIN_TIMEOUT = 300
READY_TIMEOUT = 180
VERSION_TIMEOUT = 120  # a restarted daemon's process at the target version
# The Leases (kube-system) of the control plane's leader-elected daemons. A stopped
# controller-manager does not release its Lease: its restarted successor waits out the lease
# duration (60 s) before leading, and a drain in that window evicts pods that nothing replaces
# and that stay in the Service's EndpointSlices after they die.
LEADERS = ("kube-controller-manager", "kube-scheduler")
LEADER_TIMEOUT = 180
STAGE_PHASES = {
    "etcd": (HOSTS, ETCD),
    "masters": (HOSTS, CONTROL_PLANE, NETWORK),
    "nodes": (HOSTS, NETWORK, BALANCERS, NODES),
}


def run(runner: Runner, inventory: str, dry: bool = False, to: str | None = None) -> Report:
    """Plan (refusing before any change), then upgrade stage by stage, host by host."""
    start = time.monotonic()
    ctx = runner.ctx
    if to is not None:
        if not rules.version(to):
            raise DeployError(rules.printable(f"upgrade: --to {to!r} is not a version like "
                                              "v1.2.3"))
        if to == ctx.data["kubernetes_version"]:
            to = None  # the settings pin it already
        else:
            ctx.data = {**ctx.data, "kubernetes_version": to}
    ctx.dry = dry
    plan, targets = check(runner, inventory, to)
    for line in (*plan.lines, *(f"step {n}. {s}" for n, s in
                                enumerate(upgrade.steps(plan), 1))):
        runner.out(f"[upgrade] {line}")
    warn_deprecated(runner, targets)
    steps.prepare_local(ctx, runner.out, dry)
    if dry:
        return runner.finish(start, "upgrade plan only (--dry)", dry=True)
    if not plan.empty:
        dest = backup.default_dest(ctx)
        timed(runner, "snapshot", lambda: runner.out(
            f"[upgrade] etcd snapshot: {backup.snapshot(runner, dest)}"))
    for name in plan.etcd:
        timed(runner, "etcd", lambda n=name: converge(runner, "etcd", n, targets))
    for name in plan.masters:
        timed(runner, "masters", lambda n=name: upgrade_master(runner, n, targets))
    runner.run(CLUSTER_CONFIG, CLUSTER_CONFIG.on(ctx.cluster))
    for name in plan.nodes:
        timed(runner, "nodes", lambda n=name: upgrade_node(runner, n, targets))
    timed(runner, "add-ons", lambda: runner.run(ADD_ONS, ADD_ONS.on(ctx.cluster)))
    left = [f"{h.host}: {', '.join(upgrade.behind(h, targets, h.running))}"
            for h in read_hosts(runner) if upgrade.behind(h, targets, h.running)]
    if left:
        raise DeployError("upgrade incomplete, still behind: " + "; ".join(left))
    warn_deprecated(runner, targets)
    runner.out("[upgrade] wall time: " + ", ".join(
        f"{k.removeprefix('upgrade ')} {v:.1f} s" for k, v in runner.report.seconds.items()
        if k.startswith("upgrade ")))
    return runner.finish(start, f"every host runs kubernetes {ctx.data['kubernetes_version']}, "
                                f"etcd {ctx.data['etcd_version']}")


def check(runner: Runner, inventory: str,
          to: str | None) -> tuple[Plan, dict[str, versions.Version]]:
    """Read the hosts and the cluster's health; raise one line per reason to refuse."""
    ctx = runner.ctx
    read = read_hosts(runner)
    keys = {k: v for h in ctx.cluster.hosts for k, v in versions.watched(ctx.cluster, h).items()}
    targets = versions.targets(ctx.data, keys)
    problems = upgrade.version_refusals(read, targets)
    nodes: list[NodeState] = []
    if not problems and (line := upgrade.cache_refusal(uncached(ctx), inventory, to)):
        problems = [line]
    if not problems:
        nodes = node_states(ctx)
        problems = upgrade.health_refusals(ctx.cluster, nodes, etcd_problem(runner))
    if problems:
        raise DeployError("upgrade refused, nothing was changed: " + "\n  ".join(problems))
    return upgrade.plan(ctx.cluster, read, targets, nodes), targets


def read_hosts(runner: Runner) -> list[HostVersions]:
    """What every host runs, read from its running processes."""
    ctx = runner.ctx
    found = []
    with runner.connect("upgrade: read versions", ctx.cluster.hosts) as connected:
        for remote in connected:
            me = ctx.cluster.host(remote.name)
            _ok, output = run_on(remote, versions.probe(ctx.cluster, me, str(ctx.data["bin_dir"])))
            found.append(HostVersions(me.name, versions.parse(output)))
    order = [h.name for h in ctx.cluster.hosts]
    return sorted(found, key=lambda h: order.index(h.host))


def uncached(ctx: DeployContext) -> dict[str, str]:
    """Components `up` installs whose pinned version is not complete in the binary cache."""
    root, arch = cache.default_root(), cache.host_arch()
    missing = {}
    for name, component in COMPONENTS.items():
        version = ctx.versions[component.version_key]
        if component.deployed and not cache.is_complete(
                cache.component_dir(root, name, version, arch), component.files):
            missing[name] = version
    return missing


def node_states(ctx: DeployContext) -> list[NodeState]:
    """Every node as the apiserver reports it."""
    result = kubectl(ctx, "get", "nodes", "-o", "json")
    if result.returncode != 0:
        raise DeployError(f"upgrade refused, nothing was changed: cannot list nodes: "
                          f"{result.stderr.strip()[-300:]}")
    return upgrade.node_states(result.stdout, UPGRADING)


def etcd_problem(runner: Runner) -> str | None:
    """None when every etcd member answers healthy (asked from the first member)."""
    ctx = runner.ctx
    with runner.connect("upgrade: etcd health", ctx.cluster.etcd[:1]) as connected:
        ok, output = run_on(connected[0], etcd.health_command(ctx))
    return None if ok else output.strip()[-300:]


def warn_deprecated(runner: Runner, targets: dict[str, versions.Version]) -> None:
    """Warn of objects still requested through APIs the target release removes (the apiserver's
    apiserver_requested_deprecated_apis metric)."""
    target = targets.get("kube-apiserver")
    result = kubectl(runner.ctx, "get", "--raw", "/metrics")
    if target is None or result.returncode != 0:
        return
    for line in upgrade.removed_apis(result.stdout, target):
        runner.out(f"[upgrade] warning: {line}")


def timed(runner: Runner, stage: str, action: Callable[[], None]) -> None:
    """Run one step of a stage, adding its wall time to the report under `upgrade STAGE`."""
    began = time.monotonic()
    try:
        action()
    finally:
        key = f"upgrade {stage}"
        runner.report.seconds[key] = runner.report.seconds.get(key, 0.0) + time.monotonic() - began


def converge(runner: Runner, stage: str, name: str, targets: dict[str, versions.Version]) -> None:
    """One host's phases of a stage (each waits for its readiness), then its versions checked."""
    me = runner.ctx.cluster.host(name)
    runner.out(f"[upgrade] {stage}: {name}")
    for phase in STAGE_PHASES[stage]:
        if me in phase.hosts(runner.ctx.cluster):
            try:
                runner.run(phase, (me,))
            except DeployError as error:
                raise DeployError(f"upgrade stopped at {name} ({stage}): {error}\nfix it, then "
                                  "re-run the same command: hosts at the target are skipped") \
                    from error
    # A restarted daemon may still be starting (or in systemd's restart delay): wait for it.
    deadline = time.monotonic() + VERSION_TIMEOUT
    while True:
        now = host_versions(runner, me)
        still = upgrade.behind(now, targets, upgrade.STAGES[stage])
        if not still:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"upgrade stopped at {name} ({stage}): after its upgrade, "
                              + ", ".join(f"{c} runs {now.running[c] or 'nothing'}"
                                          for c in still)
                              + f" (target {', '.join(str(targets[c]) for c in still)})")
        time.sleep(3)


def upgrade_master(runner: Runner, name: str, targets: dict[str, versions.Version]) -> None:
    """One master's phases and versions, then its leader-elected daemons leading again."""
    converge(runner, "masters", name, targets)
    wait_leaders(runner, name)


def wait_leaders(runner: Runner, name: str) -> None:
    """Each leader-elected daemon's Lease renewed after the master's restart: a live leader
    (the stopped process can no longer renew), so that controllers replace evicted pods and
    update endpoints before any node is drained."""
    first = {lease: lease_renewed(runner.ctx, lease) for lease in LEADERS}
    pending = set(LEADERS)
    deadline = time.monotonic() + LEADER_TIMEOUT
    while pending:
        time.sleep(2)
        for lease in sorted(pending):
            now = lease_renewed(runner.ctx, lease)
            if not first[lease]:
                first[lease] = now  # unread so far: a renewal is a change from what is read now
            elif now and now != first[lease]:
                pending.discard(lease)
        if pending and time.monotonic() > deadline:
            raise DeployError(f"upgrade stopped at {name} (masters): no leader renewed the "
                              f"Lease kube-system/{', '.join(sorted(pending))} within "
                              f"{LEADER_TIMEOUT} s of the restart: is it running?")
    runner.out(f"[upgrade] masters: {name}: {' and '.join(LEADERS)} leading")


def lease_renewed(ctx: DeployContext, lease: str) -> str:
    """A Lease's last renewal time as the apiserver reports it ("" when it cannot be read)."""
    result = kubectl(ctx, "get", "lease", "-n", "kube-system", lease, "-o",
                     "jsonpath={.spec.renewTime}")
    return result.stdout.strip() if result.returncode == 0 else ""


def host_versions(runner: Runner, me: Host) -> HostVersions:
    """What one host runs now."""
    ctx = runner.ctx
    with runner.connect("upgrade: read versions", (me,)) as connected:
        _ok, output = run_on(connected[0], versions.probe(ctx.cluster, me,
                                                          str(ctx.data["bin_dir"])))
    return HostVersions(me.name, versions.parse(output))


def upgrade_node(runner: Runner, name: str, targets: dict[str, versions.Version]) -> None:
    """Cordon (marked as this upgrade's), drain, upgrade, wait Ready at the target, uncordon."""
    ctx = runner.ctx
    state = next(n for n in node_states(ctx) if n.name == name)
    if not state.unschedulable:
        _kubectl(ctx, "annotate", "node", name, f"{UPGRADING}={ctx.data['kubernetes_version']}",
                 "--overwrite")
        _kubectl(ctx, "cordon", name)
    runner.out(f"[upgrade] nodes: {name}: cordoned, draining")
    drain(ctx, name)
    converge(runner, "nodes", name, targets)
    wait_ready_at(runner, name, str(targets["kubelet"]))
    if state.upgrading or not state.unschedulable:
        _kubectl(ctx, "uncordon", name)
        _kubectl(ctx, "annotate", "node", name, f"{UPGRADING}-")
        runner.out(f"[upgrade] nodes: {name}: Ready at {targets['kubelet']}, uncordoned")


def _kubectl(ctx: DeployContext, *args: str) -> None:
    """kubectl that must succeed."""
    result = kubectl(ctx, *args)
    if result.returncode != 0:
        raise DeployError(f"kubectl {' '.join(args)}: {result.stderr.strip()[-300:]}")


def drain(ctx: DeployContext, name: str) -> None:
    """Evict the node's pods through the eviction API (PodDisruptionBudgets respected); fail
    naming the node and kubectl's last words (the pods it could not evict) after the timeout."""
    result = kubectl(ctx, "drain", name, "--ignore-daemonsets", "--delete-emptydir-data",
                     f"--timeout={DRAIN_TIMEOUT}s", timeout=DRAIN_TIMEOUT + 60)
    if result.returncode != 0:
        last = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise DeployError(f"upgrade stopped at {name} (nodes): drain not finished within "
                          f"{DRAIN_TIMEOUT} s: {last}\nthe node stays cordoned; re-run the same "
                          "command once the pods can move")


def wait_ready_at(runner: Runner, name: str, version: str) -> None:
    """The node Ready with its kubelet reporting the target version (a restarted kubelet that
    fails keeps the old report: the node is not counted as upgraded)."""
    deadline = time.monotonic() + READY_TIMEOUT
    seen = "not read"
    while time.monotonic() < deadline:
        result = kubectl(runner.ctx, "get", "node", name, "-o", "json")
        if result.returncode == 0:
            node = json.loads(result.stdout)
            state = upgrade.node_state(node, UPGRADING)
            seen = f"Ready={state.ready}, kubelet {node['status']['nodeInfo']['kubeletVersion']}"
            if state.ready and node["status"]["nodeInfo"]["kubeletVersion"] == version:
                return
        time.sleep(2)
    me = runner.ctx.cluster.host(name)
    with runner.connect("upgrade: journal", (me,)) as connected:
        logs = journal(connected[0], ("kubelet",))
    raise DeployError(f"upgrade stopped at {name} (nodes): step 'kubelet Ready at {version}' "
                      f"not reached within {READY_TIMEOUT} s ({seen})\n{logs}")
