"""The phase runner: connect these hosts, run this phase's tasks, check readiness, report,
disconnect. Every call names its hosts; the runner keeps no mode between calls."""

from __future__ import annotations

import contextlib
import functools
import logging
import shlex
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import gevent
import gevent.local
from pyinfra.api import Config, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.deploy import add_deploy
from pyinfra.api.exceptions import PyinfraError
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.api.operations import run_ops
from pyinfra.api.state import BaseStateCallback
from pyinfra.connectors.sshuserclient.client import SSHClient, get_host_keys
from pyinfra.connectors.util import CommandOutput
from pyinfra.context import ctx_inventory, ctx_state

from kubesmith import escalation, inventory
from kubesmith.context import DeployContext
from kubesmith.errors import UserError
from kubesmith.model import Cluster, Host
from kubesmith.readahead import ReadAhead
from kubesmith.rules import printable
from kubesmith.validate import TRUST_FLAG

if TYPE_CHECKING:
    from tasks.mirror import Push  # imports this module

Out = Callable[[str], None]
# A phase's readiness check: given the phase's hosts, returns once all are ready (raises if not).
ReadyCheck = Callable[[DeployContext, Sequence[PyinfraHost]], None]
T = TypeVar("T")
Item = TypeVar("Item")


class DeployError(UserError):
    """A phase failed: the message names phase, host and step and shows service logs."""


@dataclass(frozen=True)
class Phase:
    """Tasks run on some hosts, then a readiness check of those hosts before the next phase."""

    name: str
    hosts: Callable[[Cluster], tuple[Host, ...]]
    tasks: tuple[Callable[[DeployContext], None], ...]
    services: tuple[str, ...] = ()
    ready: ReadyCheck | None = None

    def on(self, cluster: Cluster, names: Sequence[str] | None = None) -> tuple[Host, ...]:
        """The phase's hosts, limited to the named ones when names are given."""
        return tuple(h for h in self.hosts(cluster) if names is None or h.name in names)


@dataclass
class Report:
    """What a workflow did: changed ops per phase and host, wall time per phase, the part of it
    spent waiting for services to start and become ready (their start jobs and readiness
    checks), and remote commands per phase and host."""

    changed: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    waited: dict[str, float] = field(default_factory=dict)
    commands: dict[str, Counter[str]] = field(default_factory=dict)

    def own(self, phase: str) -> float:
        """A phase's time not spent waiting for services: kubesmith's own work."""
        return self.seconds.get(phase, 0.0) - self.waited.get(phase, 0.0)

    def wait(self, phase: str, seconds: float) -> None:
        """Add time a phase spent waiting for its services to become ready."""
        self.waited[phase] = self.waited.get(phase, 0.0) + seconds

    def counted(self, phase: str, commands: Counter[str]) -> None:
        """Add remote commands (shell commands and file transfers) per host to a phase."""
        self.commands.setdefault(phase, Counter()).update(commands)

    @property
    def total_changes(self) -> int:
        """Changed operations over every phase and host."""
        return sum(len(ops) for hosts in self.changed.values() for ops in hosts.values())

    def breakdown(self) -> list[str]:
        """Lines: the total (and its ratio to the waiting) split into waiting for services and
        own work, then per phase its seconds, the part waiting, and remote commands per host
        (time outside any phase: local preparation)."""
        total = self.seconds.get("total", 0.0)
        waited = sum(self.waited.values())
        # The services' own start is the limit a run can approach: how far the run is from it.
        ratio = f" ({total / waited:.2f}x its waiting)" if waited else ""
        lines = [f"{total:.1f} s{ratio}: waiting for services {waited:.1f} s, own work "
                 f"{total - waited:.1f} s ({(total - waited) / total if total else 0:.0%})"]
        for phase, seconds in self.seconds.items():
            if phase == "total":
                continue
            hosts = self.commands.get(phase, Counter())
            per_host = ", ".join(f"{h} {n}" for h, n in sorted(hosts.items())) or "none"
            lines.append(f"  {phase}: {seconds:.1f} s (waiting {self.waited.get(phase, 0.0):.1f}"
                         f", own {self.own(phase):.1f}); remote commands: {per_host}")
        outside = total - sum(v for k, v in self.seconds.items() if k != "total")
        lines.append(f"  outside phases (local preparation): {outside:.1f} s")
        return lines

    def add(self, phase: str, host: str, op: str) -> None:
        """Record one changed (or, dry, pending) operation."""
        self.changed.setdefault(phase, {}).setdefault(host, []).append(op)

    def count(self, phase: str, host: str) -> int:
        """Operations recorded so far for a host in a phase."""
        return len(self.changed.get(phase, {}).get(host, []))


