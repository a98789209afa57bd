"""Run the bootstrap in ordered phases, one pyinfra State each (etcd -> control plane -> nodes)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import ctx_host, ctx_inventory, ctx_state

from kubesmith import inventory as inv
from kubesmith.binaries import sources
from kubesmith.binaries.cache import CacheIncomplete, ChecksumMismatch
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext, state_dir
from kubesmith.model import Cluster, Host
from kubesmith.validate import ValidationError, validate
from tasks import common, controlplane, etcd, flannel, node, pki, preflight, reset, runtime


class DeployError(Exception):
    """A phase failed: the message names phase, host and step and shows service logs."""


@dataclass
class Phase:
    """Tasks run on some hosts, then a per-host readiness check before the next phase."""

    name: str
    hosts: Callable[[Cluster], tuple[Host, ...]]
    tasks: tuple[Callable[[DeployContext], None], ...]
    services: tuple[str, ...] = ()
    ready: Callable[[DeployContext, PyinfraHost], None] | None = None


@dataclass
class Report:
    """What a deploy did: changed ops per phase and host, and wall time per phase."""

    changed: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_changes(self) -> int:
        """Changed operations over every phase and host."""
        return sum(len(ops) for hosts in self.changed.values() for ops in hosts.values())


def _op_name(state: State, op_hash: str) -> str:
    return ", ".join(sorted(state.get_op_meta(op_hash).names))


class Progress(BaseStateCallback):
    """Prints failures per host as they happen."""

    def __init__(self, phase: str, out: Callable[[str], None]) -> None:
        self.phase, self.out = phase, out
        self.failed: dict[str, str] = {}

    def operation_host_error(self, state: State, host: PyinfraHost, op_hash: str,
                             retry_count: int = 0, max_retries: int = 0) -> None:
        name = _op_name(state, op_hash)
        self.failed[host.name] = name
        self.out(f"  [{self.phase}] {host.name}: FAILED {name}")


def run_on(host: PyinfraHost, command: str) -> tuple[bool, str]:
    """Run a read-only command on a connected host (not an operation: never a change)."""
    ok, output = host.run_shell_command(command)
    return ok, "\n".join(output.stdout_lines + output.stderr_lines)


def retry(host: PyinfraHost, command: str, what: str, timeout: float) -> str:
    """Re-run a check until it succeeds; raise DeployError naming the host after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        ok, output = run_on(host, command)
        if ok:
            return output
        if time.monotonic() > deadline:
            raise DeployError(f"{host.name}: {what} not reached within {timeout:.0f} s: "
                              f"{output.strip()[-500:]}")
        time.sleep(1)


def _hosts(state: State) -> list[PyinfraHost]:
    return list(state.inventory.get_active_hosts())


def etcd_ready(ctx: DeployContext, host: PyinfraHost) -> None:
    """Every etcd member healthy over TLS (asked from this member)."""
    retry(host, etcd.health_command(ctx), "etcd healthy on every member", 90)


def apiserver_ready(ctx: DeployContext, host: PyinfraHost) -> None:
    """/readyz answers ok on this master."""
    retry(host, controlplane.readyz_command(ctx), "kube-apiserver /readyz", 120)


def flannel_ready(ctx: DeployContext, host: PyinfraHost) -> None:
    """flanneld holds a subnet lease on this host."""
    retry(host, f"test -s {flannel.SUBNET_ENV}", "flannel subnet lease", 60)


