"""Shared op patterns that decide at prepare time from one fact per task, so an unchanged host
costs a couple of round trips: files and directories synced by checksum, services restarted
only when their unit, config or binary changed."""

from __future__ import annotations

import hashlib
import io
import os
import re
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, server, systemd

from kubesmith import manifest, rules
from kubesmith import paths as paths_mod
from kubesmith import services as service_table
from kubesmith.binaries import cache
from kubesmith.context import TEMPLATES, DeployContext
from kubesmith.errors import UserError
from kubesmith.runner import service_op

Op = OperationMeta | None
# Templates systemd reads (units, an EnvironmentFile): a value there is one literal word.
SYSTEMD_TEMPLATES = (".service.j2", "etcd/etcd-bootstrap.env.j2")


class UnsafeValue(UserError):
    """A value that would add a line to a rendered file, or a word to a unit's command line."""


@pass_context
def _finalize(context: Context, value: object) -> object:
    """Refuse a value with a control character (a newline adds a line) in any template, and in
    a systemd unit one that systemd would split or interpret (a space adds a flag)."""
    text = str(value)  # StrictUndefined raises here, naming the missing variable
    name = context.name or "template"
    if char := rules.control_char(text):
        raise UnsafeValue(rules.printable(
            f"{name}: value {text[:60]!r} contains the control character {char!r}: refused"))
    if name.endswith(SYSTEMD_TEMPLATES) and (why := rules.unit_value(text)):
        raise UnsafeValue(rules.printable(f"{name}: value {text[:60]!r} {why}: refused"))
    return value


_JINJA = Environment(loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined,
                     keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True,
                     finalize=_finalize)
_JINJA.filters["quote"] = lambda value: shlex.quote(str(value))  # for shell templates


def render(template: str, **values: object) -> str:
    """Render templates/<component>/<file> with strict undefined variables and safe values."""
    return _JINJA.get_template(template).render(**values)


@dataclass(frozen=True)
class Item:
    """A file or directory the host must have: content from a local file or rendered text."""

    name: str
    dest: str
    mode: str = "644"
    src: str | None = None
    content: str | None = None
    sha256: str = ""
    directory: bool = False
    # Written once: a file the host already has is left as it is (bootstrap-only settings).
    create_only: bool = False
    # Key material: uploaded without ever printing its content (pyinfra's --diff would).
    secret: bool = False
    # A cached artifact the host fetches from the binary mirror (tasks/mirror.py) at this URL,
    # checked against sha256 before it is installed; src is its file in the local cache.
    url: str = ""
    cacert: str = ""


def directory(path: str, mode: str = "755") -> Item:
    """A directory with a mode."""
    return Item(f"directory {path}", path, mode, directory=True)


def template(name: str, template_path: str, dest: str, mode: str = "644",
             create_only: bool = False, secret: bool = False, **values: object) -> Item:
    """A file rendered from a template (the rendering happens here, on the control machine)."""
    text = render(template_path, **values)
    return Item(name, dest, mode, content=text, sha256=hashlib.sha256(text.encode()).hexdigest(),
                create_only=create_only, secret=secret)


def local(name: str, src: str, dest: str, mode: str = "644", sha256: str = "",
          secret: bool = False) -> Item:
    """A file copied from the control machine; one that does not exist yet (a dry run on a
    fresh state: the PKI is not made) has no sum, so it counts as pending."""
    digest = sha256 or (cache.sha256_file(src) if os.path.exists(src) else "")
    return Item(name, dest, mode, src=src, sha256=digest, secret=secret)


# sha256 -> local cache file of every artifact that prepared fetch ops take from the mirror: the
# runner fills the mirror with them before the ops run.
FETCHES: dict[str, str] = {}

# FileStates' key for the lines of the host's manifest (paths are absolute: no clash).
MANIFEST = "manifest"