def _op_name(state: State, op_hash: str) -> str:
    return ", ".join(sorted(state.get_op_meta(op_hash).names))


class _Failures(BaseStateCallback):
    """Prints failures per host as they happen and remembers the failing step."""

    def __init__(self, phase: str, out: Out) -> None:
        self.phase, self.out = phase, out
        self.failed: dict[str, str] = {}
        self.failed_ops: dict[str, tuple[PyinfraHost, str]] = {}
        self.unreachable: dict[str, str] = {}

    def host_connect_error(self, state: State, host: PyinfraHost, error: object) -> None:
        """Remember why a host could not be connected to (host keys are explained later)."""
        self.unreachable[host.name] = str(error)

    def operation_host_error(self, state: State, host: PyinfraHost, op_hash: str,
                             retry_count: int = 0, max_retries: int = 0) -> None:
        name = _op_name(state, op_hash)
        self.failed[host.name] = name
        self.failed_ops[host.name] = (host, op_hash)
        self.out(f"  [{self.phase}] {host.name}: FAILED {name}")


def _last_error(state: State, failed: tuple[PyinfraHost, str] | None) -> str:
    """The failed step's last line of error output, if it printed one."""
    if failed is None or (data := state.ops[failed[0]].get(failed[1])) is None:
        return ""
    meta = data.operation_meta
    lines = meta.stderr_lines if meta.is_complete() else []
    return f": {printable(lines[-1].strip())[:500]}" if lines and lines[-1].strip() else ""


class _Commands:
    """Counts the remote commands (shell commands and file transfers) each host of a State runs,
    by wrapping its connector: fact gathering, operations and readiness checks alike, each with
    the host's privilege escalation (escalation.py). With a read-ahead, a read it answers runs
    no command, and anything else is a change."""

    def __init__(self, state: State, ahead: ReadAhead | None) -> None:
        self.counts: Counter[str] = Counter()
        self.run: dict[str, Callable[..., tuple[bool, CommandOutput]]] = {}
        for remote in state.inventory:
            connector, name = remote.connector, remote.name
            given = escalation.arguments(state, remote)
            run = self._counting(name, escalation.commands(connector.run_shell_command, given))
            self.run[name] = run  # (the read-ahead's own batch runs with it)
            connector.run_shell_command = run if ahead is None else ahead.wrap(name, run, given)
            for method in ("put_file", "get_file"):
                counted = self._counting(name, escalation.transfers(
                    getattr(connector, method), run, given, name))
                setattr(connector, method,
                        counted if ahead is None else self._changing(ahead, counted))
            if ahead is not None:
                remote.get_fact = self._reading(ahead, remote)  # type: ignore[method-assign]

    def _counting(self, name: str, method: Callable[..., T]) -> Callable[..., T]:
        def counted(*args: object, **kwargs: object) -> T:
            self.counts[name] += 1
            return method(*args, **kwargs)
        return counted

    @staticmethod
    def _changing(ahead: ReadAhead, method: Callable[..., T]) -> Callable[..., T]:
        def changing(*args: object, **kwargs: object) -> T:
            ahead.changed()
            return method(*args, **kwargs)
        return changing

    @staticmethod
    def _reading(ahead: ReadAhead, remote: PyinfraHost) -> Callable[..., object]:
        original = remote.get_fact

        def get_fact(*args: object, **kwargs: object) -> object:
            with ahead.reads(remote.name):
                return original(*args, **kwargs)
        return get_fact


