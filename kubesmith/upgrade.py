"""The upgrade plan: from the versions read on every host and the versions the settings pin, the
hosts each stage changes (etcd, masters, nodes), or the reasons to refuse before any change.
Pure functions over typed records; kubesmith/workflows/upgrade.py reads the hosts and runs it."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from kubesmith.model import Cluster
from kubesmith.versions import Version

# Components each stage upgrades on its hosts, in the order of the version-skew policy.
STAGES = {
    "etcd": ("etcd",),
    "masters": ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld"),
    "nodes": ("containerd", "runc", "flanneld", "kubelet", "kube-proxy"),
}
# Kubernetes components that must not skip a minor release (the control plane, as kubeadm).
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
NODE_COMPONENTS = ("kubelet", "kube-proxy")
# The skew policy: kubelet and kube-proxy up to 3 minors older than kube-apiserver.
NODE_SKEW = 3
# etcd 3.5 -> 3.6 needs every member on 3.5.26 or newer first (etcd's upgrade guide).
ETCD_36_FROM = Version(3, 5, 26)
DEPRECATED = re.compile(r"^apiserver_requested_deprecated_apis\{(?P<labels>[^}]*)\}\s+1\b", re.M)
LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class HostVersions:
    """What runs on one host: {component: version, None when not running}."""

    host: str
    running: dict[str, Version | None]


@dataclass(frozen=True)
class NodeState:
    """One node as the apiserver reports it."""

    name: str
    ready: bool
    unschedulable: bool
    upgrading: bool  # cordoned by an upgrade that has not finished (kubesmith's annotation)


@dataclass(frozen=True)
class Plan:
    """The hosts each stage changes, in order; one line per host of what runs and the target."""

    etcd: tuple[str, ...]
    masters: tuple[str, ...]
    nodes: tuple[str, ...]
    lines: tuple[str, ...]

    @property
    def empty(self) -> bool:
        """Every host runs the target already."""
        return not (self.etcd or self.masters or self.nodes)


def behind(host: HostVersions, targets: dict[str, Version], components: Iterable[str]) -> list[str]:
    """The components of a stage on this host not running their target."""
    return [c for c in components
            if c in host.running and c in targets and host.running[c] != targets[c]]


def version_refusals(read: list[HostVersions], targets: dict[str, Version]) -> list[str]:
    """Why the move from what runs to the targets is refused: a component not running, a
    downgrade, a skipped minor, a skew the version-skew policy forbids; one line per reason,
    naming the hosts and components it concerns."""
    reasons: dict[str, dict[str, list[str]]] = {}
    for host in read:
        for name, version in host.running.items():
            target = targets.get(name)
            why = None if target is None else _refused(name, version, target)
            if why:
                reasons.setdefault(why, {}).setdefault(host.host, []).append(name)
    return [", ".join(f"{h} ({', '.join(names)})" for h, names in where.items()) + f": {why}"
            for why, where in reasons.items()] + skew_refusals(read, targets)


def _refused(name: str, version: Version | None, target: Version) -> str | None:
    """Why one component may not move from version to target (None: it may)."""
    if version is None:
        return "not running: start it (or fix the host) before upgrading"
    if version > target:
        return f"runs {version}, the inventory names {target}: downgrades are not supported"
    if version.major != target.major:
        return f"{version} -> {target} changes the major version: not supported"
    if (name in CONTROL_PLANE or name == "etcd") and target.minors_after(version) > 1:
        return (f"{version} -> {target} skips a minor release: upgrade to "
                f"v{version.major}.{version.minor + 1} first")
    if name == "etcd" and version < ETCD_36_FROM <= target:
        return f"{version} -> {target}: every etcd member must run {ETCD_36_FROM} or newer first"
    return None


def skew_refusals(read: list[HostVersions], targets: dict[str, Version]) -> list[str]:
    """Skews the policy forbids now or after the control plane moves: kubelet/kube-proxy newer
    than an apiserver or more than 3 minors older than the target apiserver; controller-manager
    or scheduler newer than an apiserver; apiservers more than one minor apart."""
    apiservers = [v for h in read if (v := h.running.get("kube-apiserver")) is not None]
    if not apiservers:
        return []
    oldest, newest = min(apiservers), max(apiservers)
    found = []
    if newest.minors_after(oldest) > 1:
        found.append(f"kube-apiservers run {oldest} and {newest}: more than one minor apart")
    target = targets.get("kube-apiserver", newest)
    for host in read:
        for name, version in host.running.items():
            if version is None:
                continue
            if name in (*NODE_COMPONENTS, "kube-controller-manager", "kube-scheduler") \
                    and version > oldest:
                found.append(f"{host.host}: {name} {version} is newer than kube-apiserver "
                             f"{oldest}: the version-skew policy forbids it")
            if name in NODE_COMPONENTS and target.minors_after(version) > NODE_SKEW:
                found.append(f"{host.host}: {name} {version} would be "
                             f"{target.minors_after(version)} minors older than kube-apiserver "
                             f"{target} (the version-skew policy allows {NODE_SKEW}): upgrade "
                             "in smaller steps")
    return found


def health_refusals(cluster: Cluster, nodes: list[NodeState],
                    etcd_problem: str | None) -> list[str]:
    """An unhealthy cluster: a node NotReady or not registered, an unhealthy etcd member."""
    listed = {n.name for n in nodes}
    found = [f"{h.name}: no Node object: bring it up (`python deploy.py up`) before upgrading"
             for h in cluster.nodes if h.name not in listed]
    found += [f"{n.name}: node NotReady: make it Ready (or remove it) before upgrading"
              for n in nodes if not n.ready]
    if etcd_problem:
        found.append(f"etcd unhealthy: {etcd_problem}")
    return found


def node_state(node: dict, annotation: str) -> NodeState:
    """One Node object (as JSON) as a record."""
    conditions = node.get("status", {}).get("conditions", [])
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return NodeState(node["metadata"]["name"], ready, bool(node.get("spec", {}).get(
        "unschedulable")), annotation in node["metadata"].get("annotations", {}))


def node_states(listing: str, annotation: str) -> list[NodeState]:
    """`kubectl get nodes -o json` as records."""
    return [node_state(n, annotation) for n in json.loads(listing)["items"]]


def removed_apis(metrics: str, target: Version) -> list[str]:
    """One line per API still requested (apiserver_requested_deprecated_apis) that the target
    release no longer serves."""
    found = []
    for match in DEPRECATED.finditer(metrics):
        labels = dict(LABEL.findall(match.group("labels")))
        removed = Version.parse(labels.get("removed_release", "") + ".0")
        if removed is not None and removed.major == target.major and removed.minor <= \
                target.minor:
            group = labels.get("group") or "core"
            found.append(f"{labels.get('resource')} {group}/{labels.get('version')} is still "
                         f"requested and removed in {labels.get('removed_release')}: move its "
                         "clients and manifests to a served version")
    return found


def cache_refusal(missing: dict[str, str], inventory: str, to: str | None = None) -> str | None:
    """The line naming the components whose target binaries are not cached ({name: version})
    and the command that builds them (which builds what the inventory's settings pin: with
    --to, the setting to change first)."""
    if not missing:
        return None
    names = " ".join(missing)
    inventory = shlex.quote(inventory)
    listed = ", ".join(f"{n} {v}" for n, v in missing.items())
    first = f"set kubernetes_version = {to!r} in the inventory's settings, then " if to else ""
    return (f"not in the binary cache: {listed}: build them first ({first}"
            f"`python deploy.py binaries -i {inventory} {names}`)")


def plan(cluster: Cluster, read: list[HostVersions], targets: dict[str, Version],
         nodes: list[NodeState]) -> Plan:
    """The hosts each stage changes (in inventory order; a node an interrupted upgrade left
    cordoned first, so that never two nodes are out at once), and what runs on each."""
    by_name = {h.host: h for h in read}
    upgrading = {n.name for n in nodes if n.upgrading}

    def stage(name: str, hosts: tuple) -> tuple[str, ...]:
        return tuple(h.name for h in hosts if behind(by_name[h.name], targets, STAGES[name]))

    node_hosts = tuple(h.name for h in cluster.nodes
                       if h.name in upgrading or behind(by_name[h.name], targets, STAGES["nodes"]))
    lines = []
    for host in read:
        parts = []
        for name, version in host.running.items():
            target = targets.get(name)
            if target is None or version == target:
                parts.append(f"{name} {version}")
            else:
                parts.append(f"{name} {version} -> {target}")
        lines.append(f"{host.host}: " + ", ".join(parts))
    return Plan(stage("etcd", cluster.etcd), stage("masters", cluster.masters),
                tuple(sorted(node_hosts, key=lambda n: n not in upgrading)), tuple(lines))


def steps(plan_: Plan) -> list[str]:
    """The steps a plan takes, in order, as printed before anything changes."""
    if plan_.empty:
        return ["nothing to upgrade: every host runs its target (add-ons and cluster config "
                "are still converged)"]
    out = ["etcd snapshot to the control machine (with its sha256)"]
    out += [f"etcd member {h}: upgrade, then every member healthy" for h in plan_.etcd]
    out += [f"master {h}: kube-apiserver (/readyz), then kube-controller-manager and "
            "kube-scheduler, leading again (their Leases renewed)" for h in plan_.masters]
    out += [f"node {h}: cordon, drain (PodDisruptionBudgets respected), upgrade, Ready, "
            "uncordon" for h in plan_.nodes]
    out.append("cluster config and add-ons converged; deprecated APIs in use reported")
    return out