class FileStates(FactBase):
    """Mode and sha256 of many paths in one command: {path: (mode, sha256|'dir')}, and under
    MANIFEST the lines of the host's manifest (what kubesmith recorded there)."""

    @staticmethod
    def default() -> dict[str, tuple[str, ...]]:
        return {}

    def command(self, paths: list[str], sums: str = paths_mod.SUMS) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        # A file's sum: the one recorded at upload (sums) while its inode, ctime and size are
        # unchanged, else read from its content.
        return (
            f'for p in {quoted}; do if [ -d "$p" ]; then echo "$p $(stat -c %a "$p") dir";'
            ' elif [ -f "$p" ]; then set -- $(stat -c "%a %i %z %s" "$p");'
            f' s=$(awk -v k="$2 $3 $4 $5 $6 $p" \'substr($0, 66) == k {{s = $1}} END {{print s}}\''
            f' {shlex.quote(sums)} 2>/dev/null);'
            ' echo "$p $1 ${s:-$(sha256sum < "$p" | cut -c1-64)}";'
            f' else echo "$p - -"; fi; done; sed "s/^/# /" {manifest.PATH} 2>/dev/null; true'
        )

    def process(self, output: list[str]) -> dict[str, tuple[str, ...]]:
        states: dict[str, tuple[str, ...]] = {}
        recorded = []
        for line in output:
            if line.startswith("# "):
                recorded.append(line[2:].strip())
                continue
            path, mode, digest = line.rsplit(" ", 2)
            states[path] = (mode, digest)
        states[MANIFEST] = tuple(recorded)
        return states


class Synced:
    """What sync decided per item: its op (None when the host already has it), which items'
    content the host had otherwise (replaced: their readers must restart), and the host's
    manifest lines with those this deploy records."""

    def __init__(self, ops: dict[Item, Op], replaced: list[Item],
                 recorded: set[str] | None = None) -> None:
        self.ops, self.replaced = ops, replaced
        self.recorded = recorded if recorded is not None else set()

    def changed(self, *items: Item) -> bool:
        """Whether any of these items is written by this deploy."""
        return any(self.ops[item] is not None for item in items)


def _ancestors(items: Sequence[Item]) -> list[str]:
    """The directories above the items that are not the system's (pyinfra makes missing ones)."""
    found: dict[str, None] = {}
    for item in items:
        parent = os.path.dirname(item.dest)
        while parent not in rules.SYSTEM_DIRS and parent not in ("", "/"):
            found[parent] = None
            parent = os.path.dirname(parent)
    return list(found)


def _entries(items: Sequence[Item], states: dict[str, tuple[str, ...]]) -> list[str]:
    """Manifest lines for the items, and for the topmost missing directory above each (made
    with it, so kubesmith's)."""
    lines = []
    for item in items:
        missing = [a for a in _ancestors([item]) if states.get(a, ("-", "-")) == ("-", "-")]
        lines += [manifest.line("dir", a) for a in missing[-1:]]
        lines.append(manifest.line("dir" if item.directory else "file", item.dest))
    return list(dict.fromkeys(lines))


def record(lines: Sequence[str], recorded: set[str]) -> None:
    """Append to the host's manifest the lines it lacks, before what they name is installed."""
    new = [line for line in dict.fromkeys(lines) if line not in recorded]
    if new:
        recorded.update(new)
        server.shell(name="record what kubesmith installs in its manifest",
                     commands=[manifest.append_command(new)])


def sync(items: Sequence[Item]) -> Synced:
    """Create ops only for items that differ on the host (one fact for all of them); every item
    (and the directories made for it) is in the host's manifest before it is written."""
    for item in items:  # every path is recorded, then removed by reset: plain ones only
        if why := rules.directory(item.dest, owned_by_kubesmith=False):
            raise UnsafeValue(rules.printable(f"{item.name}: path {item.dest!r} {why}: refused"))
    states = host.get_fact(FileStates, paths=[*(i.dest for i in items), *_ancestors(items)]
                           ) if items else {}
    recorded = set(states.get(MANIFEST, ()))
    record(_entries(items, states), recorded)
    ops: dict[Item, Op] = {}
    replaced: list[Item] = []
    for item in items:
        want = (item.mode, "dir" if item.directory else item.sha256)
        have = states.get(item.dest)
        if have == want or (item.create_only and have not in (None, ("-", "-"))):
            ops[item] = None
            continue
        if not item.directory and (have or ("", ""))[1] != want[1]:
            replaced.append(item)
        # One call site for every kind of op: pyinfra's CLI orders ops by their call lines.
        operation, arguments = _operation(item)
        ops[item] = operation(name=item.name, **arguments)
    return Synced(ops, replaced, recorded)


def _operation(item: Item) -> tuple[Callable[..., Op], dict[str, object]]:
    """The op writing an item: a directory; an artifact fetched from the binary mirror; a
    secret, or a file copied from the control machine (certificates, and the mirror's own
    artifacts; dry: maybe not made yet), uploaded without printing it
    through a temporary file renamed into place (a running binary cannot be written in place:
    "text file busy", which an upgrade meets on every host); a rendered file by files.put
    (whose --diff shows the change)."""
    if item.directory:
        return files.directory, {"path": item.dest, "mode": item.mode, "present": True}
    if item.url:
        FETCHES[item.sha256] = str(item.src)
        return fetch, {"url": item.url, "cacert": item.cacert, "sha256": item.sha256,
                       "dest": item.dest, "mode": item.mode}
    src = item.src if item.src else io.StringIO(item.content)
    if item.secret or item.src:
        return upload, {"src": src, "dest": item.dest, "mode": item.mode, "sha256": item.sha256,
                        "secret": item.secret}
    return files.put, {"src": src, "dest": item.dest, "mode": item.mode}