class _Changes(BaseStateCallback):
    """An operation starting is a change (tasks make operations only for pending changes)."""

    def __init__(self, ahead: ReadAhead) -> None:
        self.ahead = ahead

    def operation_start(self, state: State, op_hash: str) -> None:
        """Every later read is asked live."""
        self.ahead.changed()


# Names of the operations that start, restart or reload a service: their time is the service's
# own start time (a Type=notify unit's start job lasts until it is ready), so waiting too.
_SERVICE_OPS: set[str] = set()


def service_op(name: str) -> str:
    """Mark an operation name as starting a service (see _SERVICE_OPS); return the name."""
    _SERVICE_OPS.add(name)
    return name


class _ServiceStarts(BaseStateCallback):
    """Adds up the wall time of the operations that start services."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.began: dict[str, float] = {}

    def operation_start(self, state: State, op_hash: str) -> None:
        """Note when a service-starting operation begins on its hosts."""
        if not _SERVICE_OPS.isdisjoint(state.get_op_meta(op_hash).names):
            self.began[op_hash] = time.monotonic()

    def operation_end(self, state: State, op_hash: str) -> None:
        """Add its time once every host finished it."""
        if op_hash in self.began:
            self.seconds += time.monotonic() - self.began.pop(op_hash)


def connect_problem(name: str, error: str, data: dict[str, object]) -> str:
    """Why a host could not be reached and what to do, in one line (host keys explained)."""
    known = data.get("ssh_known_hosts_file") or "~/.ssh/known_hosts"
    if "No host key for" in error:
        return (f"{name}: host key unknown (not in {known}): check the host's key, then pin it "
                f"with {TRUST_FLAG} (or add it to that file)")
    if "Host key for" in error and "does not match" in error:
        return (f"{name}: host key CHANGED (differs from the one in {known}): if the host was "
                f"reinstalled, remove the old key (ssh-keygen -R HOST -f {known}) and pin the "
                f"new one with {TRUST_FLAG}; otherwise someone may be intercepting")
    key = data.get("ssh_key")
    if isinstance(key, str) and key.startswith(("/", "~")) and not Path(key).expanduser().exists():
        return printable(f"{name}: ssh_key {key} does not exist on this machine: point ssh_key "
                         "at the private key that logs in to the host")
    return printable(f"{name}: {error or 'connection failed'} (check the address, SSH key and "
                     "known_hosts in the inventory)")


def run_on(host: PyinfraHost, command: str) -> tuple[bool, str]:
    """Run a read-only command on a connected host (not an operation: never a change)."""
    ok, output = host.run_shell_command(command)
    return ok, "\n".join(output.stdout_lines + output.stderr_lines)


# Per greenlet (each host's check runs in its own): seconds readiness checks waited.
_WAITING = gevent.local.local()


def poll(attempt: Callable[[], str | None], what: str, timeout: float) -> None:
    """Repeat attempt (None: done, else why not yet) backing off from 0.1 s to 1 s between
    tries; raise DeployError with the last reason after timeout seconds. The time before the
    passing attempt started is waiting for services (see waiting())."""
    start = began = time.monotonic()
    delay = 0.1
    while True:
        why = attempt()
        if why is None:
            _WAITING.seconds = getattr(_WAITING, "seconds", 0.0) + began - start
            return
        if began - start > timeout:
            raise DeployError(f"{what} not reached within {timeout:.0f} s: {why}")
        time.sleep(delay)
        delay = min(delay * 1.5, 1.0)
        began = time.monotonic()


def waiting(check: Callable[[], None]) -> float:
    """Run a readiness check; return the seconds its polls waited for services."""
    _WAITING.seconds = 0.0
    check()
    return float(_WAITING.seconds)


def retry(host: PyinfraHost, command: str, what: str, timeout: float) -> str:
    """Re-run a check until it succeeds; raise DeployError naming the host after timeout."""
    found: list[str] = []

    def attempt() -> str | None:
        ok, output = run_on(host, command)
        found[:] = [output]
        return None if ok else output.strip()[-500:]

    poll(attempt, f"{host.name}: {what}", timeout)
    return found[0]


def each(items: Sequence[Item], function: Callable[[Item], T]) -> list[T]:
    """function(item) for every item (hosts, checks) at once, a greenlet each; the results in
    order, or the first item's exception (in order) raised here."""
    def call(item: Item) -> tuple[T | None, BaseException | None]:
        try:
            return function(item), None
        except Exception as error:  # noqa: BLE001 - re-raised below, in the caller's greenlet
            return None, error

    greenlets = [gevent.spawn(call, item) for item in items]
    gevent.joinall(greenlets, raise_error=True)
    results = []
    for greenlet in greenlets:
        value, error = greenlet.value
        if error is not None:
            raise error
        results.append(value)
    return results  # type: ignore[return-value]