def kubectl(ctx: DeployContext, *args: str, timeout: float = 30,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """The cached kubectl on the control machine with the operator's admin kubeconfig."""
    return subprocess.run(
        [ctx.binary("kubernetes", "kubectl"), f"--kubeconfig={ctx.state / 'admin.kubeconfig'}",
         *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def node_ready(ctx: DeployContext, host: PyinfraHost) -> None:
    """This node registered and Ready, as the operator's kubectl sees it."""
    deadline = time.monotonic() + 180
    while True:
        result = kubectl(ctx, "wait", "--for=condition=Ready", f"node/{host.name}",
                         "--timeout=5s")
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise DeployError(f"node {host.name} not Ready within 180 s: "
                              f"{(result.stderr or result.stdout).strip()[-300:]}")
        time.sleep(1)


def cluster_config(ctx: DeployContext) -> None:
    """Once per cluster: RBAC on the first master, flannel's config in etcd via the first member."""
    from pyinfra import host

    if host.name == ctx.cluster.masters[0].name:
        controlplane.bootstrap_rbac(ctx)
    if host.name == ctx.cluster.etcd[0].name:
        flannel.network_config(ctx)


def _first_master_and_etcd(cluster: Cluster) -> tuple[Host, ...]:
    return tuple(dict.fromkeys((cluster.masters[0], cluster.etcd[0])))


PHASES = (
    Phase("hosts", lambda c: c.hosts, (common.deploy, pki.deploy)),
    Phase("etcd", lambda c: c.etcd, (etcd.deploy,), ("etcd",), etcd_ready),
    Phase("control plane", lambda c: c.masters, (controlplane.deploy,),
          controlplane.SERVICES, apiserver_ready),
    Phase("cluster config", _first_master_and_etcd, (cluster_config,)),
    Phase("network", lambda c: c.pod_hosts, (flannel.deploy,), ("flanneld",), flannel_ready),
    Phase("nodes", lambda c: c.nodes, (runtime.deploy, node.deploy),
          ("containerd", "kubelet", "kube-proxy"), node_ready),
)


def prepare_local(ctx: DeployContext, out: Callable[[str], None]) -> None:
    """Verify the binary cache and make the PKI on the control machine."""
    for name, component in COMPONENTS.items():
        if component.deployed:
            sources.ensure(name, ctx.versions)
    ctx.state.mkdir(parents=True, exist_ok=True)
    made = pki.prepare(ctx)
    out(f"[pki] {len(made)} made or renewed" if made else "[pki] up to date")


def _journal(host: PyinfraHost, services: tuple[str, ...]) -> str:
    parts = []
    for service in services:
        _ok, text = run_on(host, f"journalctl -u {service} -n 15 --no-pager -o cat")
        parts.append(f"--- journal of {service} on {host.name} ---\n{text}")
    return "\n".join(parts)


class Deployer:
    """Bootstraps (or converges) a cluster described by an inventory file."""

    def __init__(self, inventory_path: Path, out: Callable[[str], None] = print) -> None:
        self.inventory_path = inventory_path
        self.groups = inv.load_groups(inventory_path)
        self.data = inv.settings.group_data()
        for warning in validate(self.groups, self.data):
            out(str(warning))
        self.ctx = DeployContext(inv.to_cluster(self.groups, self.data), self.data,
                                 state_dir(inventory_path))
        self.out = out
        self.only: set[str] | None = None
        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)

    def phase_hosts(self, phase: Phase) -> tuple[Host, ...]:
        """The phase's hosts, limited to `only` when a command targets some hosts."""
        return tuple(h for h in phase.hosts(self.ctx.cluster)
                     if self.only is None or h.name in self.only)

    def _connect(self, phase: str, names: list[str]) -> tuple[State, Progress]:
        """A State connected to exactly these hosts; raise naming any unreachable one."""
        pyinfra_inventory = inv.to_pyinfra(self.groups, self.data, only=names)
        # Tasks create ops only for pending changes (decided from facts), so ops need no
        # change check at prepare time: that would cost facts for every op.
        state = State(pyinfra_inventory, Config(CONNECT_TIMEOUT=10, FAIL_PERCENT=None),
                      check_for_changes=False)
        state.cwd = str(inv.settings.PROJECT)
        progress = Progress(phase, self.out)
        state.add_callback_handler(progress)
        with contextlib.suppress(PyinfraError):  # all hosts failed: reported below, by name
            connect_all(state)
        unreachable = sorted(set(names) - {h.name for h in state.activated_hosts})
        if unreachable:
            disconnect_all(state)
            raise DeployError(f"phase {phase}: cannot connect to {', '.join(unreachable)} "
                              "(check the address, SSH key and known_hosts in the inventory)")
        return state, progress

    def connect(self, name: str, hosts: tuple[Host, ...]) -> State:
        """A connected State on some hosts, for commands that run no operations."""
        return self._connect(name, [h.name for h in hosts])[0]

    def run_phase(self, phase: Phase, report: Report, dry: bool) -> None:
        """Prepare and run one phase, then wait for its readiness check."""
        start = time.monotonic()
        earlier = {h: len(ops) for h, ops in report.changed.get(phase.name, {}).items()}
        state, progress = self._connect(phase.name, [h.name for h in self.phase_hosts(phase)])
        try:
            with ctx_inventory.use(state.inventory):
                for task in phase.tasks:
                    add_deploy(state, task, self.ctx)
            if dry:
                self._show_pending(phase, state, report)
                return
            with contextlib.suppress(PyinfraError):  # every host failed: reported below, by name
                run_ops(state)
            self._record_changes(phase, state, report)
            failed = progress.failed or {h.name: "connection" for h in state.failed_hosts}
            if failed:
                details = "\n".join(
                    f"phase {phase.name}: host {name}: step '{step}' failed"
                    for name, step in failed.items())
                logs = "\n".join(_journal(h, phase.services) for h in _hosts(state)
                                 if h.name in failed and phase.services)
                raise DeployError(details + ("\n" + logs if logs else ""))
            if phase.ready:
                try:
                    for host in _hosts(state):
                        phase.ready(self.ctx, host)
                except DeployError as error:
                    logs = "\n".join(_journal(h, phase.services) for h in _hosts(state))
                    raise DeployError(f"phase {phase.name}: {error}\n{logs}") from error
        finally:
            disconnect_all(state)
            elapsed = time.monotonic() - start
            report.seconds[phase.name] = report.seconds.get(phase.name, 0.0) + elapsed
        changes = report.changed.get(phase.name, {})
        summary = ", ".join(f"{h.name} {len(changes.get(h.name, [])) - earlier.get(h.name, 0)} "
                            "changed"
                            for h in self.phase_hosts(phase))
        self.out(f"[{phase.name}] ok in {elapsed:.1f} s: {summary}")

    def _record_changes(self, phase: Phase, state: State, report: Report) -> None:
        """Print and record the ops that changed something, per host."""
        for host in _hosts(state):
            for op_hash in state.get_op_order():
                op_data = state.ops[host].get(op_hash)
                meta = op_data.operation_meta if op_data else None
                if meta is not None and meta.is_complete() and meta.did_change():
                    name = _op_name(state, op_hash)
                    report.changed.setdefault(phase.name, {}).setdefault(host.name, []).append(name)
                    self.out(f"  [{phase.name}] {host.name}: {name}")

    def _show_pending(self, phase: Phase, state: State, report: Report) -> None:
        """Dry run: every prepared op is a pending change (names only, never file contents)."""
        for host in _hosts(state):
            for op_hash in state.get_op_order():
                if op_hash in state.ops[host]:
                    name = _op_name(state, op_hash)
                    report.changed.setdefault(phase.name, {}).setdefault(host.name, []).append(name)
                    self.out(f"  [{phase.name}] {host.name}: would change: {name}")

    def preflight(self) -> None:
        """Read-only checks on every targeted host; raise naming each failing host."""
        names = [h.name for h in self.ctx.cluster.hosts
                 if self.only is None or h.name in self.only]
        state = self.connect("preflight", tuple(self.ctx.cluster.host(n) for n in names))
        issues: list[str] = []
        etcd_data: dict[str, bool] = {}
        offsets: dict[str, float] = {}
        hostnames: dict[str, str] = {}
        try:
            for host in _hosts(state):
                before = time.time()
                with ctx_host.use(host), ctx_state.use(state):
                    found = preflight.facts(self.ctx)
                clock = float(found.get("clock", ["0"])[0])
                offsets[host.name] = clock - (before + time.time()) / 2
                hostnames[host.name] = found.get("hostname", [host.name])[0]
                me = self.ctx.cluster.host(host.name)
                issues += [f"{host.name}: {p}" for p in preflight.problems(self.ctx, me, found)]
                if me.has("etcd"):
                    etcd_data[host.name] = found.get("etcd_data", [""])[0] == "yes"
        finally:
            disconnect_all(state)
        issues += preflight.clock_skew(offsets) + preflight.duplicate_hostnames(hostnames)
        if self.only is None:
            issues += preflight.unjoined_members(etcd_data)
        if issues:
            raise DeployError("preflight failed, nothing was changed:\n  " + "\n  ".join(issues)
                              + "\n(fix the hosts, or pass --skip-preflight)")
        self.out(f"[preflight] ok: {', '.join(names)}")

    def up(self, dry: bool = False, skip_preflight: bool = False) -> Report:
        """Every phase in order; raises DeployError at the first failing phase."""
        report = Report()
        start = time.monotonic()
        prepare_local(self.ctx, self.out)
        if not skip_preflight:
            checked = time.monotonic()
            self.preflight()
            report.seconds["preflight"] = time.monotonic() - checked
        for phase in PHASES:
            hosts = self.phase_hosts(phase)
            if not hosts:
                continue
            self.out(f"[{phase.name}] {', '.join(h.name for h in hosts)}")
            self.run_phase(phase, report, dry)
        report.seconds["total"] = time.monotonic() - start
        verb = "would change" if dry else "changed"
        self.out(f"done in {report.seconds['total']:.1f} s: {report.total_changes} operations "
                 f"{verb}; kubeconfig: {self.ctx.state / 'admin.kubeconfig'}")
        return report

    def add_nodes(self, names: list[str], dry: bool = False,
                  skip_preflight: bool = False) -> Report:
        """Bring up only the named new nodes; existing hosts are not touched at all."""
        for me in self._new_hosts(names, "nodes"):
            if me.has("etcd") or me.has("masters"):
                raise DeployError(f"{me.name} is an etcd member or master: add it with "
                                  f"`add-etcd {me.name}` or `add-master {me.name}`")
        self.only = set(names)
        return self.up(dry, skip_preflight)

    def roll(self, report: Report, hosts: tuple[Host, ...]) -> None:
        """Converge hosts one at a time: each phase's readiness is checked before the next host,
        so services that must restart (new member lists, new SANs) restart one host at a time."""
        for one in hosts:
            self.only = {one.name}
            for phase in PHASES:
                if self.phase_hosts(phase):
                    self.out(f"[{phase.name}] {one.name} (rolling)")
                    self.run_phase(phase, report, dry=False)

    def _new_hosts(self, names: list[str], role: str) -> tuple[Host, ...]:
        """The named hosts, each checked to be in the role's inventory group."""
        found = []
        for name in names:
            try:
                me = self.ctx.cluster.host(name)
            except KeyError:
                raise DeployError(f"{name} is not in the inventory: add it to `{role}`") from None
            if not me.has(role):
                raise DeployError(f"{name} is not in the inventory's `{role}` group")
            found.append(me)
        return tuple(found)

    def grow(self, names: list[str], role: str, skip_preflight: bool = False) -> Report:
        """Add etcd members or masters with the cluster serving.

        New etcd members join one at a time as learners, promoted once in sync; then every host
        is rolled, one at a time and the new hosts first, to the new member lists and SANs.
        """
        new = self._new_hosts(names, role)
        report = Report()
        start = time.monotonic()
        prepare_local(self.ctx, self.out)
        if not skip_preflight:
            self.only = set(names)
            self.preflight()
        in_etcd = [h for h in new if h.has("etcd")]
        if in_etcd:
            state = self._etcd_peer(names)
            try:
                peer = _hosts(state)[0]
                for me in in_etcd:
                    if role == "etcd":
                        self._join_etcd(peer, me, report)
                    elif self._member(peer, me) is None:
                        raise DeployError(f"{me.name} is in `etcd` but not a member yet: "
                                          f"run `python deploy.py add-etcd {me.name}` first")
            finally:
                disconnect_all(state)
        rest = tuple(h for h in self.ctx.cluster.hosts if h not in new)
        self.roll(report, new + rest)
        report.seconds["total"] = time.monotonic() - start
        self.out(f"done in {report.seconds['total']:.1f} s: {report.total_changes} operations "
                 f"changed; {role}: {', '.join(h.name for h in self.ctx.cluster.role(role))}")
        return report

    def _etcdctl(self, peer: PyinfraHost, args: str) -> str:
        """etcdctl on a member host; raise DeployError naming the host when it fails."""
        ok, output = run_on(peer, etcd.etcdctl(self.ctx, args))
        if not ok:
            raise DeployError(f"{peer.name}: etcdctl {args}: {output.strip()[-300:]}")
        return output

    def _member(self, peer: PyinfraHost, me: Host) -> etcd.Member | None:
        """The etcd member at this host's peer URL, as the running cluster lists it."""
        listing = etcd.members(self._etcdctl(peer, "member list -w simple"))
        return next((m for m in listing if m.peer_url == me.peer_url), None)

    def _join_etcd(self, peer: PyinfraHost, me: Host, report: Report) -> None:
        """`member add --learner` from a member, start the new member, promote it when in sync."""
        current = etcd.members(self._etcdctl(peer, "member list -w simple"))
        mine = next((m for m in current if m.peer_url == me.peer_url), None)
        if mine is not None and mine.started and not mine.learner:
            self.out(f"[etcd join] {me.name}: already a member")
            return
        others = [m for m in current if m.peer_url != me.peer_url]
        stray = next((m for m in others if not m.started), None)
        if stray is not None:
            raise DeployError(f"etcd lists an unstarted member at {stray.peer_url}: finish its "
                              f"join or remove it (etcdctl member remove {stray.id})")
        if mine is None:
            # etcd refuses a new member until every voting member has been connected for a few
            # seconds ("unhealthy cluster", e.g. just after a promotion): retry, idempotently.
            listed = etcd.etcdctl(self.ctx, "member list -w simple")
            add = etcd.etcdctl(self.ctx, f"member add {me.name} --learner "
                                         f"--peer-urls={me.peer_url}")
            retry(peer, f"{listed} | grep -q ', {me.peer_url},' || {add}",
                  f"etcd member add {me.name}", 60)
            mine = self._member(peer, me)
            self.out(f"[etcd join] {me.name}: added as learner")
        self.ctx.joining[me.name] = ",".join(
            [f"{m.name}={m.peer_url}" for m in others] + [f"{me.name}={me.peer_url}"])
        self.only = {me.name}
        for phase in (PHASES[0], ETCD_JOIN):
            self.out(f"[{phase.name}] {me.name}")
            self.run_phase(phase, report, dry=False)
        # The member started with its new certificates: the roll must not restart it for them.
        self.ctx.replaced[me.name] = {f for f in self.ctx.replaced.get(me.name, set())
                                      if not f.startswith(etcd.member_certs(me.name))}
        if mine is not None and mine.learner:
            retry(peer, etcd.etcdctl(self.ctx, f"member promote {mine.id}"),
                  f"etcd learner {me.name} in sync (member promote)", 120)
            self.out(f"[etcd join] {me.name}: promoted to voting member")

    def _check_removable(self, names: list[str]) -> None:
        """Refuse to remove the last master or more etcd members than quorum allows."""
        cluster = self.ctx.cluster
        for name in names:
            cluster.host(name)  # KeyError -> reported by the caller
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

    def remove_nodes(self, names: list[str]) -> Report:
        """Cordon, drain and delete the nodes, leave etcd, then reset the hosts."""
        try:
            self._check_removable(names)
        except KeyError as error:
            raise DeployError(f"{error.args[0]}") from None
        cluster = self.ctx.cluster
        for name in names:
            me = cluster.host(name)
            if me.has("nodes"):
                self.out(f"[remove] {name}: cordon, drain, delete node")
                kubectl(self.ctx, "cordon", name)
                drained = kubectl(self.ctx, "drain", name, "--ignore-daemonsets", "--force",
                                  "--delete-emptydir-data", "--grace-period=5", "--timeout=60s",
                                  timeout=90)
                if drained.returncode != 0:
                    raise DeployError(f"drain {name} failed: {drained.stderr.strip()[-300:]}")
                kubectl(self.ctx, "delete", "node", name, "--ignore-not-found")
            if me.has("etcd"):
                self._leave_etcd(me, names)
        self.only = set(names)
        report = Report()
        self.run_phase(RESET, report, dry=False)
        self._forget_flannel_leases([cluster.host(n) for n in names], names)
        if any(cluster.host(n).has("etcd") or cluster.host(n).has("masters") for n in names):
            # The remaining hosts drop the removed members from their lists and SANs.
            self.ctx.cluster = cluster.without(set(names))
            prepare_local(self.ctx, self.out)
            self.roll(report, self.ctx.cluster.hosts)
        return report

    def _etcd_peer(self, exclude: list[str]) -> State:
        """A connected State on one etcd member that is not being removed."""
        peer = next((h for h in self.ctx.cluster.etcd if h.name not in exclude), None)
        if peer is None:
            raise DeployError("no etcd member outside " + ", ".join(exclude) +
                              ": bootstrap the cluster with `python deploy.py up` first")
        return self.connect("etcd peer", (peer,))

    def _leave_etcd(self, me: Host, removing: list[str]) -> None:
        """`etcdctl member remove` from a remaining member, before the host is reset."""
        state = self._etcd_peer(removing)
        try:
            peer = _hosts(state)[0]
            member = self._member(peer, me)
            if member is not None:
                self._etcdctl(peer, f"member remove {member.id}")
                self.out(f"[remove] {me.name}: removed from etcd ({member.id})")
        finally:
            disconnect_all(state)

    def _forget_flannel_leases(self, hosts: list[Host], removing: list[str]) -> None:
        """Delete the removed hosts' flannel subnet leases from etcd."""
        if not any(h.name not in removing for h in self.ctx.cluster.etcd):
            return
        state = self._etcd_peer(removing)
        try:
            peer = _hosts(state)[0]
            prefix = f"{self.ctx.data['flannel_etcd_prefix']}/subnets/"
            _ok, listing = run_on(peer, etcd.etcdctl(self.ctx, f"get --prefix {prefix}"))
            addresses = {h.address for h in hosts}
            for key, owner in flannel.leases(listing).items():
                if owner in addresses:
                    run_on(peer, etcd.etcdctl(self.ctx, f"del {key}"))
        finally:
            disconnect_all(state)

    def reset(self, names: list[str] | None) -> Report:
        """Remove everything kubesmith installed on the hosts (all when no names)."""
        if names:
            for name in names:
                self.ctx.cluster.host(name)
        self.only = set(names) if names else None
        report = Report()
        self.run_phase(RESET, report, dry=False)
        return report


def _reset_hosts(cluster: Cluster) -> tuple[Host, ...]:
    return cluster.hosts


RESET = Phase("reset", _reset_hosts, (reset.deploy,))
# A new member's first start: no all-members health check yet (it is a learner until promoted).
ETCD_JOIN = Phase("etcd join", lambda c: c.etcd, (etcd.deploy,), ("etcd",))


def run_command(command: Callable[[Deployer], object], inventory_path: Path) -> int:
    """Run a deployer command with one-line errors and a non-zero exit on failure."""
    try:
        command(Deployer(inventory_path))
    except ValidationError as error:
        print(f"{error}\nnothing was changed: fix the inventory and run again", file=sys.stderr)
        return 1
    except (DeployError, inv.InventoryError, ChecksumMismatch, CacheIncomplete,
            sources.SourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyError as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 1
    return 0