@operation(is_idempotent=False)
def upload(src: str | IO[str], dest: str, mode: str, sha256: str = "",
           secret: bool = False) -> Iterator[object]:
    """Upload a file without printing its content (files.put prints it under --diff), through a
    temporary file (a secret's is 0600 before any byte is written), moved into place atomically;
    its sum (when known) is recorded in paths.SUMS with the inode, ctime and size it has there.

    sync() decides that the host lacks the file, so this op always uploads."""
    temp, target = shlex.quote(f"{dest}.kubesmith-upload"), shlex.quote(dest)
    if secret:
        yield f"install -m 600 /dev/null {temp}"
    yield FileUploadCommand(src, temp)
    record = f" && {record_sum(dest, sha256)}" if SHA256.fullmatch(sha256) else ""
    yield f"chmod {shlex.quote(mode)} {temp} && mv -f {temp} {target}{record}"


SHA256 = re.compile(r"[0-9a-f]{64}")


def record_sum(dest: str, sha256: str, sums: str = paths_mod.SUMS) -> str:
    """The command recording a file's sum with its inode, ctime and size in sums (root-only,
    FileStates reads it back); a failure only costs reading the file next time."""
    target = shlex.quote(dest)
    return (f'{{ umask 077; echo "{sha256} $(stat -c "%i %z %s" {target}) "{target} >> '
            f"{shlex.quote(sums)} 2>/dev/null || true; }}")


@operation(is_idempotent=False)
def fetch(url: str, cacert: str, sha256: str, dest: str, mode: str) -> Iterator[str]:
    """Download an artifact from the binary mirror and install it (fetch_commands).

    sync() decides that the host lacks the file, so this op always fetches."""
    yield from fetch_commands(host.name, url, cacert, sha256, dest, mode)


def fetch_commands(host_name: str, url: str, cacert: str, sha256: str, dest: str,
                   mode: str) -> list[str]:
    """Download over TLS (the cluster CA) into a 0600 temporary file, check its sha256, then
    move it into place; a wrong sum removes it and fails naming host, file and both sums."""
    temp = shlex.quote(f"{dest}.kubesmith-upload")
    wrong = shlex.quote(f"{host_name}: {dest}: sha256 from the mirror is ")
    expected = shlex.quote(f", expected {sha256}: not installed")
    return [
        f"install -m 600 /dev/null {temp} && curl -fsS --retry 5 --retry-connrefused "
        f"--retry-delay 1 --cacert {shlex.quote(cacert)} -o {temp} {shlex.quote(url)} && "
        f"got=$(sha256sum < {temp} | cut -c1-64) && if [ \"$got\" != {shlex.quote(sha256)} ]; "
        f"then rm -f {temp}; echo {wrong}\"$got\"{expected} >&2; exit 1; fi",
        f"chmod {shlex.quote(mode)} {temp} && mv -f {temp} {shlex.quote(dest)}",
    ]


@dataclass(frozen=True)
class UnitState:
    """A systemd unit's state: active, enabled, and whether its main process runs an executable
    since replaced on disk (a binary upgraded by a run that stopped before the restart)."""

    active: str
    enabled: str
    replaced: bool = False


class UnitStates(FactBase):
    """The UnitState of several systemd units in one command."""

    @staticmethod
    def default() -> dict[str, UnitState]:
        return {}

    def command(self, units: list[str]) -> str:
        return "; ".join(
            f"echo {q} $(systemctl is-active {q}) $(systemctl is-enabled {q})"
            f" $(readlink /proc/$(systemctl show -p MainPID --value {q})/exe 2>/dev/null"
            " | grep -q ' (deleted)$' && echo replaced)" for q in map(shlex.quote, units))

    def process(self, output: list[str]) -> dict[str, UnitState]:
        states = {}
        for parts in (line.split() for line in output):
            rest = [p for p in parts[2:] if p != "replaced"]
            states[parts[0]] = UnitState(parts[1], rest[0] if rest else "",
                                         "replaced" in parts[2:])
        return states