def on_each(check: Callable[[DeployContext, PyinfraHost], None]) -> ReadyCheck:
    """A readiness check of one host, run on every host of the phase at once: the phase waited
    as long as its slowest host."""
    def every(ctx: DeployContext, hosts: Sequence[PyinfraHost]) -> None:
        waits = each(hosts, lambda remote: waiting(functools.partial(check, ctx, remote)))
        _WAITING.seconds = getattr(_WAITING, "seconds", 0.0) + max(waits, default=0.0)
    return every


def journal_command(service: str) -> str:
    """The last journal lines of a service."""
    return f"journalctl -u {shlex.quote(service)} -n 15 --no-pager -o cat"


def journal(host: PyinfraHost, services: Sequence[str]) -> str:
    """The last journal lines of some services on a host, for an error message."""
    parts = []
    for service in services:
        _ok, text = run_on(host, journal_command(service))
        parts.append(f"--- journal of {service} on {host.name} ---\n{text}")
    return "\n".join(parts)


class Runner:
    """Runs phases and host commands of one workflow against a context, reporting as it goes."""

    def __init__(self, ctx: DeployContext, out: Out = print,
                 trust_new_host_keys: bool = False) -> None:
        self.ctx, self.out = ctx, out
        self.report = Report()
        # Unknown host keys are refused (group data: ssh_strict_host_key_checking = "yes") unless
        # the user asked to trust and pin them for this run.
        self.ssh_override = ({"ssh_strict_host_key_checking": "accept-new"}
                             if trust_new_host_keys else {})
        # Artifact sums the binary mirror serves in this workflow, and the background upload
        # of the cluster's artifacts to it (tasks/mirror.py).
        self.mirrored: set[str] = set()
        self.push: Push | None = None
        # Each host's SSH client, kept from phase to phase: one connection (key exchange,
        # authentication) per host and workflow, not one per phase.
        self._clients: dict[str, SSHClient] = {}
        # Seconds of phases run so far (a phase subtracts those run inside it from its own).
        self._nested = 0.0
        # The workflow's reads of its last run, run ahead per host (read_ahead()).
        self.ahead: ReadAhead | None = None

    def read_ahead(self, workflow: str) -> None:
        """Answer this workflow's reads from one command per host while nothing changes (its
        reads recorded in the state directory by its last run)."""
        self.ahead = ReadAhead(self.ctx.state / "readahead" / f"{workflow}.json")

    def _state(self, what: str, hosts: Sequence[Host]) -> tuple[State, _Failures, _Commands]:
        """A State connected to exactly these hosts; raise naming any unreachable one."""
        names = [h.name for h in hosts]
        # The runner reports for itself; under pyinfra's CLI (which only borrows a Runner for
        # local preparation) pyinfra's own output stays.
        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        pyinfra_inventory = inventory.to_pyinfra(self.ctx.groups, self.ctx.data, only=names,
                                                 override=self.ssh_override)
        # Tasks create ops only for pending changes (decided from facts), so ops need no
        # change check at prepare time: that would cost facts for every op.
        state = State(pyinfra_inventory, Config(CONNECT_TIMEOUT=10, FAIL_PERCENT=None),
                      check_for_changes=False)
        state.cwd = str(inventory.settings.PROJECT)
        failures = _Failures(what, self.out)
        state.add_callback_handler(failures)
        commands = _Commands(state, self.ahead)
        if self.ahead is not None:
            state.add_callback_handler(_Changes(self.ahead))
        for remote in state.inventory:
            client = self._clients.get(remote.name)
            transport = client.get_transport() if client is not None else None
            if transport is not None and transport.is_active():
                remote.connector.client = client  # type: ignore[attr-defined]
                remote.connected = True  # connect_all activates it without connecting again
        # A host's connection failing raises PyinfraError in its greenlet, which gevent prints
        # as a traceback: the failure is reported below, by name, in one line.
        hub = gevent.get_hub()
        if PyinfraError not in hub.NOT_ERROR:
            hub.NOT_ERROR = (*hub.NOT_ERROR, PyinfraError)
        with contextlib.suppress(PyinfraError):  # all hosts failed: reported below, by name
            connect_all(state)
        for remote in state.activated_hosts:
            client = getattr(remote.connector, "client", None)
            if isinstance(client, SSHClient):
                self._clients[remote.name] = client
        if self.ssh_override:
            # pyinfra keeps known_hosts in memory once read: re-read it, so a key pinned by this
            # connection is known to the next one (and not appended again).
            get_host_keys.cache.clear()  # type: ignore[attr-defined]
        unreachable = sorted(set(names) - {h.name for h in state.activated_hosts})
        if unreachable:
            disconnect_all(state)
            data = inventory.host_data(self.ctx.groups)
            raise DeployError("\n".join(
                f"{what}: cannot connect to " + connect_problem(
                    name, failures.unreachable.get(name, ""), data.get(name, {}))
                for name in unreachable))
        if self.ahead is not None:
            ahead = self.ahead
            each([h.name for h in state.activated_hosts],
                 lambda name: ahead.fetch(name, commands.run[name]))
        return state, failures, commands

    def clocks(self) -> dict[str, float]:
        """Each host's clock minus the control machine's, where its read-ahead batch read it."""
        return dict(self.ahead.clocks) if self.ahead is not None else {}

    @contextlib.contextmanager
    def connect(self, what: str, hosts: Sequence[Host],
                reads: bool = False) -> Iterator[list[PyinfraHost]]:
        """Connected pyinfra hosts for commands outside a phase (reads: only read-only ones),
        disconnected afterwards; its time and commands are reported under `what`."""
        start = time.monotonic()
        state, _failures, commands = self._state(what, hosts)
        try:
            with self._reads([h.name for h in hosts] if reads else []):
                yield list(state.inventory.get_active_hosts())
        finally:
            disconnect_all(state)
            self.report.counted(what, commands.counts)
            self.report.seconds[what] = (self.report.seconds.get(what, 0.0)
                                         + time.monotonic() - start)

    def run(self, phase: Phase, hosts: Sequence[Host], dry: bool = False) -> None:
        """Prepare and run one phase on these hosts, then wait for its readiness check."""
        if not hosts:
            return
        start, nested_before = time.monotonic(), self._nested
        earlier = {h.name: self.report.count(phase.name, h.name) for h in hosts}
        self.out(f"[{phase.name}] {', '.join(h.name for h in hosts)}")
        state, failures, commands = self._state(f"phase {phase.name}", hosts)
        try:
            from tasks import _ops, mirror  # they import this module

            _ops.FETCHES.clear()

            def prepare(remote: PyinfraHost) -> None:
                for task in phase.tasks:
                    add_deploy(state, task, self.ctx, host=remote)
            # Each host's facts are read while the others' are: preparation costs one host's
            # round trips, not their sum. pyinfra's state and inventory contexts are global (not
            # per greenlet): set once here, around every host's preparation.
            with ctx_state.use(state), ctx_inventory.use(state.inventory):
                each(list(state.inventory.get_active_hosts()), prepare)
            if dry:
                self._record(phase, state, pending=True)
            else:
                mirror.serve(self)  # before the ops that fetch from it
                self._execute(phase, state, failures)
        finally:
            disconnect_all(state)
            self.report.counted(phase.name, commands.counts)
            elapsed = time.monotonic() - start
            # A phase run inside this one (the binary mirror's) reports its own time: not here.
            own = elapsed - (self._nested - nested_before)
            self.report.seconds[phase.name] = self.report.seconds.get(phase.name, 0.0) + own
            self._nested = nested_before + elapsed
        summary = ", ".join(f"{h.name} {self.report.count(phase.name, h.name) - earlier[h.name]} "
                            "changed" for h in hosts)
        self.out(f"[{phase.name}] ok in {elapsed:.1f} s: {summary}")

    def _execute(self, phase: Phase, state: State, failures: _Failures) -> None:
        """Run the prepared ops, name every failing host and step, then check readiness."""
        starts = _ServiceStarts()
        state.add_callback_handler(starts)
        with contextlib.suppress(PyinfraError):  # every host failed: reported below, by name
            run_ops(state)
        self.report.wait(phase.name, starts.seconds)
        self._record(phase, state, pending=False)
        active = list(state.inventory.get_active_hosts())
        failed = failures.failed or {h.name: "connection" for h in state.failed_hosts}
        if failed:
            details = "\n".join(f"phase {phase.name}: host {name}: step '{step}' failed"
                                 + _last_error(state, failures.failed_ops.get(name))
                                 for name, step in failed.items())
            logs = "\n".join(journal(h, phase.services) for h in active
                             if h.name in failed and phase.services)
            raise DeployError(details + ("\n" + logs if logs else ""))
        if phase.ready:
            try:
                self._ready(phase, active)
            except DeployError as error:
                logs = "\n".join(journal(h, phase.services) for h in active)
                raise DeployError(f"phase {phase.name}: {error}\n{logs}") from error

    @contextlib.contextmanager
    def _reads(self, names: Sequence[str]) -> Iterator[None]:
        """These hosts' commands only read while in the block (see read_ahead)."""
        with contextlib.ExitStack() as stack:
            if self.ahead is not None:
                for name in names:
                    stack.enter_context(self.ahead.reads(name))
            yield

    def _ready(self, phase: Phase, active: Sequence[PyinfraHost]) -> None:
        """Run the phase's readiness check on its hosts (reads only); record what it waited."""
        check = phase.ready
        assert check is not None
        with self._reads([h.name for h in active]):
            self.report.wait(phase.name, waiting(functools.partial(check, self.ctx, active)))

    def _record(self, phase: Phase, state: State, pending: bool) -> None:
        """Print and record the ops that changed something (dry: every prepared op), per host."""
        for host in state.inventory.get_active_hosts():
            for op_hash in state.get_op_order():
                op_data = state.ops[host].get(op_hash)
                if op_data is None:
                    continue
                meta = op_data.operation_meta
                if pending or (meta.is_complete() and meta.did_change()):
                    name = _op_name(state, op_hash)
                    self.report.add(phase.name, host.name, name)
                    self.out(f"  [{phase.name}] {host.name}: {'would change: ' if pending else ''}"
                             f"{name}")

    def close(self) -> None:
        """Stop what this workflow started on hosts for its own use (the binary mirror), then
        close the SSH connections kept between phases."""
        from tasks import mirror  # imports this module

        mirror.stop(self)
        if self.ahead is not None and not self.ctx.dry:  # (a dry run writes no state)
            self.ahead.save()
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def finish(self, start: float, what: str, dry: bool = False) -> Report:
        """Stop the workflow's helpers, print its closing line and return its report."""
        self.close()
        self.report.seconds["total"] = time.monotonic() - start
        verb = "would change" if dry else "changed"
        ahead = f"; {self.ahead.summary()}" if self.ahead is not None else ""
        self.out(f"done in {self.report.seconds['total']:.1f} s: {self.report.total_changes} "
                 f"operations {verb}{ahead}; {what}")
        return self.report