@dataclass(frozen=True)
class Service:
    """A systemd service: its unit item and the items (binaries, configs) it reads."""

    name: str
    unit: Item
    inputs: Sequence[Item] = ()
    # Another reason to restart a running service (e.g. flanneld lost its vxlan device).
    restart: bool = False
    # False: queue the start or restart (`systemctl --no-block`) instead of failing the deploy
    # when systemd's first start job fails; the phase's readiness check waits for the service
    # (systemd's Restart= retries it). For daemons whose start waits on other hosts.
    wait: bool = True
    # True: changed inputs or certificates reload it (`systemctl reload`); only a changed unit
    # restarts it. For daemons that re-read everything on reload and keep their process.
    reload: bool = False


def services(ctx: DeployContext, synced: Synced, wanted: Sequence[Service]) -> None:
    """Reload, restart (inputs or certificates changed, or its running executable replaced, and
    it runs), start and enable, as needed.

    A service started or restarted here has consumed the certificates replaced for it earlier.
    """
    states = host.get_fact(UnitStates, units=[f"{s.name}.service" for s in wanted])
    stopped = UnitState("inactive", "disabled")
    running = {s.name for s in wanted
               if states.get(f"{s.name}.service", stopped).active == "active"}
    _record_makes(synced.recorded, [s.name for s in wanted], running)
    if any(synced.changed(s.unit) for s in wanted):
        systemd.daemon_reload(name="reload systemd units")
    for svc in wanted:
        state = states.get(f"{svc.name}.service", stopped)
        active, enabled = state.active, state.enabled
        certificates = ctx.take_restart(host.name, svc.name)
        changed = (synced.changed(svc.unit, *svc.inputs) or svc.restart or certificates
                   or state.replaced)
        if active == "active" and changed:
            if svc.reload and not synced.changed(svc.unit) and not svc.restart:
                systemd.service(name=service_op(f"reload {svc.name} (inputs changed)"),
                                service=f"{svc.name}.service", reloaded=True)
            else:
                _restart(svc)
        if active != "active" or enabled != "enabled":
            _start(svc)


MAKES_PROBE = {
    "dir": 'if [ ! -e {q} ]; then echo {q} absent; elif [ -n "$(ls -A {q})" ]; then echo {q} full;'
           ' else echo {q} empty; fi',
    "link": "ip link show {q} >/dev/null 2>&1 && echo {q} full || echo {q} absent",
}


def _record_makes(recorded: set[str], names: Sequence[str], running: set[str]) -> None:
    """Record what these services make (service table) before they first start. A directory or
    link already there and not empty is recorded `kept` (reset leaves it), unless the service
    already runs (installed by an earlier kubesmith, before manifests)."""
    pending: dict[tuple[str, str], bool] = {}
    for name in names:
        for kind, value in service_table.SERVICES[name].makes:
            if {manifest.line(kind, value), manifest.line("kept", value)}.isdisjoint(recorded):
                pending[(kind, value)] = pending.get((kind, value), False) or name in running
    probes = [MAKES_PROBE[k].format(q=shlex.quote(v)) for k, v in pending if k in MAKES_PROBE]
    found = dict(line.split()[:2] for line in host.get_fact(
        ShellOutput, probe="; ".join(probes)).splitlines() if len(line.split()) == 2
    ) if probes else {}
    record([manifest.line("kept" if found.get(v) == "full" and not adopted else k, v)
            for (k, v), adopted in pending.items()], recorded)


def _restart(svc: Service) -> None:
    """Restart a service: wait for its start job, or (wait=False) only queue it."""
    unit = f"{svc.name}.service"
    if svc.wait:
        systemd.service(name=service_op(f"restart {svc.name} (inputs changed)"), service=unit,
                        restarted=True)
    else:
        server.shell(name=service_op(f"restart {svc.name} (inputs changed)"),
                     commands=[f"systemctl restart --no-block {unit}"])


def _start(svc: Service) -> None:
    """Enable and start a service: wait for its start job, or (wait=False) only queue it."""
    unit = f"{svc.name}.service"
    if svc.wait:
        systemd.service(name=service_op(f"{svc.name} running and enabled"), service=unit,
                        running=True, enabled=True)
    else:
        server.shell(name=service_op(f"{svc.name} running and enabled"),
                     commands=[f"systemctl enable {unit}", f"systemctl start --no-block {unit}"])


class ShellOutput(FactBase):
    """The output of a read-only shell probe (empty when it prints nothing)."""

    @staticmethod
    def default() -> str:
        return ""

    def command(self, probe: str) -> str:
        return f"( {probe} ) 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()
