"""Shared op patterns that decide at prepare time from one fact per task, so an unchanged host
costs a couple of round trips: files and directories synced by checksum, services restarted
only when their unit, config or binary changed."""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from jinja2.runtime import Context
from pyinfra import host
from pyinfra.api import FactBase, FileUploadCommand, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import server, systemd

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
    # A cached artifact the host fetches from the binary mirror (tasks/mirror.py) at this URL,
    # checked against sha256 before it is installed; src is its file in the local cache.
    url: str = ""
    cacert: str = ""


def directory(path: str, mode: str = "755") -> Item:
    """A directory with a mode."""
    return Item(f"directory {path}", path, mode, directory=True)


def template(name: str, template_path: str, dest: str, mode: str = "644",
             create_only: bool = False, **values: object) -> Item:
    """A file rendered from a template (the rendering happens here, on the control machine)."""
    text = render(template_path, **values)
    return Item(name, dest, mode, content=text, sha256=hashlib.sha256(text.encode()).hexdigest(),
                create_only=create_only)


def local(name: str, src: str, dest: str, mode: str = "644", sha256: str = "") -> Item:
    """A file copied from the control machine; one that does not exist yet (a dry run on a
    fresh state: the PKI is not made) has no sum, so it counts as pending."""
    digest = sha256 or (cache.sha256_file(src) if os.path.exists(src) else "")
    return Item(name, dest, mode, src=src, sha256=digest)


# sha256 -> local cache file of every artifact that prepared fetch ops take from the mirror: the
# runner fills the mirror with them before the ops run.
FETCHES: dict[str, str] = {}

# FileStates' key for the lines of the host's manifest (paths are absolute: no clash).
MANIFEST = "manifest"
# Sets $h to a command printing the sha256 of its standard input first: OpenSSL's where the host
# has it (it uses the CPU's SHA instructions: 4x coreutils' sha256sum here), else sha256sum.
HASHER = "h=sha256sum; command -v openssl >/dev/null && h='openssl dgst -sha256 -r'"


# FileStates' awk: the asked paths (up to an empty line), then stat's `type|mode|inode ctime
# size|path` lines; prints `= mode dir|sum path`, `? mode - path` (a file whose sum is not
# recorded for its inode, ctime and size: hashed by the shell), `= - - path` (missing, or neither
# a file nor a directory).
_FILE_STATES_AWK = (
    "BEGIN { while ((getline line < sums) > 0) known[substr(line, 66)] = substr(line, 1, 64) } "
    '!listed { if ($0 == "") listed = 1; else asked[$0] = 1; next } '
    '{ split($0, f, "|"); path = substr($0, length(f[1] f[2] f[3]) + 4); seen[path] = 1; '
    'key = f[3] " " path; '
    'if (f[1] == "directory") print "=", f[2], "dir", path; '
    'else if (f[1] ~ /^regular/ && key in known) print "=", f[2], known[key], path; '
    'else if (f[1] ~ /^regular/) print "?", f[2], "-", path; '
    'else print "=", "-", "-", path } '
    'END { for (p in asked) if (!(p in seen)) print "=", "-", "-", p }'
)


class FileStates(FactBase):
    """Mode and sha256 of many paths in one command: {path: (mode, sha256|'dir')}, and under
    MANIFEST the lines of the host's manifest (what kubesmith recorded there)."""

    @staticmethod
    def default() -> dict[str, tuple[str, ...]]:
        return {}

    def command(self, paths: list[str], sums: str = paths_mod.SUMS) -> str:
        quoted = " ".join(shlex.quote(p) for p in paths)
        # One stat and one awk for all the paths (not two processes per path): a file's sum is
        # the one recorded at upload (sums) while its inode, ctime and size are unchanged, else
        # read from its content ($h, for those files only).
        return (
            f"{HASHER}; {{ printf '%s\\n' {quoted}; echo; "
            f"stat -L -c '%F|%a|{paths_mod.SUMS_IDENTITY}|%n' -- {quoted} 2>/dev/null; }} | "
            f"awk -v sums={shlex.quote(sums)} {shlex.quote(_FILE_STATES_AWK)} | "
            'while read -r t m d p; do [ "$t" = "?" ] && d=$($h < "$p" | cut -c1-64); '
            f'echo "$p $m $d"; done; sed "s/^/# /" {manifest.PATH} 2>/dev/null; true'
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


def sync(items: Sequence[Item], retired: Sequence[str] = ()) -> Synced:
    """Create ops only for items that differ on the host (one fact for all of them, which also
    reads the retired paths, removed where present); every item (and the directories made for
    it) is in the host's manifest before it is written."""
    for item in items:  # every path is recorded, then removed by reset: plain ones only
        if why := rules.directory(item.dest, owned_by_kubesmith=False):
            raise UnsafeValue(rules.printable(f"{item.name}: path {item.dest!r} {why}: refused"))
    states = host.get_fact(FileStates, paths=[*(i.dest for i in items), *_ancestors(items),
                                              *retired]) if items else {}
    present = [p for p in retired if states.get(p, ("-", "-")) != ("-", "-")]
    if present:
        server.shell(name=f"retired {', '.join(present)} removed",
                     commands=[f"rm -f {' '.join(shlex.quote(p) for p in present)}"])
    recorded = set(states.get(MANIFEST, ()))
    record(_entries(items, states), recorded)
    pending = [item for item in items if not _present(item, states.get(item.dest))]
    replaced = [item for item in pending if not item.directory
                and (states.get(item.dest) or ("", ""))[1] != item.sha256]
    ops: dict[Item, Op] = dict.fromkeys(items)
    # Two ops at most: directories and files from the control machine, then every artifact
    # from the binary mirror (after the directories it goes into).
    for batch in ([i for i in pending if not i.url], [i for i in pending if i.url]):
        if batch:
            operation, arguments = _operation(batch)
            ops.update(dict.fromkeys(batch, operation(**arguments)))
    return Synced(ops, replaced, recorded)


def _present(item: Item, have: tuple[str, ...] | None) -> bool:
    """Whether the host already has the item (mode and content; a create_only file: at all)."""
    want = (item.mode, "dir" if item.directory else item.sha256)
    return have == want or (item.create_only and have not in (None, ("-", "-")))


def _operation(items: list[Item]) -> tuple[Callable[..., Op], dict[str, object]]:
    """The op installing these items: artifacts fetched from the binary mirror, or directories
    and files from the control machine (write)."""
    if items[0].url:
        for item in items:
            FETCHES[item.sha256] = str(item.src)
        return fetch, {"name": ", ".join(i.name for i in items), "files": items}
    return write, {"name": ", ".join(i.name for i in items), "files": items}


# A file up to this size travels in its op's one archive; a larger one (an artifact seeding the
# binary mirror, or uploaded where there is no mirror) is uploaded on its own.
ARCHIVE_LIMIT = 1 << 20


def _size(item: Item) -> int:
    """The bytes an item's content has (a file not made yet, in a dry run: 0)."""
    if item.src is None:
        return len((item.content or "").encode())
    return os.path.getsize(item.src) if os.path.exists(item.src) else 0


class _Archive(io.RawIOBase):
    """A tar archive of small files, each named as its temporary file beside its destination
    with mode 0600; built when first read (pyinfra's CLI prepares ops in a dry run, whose
    files may not be made yet)."""

    def __init__(self, items: Sequence[Item]) -> None:
        super().__init__()
        self.items = items
        self._data: io.BytesIO | None = None

    def _built(self) -> io.BytesIO:
        if self._data is None:
            self._data = io.BytesIO()
            with tarfile.open(fileobj=self._data, mode="w", format=tarfile.GNU_FORMAT) as tar:
                for item in self.items:
                    content = (item.content or "").encode() if item.src is None else (
                        Path(item.src).read_bytes())
                    info = tarfile.TarInfo(_temp(item).lstrip("/"))
                    info.size, info.mode, info.mtime = len(content), 0o600, time.time()
                    tar.addfile(info, io.BytesIO(content))
            self._data.seek(0)
        return self._data

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._built().seek(offset, whence)

    def tell(self) -> int:
        return self._built().tell()

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        return self._built().readinto(buffer)

    def __repr__(self) -> str:
        return f"archive of {', '.join(i.dest for i in self.items)}"


def _temp(item: Item) -> str:
    """The temporary file an item is written to, beside its destination."""
    return f"{item.dest}.kubesmith-upload"


def _private(quoted: Sequence[str]) -> str:
    """The command making these (quoted) files empty and 0600, before any byte is written."""
    return f"for t in {' '.join(quoted)}; do install -m 600 /dev/null \"$t\" || exit 1; done"


def _into_place(item: Item, sums: str) -> str:
    """The command giving an item's temporary file its mode and renaming it over its
    destination (a running binary cannot be written in place: "text file busy"), its sum
    recorded in sums."""
    temp = shlex.quote(_temp(item))
    record = f" && {record_sum(item.dest, item.sha256, sums)}" if cache.SHA256.fullmatch(
        item.sha256) else ""
    return (f"chmod {shlex.quote(item.mode)} {temp} && mv -f {temp} {shlex.quote(item.dest)}"
            f"{record} || exit 1")


@operation(is_idempotent=False)
def write(files: Sequence[Item]) -> Iterator[object]:
    """Make directories and write files from the control machine (write_commands).

    sync() decides that the host lacks them, so this op always writes."""
    yield from write_commands(files, paths_mod.SUMS, paths_mod.UPLOAD_ARCHIVE)


def write_commands(items: Sequence[Item], sums: str = paths_mod.SUMS,
                   archive: str = paths_mod.UPLOAD_ARCHIVE) -> list[object]:
    """Directories made with their modes; the small files in one tar archive, the large ones
    each on its own, all through 0600 temporary files (an archive or file that holds a key is
    private before its first byte, and nothing prints content: pyinfra's files.put would under
    --diff); then each moved into place (_into_place)."""
    directories = [i for i in items if i.directory]
    small = [i for i in items if not i.directory and _size(i) <= ARCHIVE_LIMIT]
    large = [i for i in items if not i.directory and i not in small]
    private = [shlex.quote(p) for p in ([archive] if small else []) + [_temp(i) for i in large]]
    first = [f"mkdir -p {shlex.quote(d.dest)} && chmod {shlex.quote(d.mode)} "
             f"{shlex.quote(d.dest)} || exit 1" for d in directories]
    if private:
        first.append(f"mkdir -p {shlex.quote(os.path.dirname(archive))} && {_private(private)}")
    commands: list[object] = ["; ".join(first)] if first else []
    if small:
        commands.append(FileUploadCommand(_Archive(small), archive))
    commands += [FileUploadCommand(str(i.src), _temp(i)) for i in large]
    files_ = [*small, *large]
    if not files_:
        return commands
    temps = " ".join(shlex.quote(_temp(i)) for i in files_)
    last = [f"tar -x -p --no-same-owner -f {shlex.quote(archive)} -C /; rc=$?; rm -f "
            f"{shlex.quote(archive)}; [ $rc = 0 ] || {{ rm -f {temps}; exit 1; }}"] if small else []
    commands.append("; ".join([*last, *(_into_place(i, sums) for i in files_)]))
    return commands


def at_once(commands: Sequence[str]) -> str:
    """One shell command running these commands at the same time (each in a subshell of its
    own): it waits for all and fails if any failed."""
    started = " ".join(f'{{ {c}; }} & pids="$pids $!";' for c in commands)
    return (f"(pids=; {started} rc=0; for p in $pids; do wait \"$p\" || rc=1; done; "
            "exit $rc)")


def record_sum(dest: str, sha256: str, sums: str = paths_mod.SUMS) -> str:
    """The command recording a file's sum with its inode, ctime and size in sums (root-only,
    FileStates reads it back); a failure only costs reading the file next time."""
    target = shlex.quote(dest)
    identity = f'$(stat -c "{paths_mod.SUMS_IDENTITY}" {target})'
    return (f'{{ umask 077; echo "{sha256} {identity} "{target} >> '
            f"{shlex.quote(sums)} 2>/dev/null || true; }}")


@operation(is_idempotent=False)
def fetch(files: Sequence[Item]) -> Iterator[str]:
    """Download artifacts from the binary mirror and install them (fetch_command).

    sync() decides that the host lacks the files, so this op always fetches."""
    yield fetch_command(host.name, files)


def fetch_command(host_name: str, items: Sequence[Item], sums: str = paths_mod.SUMS,
                  mirror: str = paths_mod.MIRROR_DIR) -> str:
    """One command: every item into a 0600 temporary file, copied from the binary mirror's
    directory where the host is the mirror (no TLS to itself), else downloaded, all at once,
    over TLS (the cluster CA); each sha256 checked, then moved into place with its sum
    recorded. A wrong sum removes every temporary file and fails naming host, file and both
    sums."""
    temps = [shlex.quote(_temp(i)) for i in items]
    pairs = list(zip(items, temps, strict=True))
    clean = f"rm -f {' '.join(temps)}"
    # The downloads gather in "$@", curl's --next between them.
    lines = [HASHER, _private(temps), "set --; n="]
    for item, temp in pairs:
        download = (f'set -- "$@" $n -fsS --retry 5 --retry-connrefused --retry-delay 1 '
                    f"--cacert {shlex.quote(item.cacert)} -o {temp} {shlex.quote(item.url)}; "
                    "n=--next")
        local = shlex.quote(f"{mirror}/{item.sha256}")
        lines.append(f"{{ [ -f {local} ] && cp --reflink=auto {local} {temp}; }} 2>/dev/null || "
                     f"{{ {download}; }}"
                     if cache.SHA256.fullmatch(item.sha256) else download)
    # At most 4 downloads per host at once; the whole set again (3 tries) after an error curl's
    # --retry does not cover (a connection reset in the TLS handshake of a busy mirror).
    lines.append('[ $# = 0 ] || for try in 1 2 3; do curl --parallel --parallel-max 4 '
                 f'--no-progress-meter "$@" && break; [ $try = 3 ] && {{ {clean}; exit 1; }}; '
                 "sleep 2; done")
    for item, temp in pairs:
        wrong = shlex.quote(f"{host_name}: {item.dest}: sha256 from the mirror is ")
        expected = shlex.quote(f", expected {item.sha256}: not installed")
        lines.append(f'got=$($h < {temp} | cut -c1-64); if [ "$got" != '
                     f'{shlex.quote(item.sha256)} ]; then {clean}; '
                     f'echo {wrong}"$got"{expected} >&2; exit 1; fi')
    return "; ".join([*lines, *(_into_place(i, sums) for i in items)])


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
        # One systemctl for all units (not three per unit): its blocks come in the order asked,
        # separated by empty lines; each main process's executable checked for " (deleted)".
        return (
            f"set -- {' '.join(map(shlex.quote, units))}; echo \"unit=$1\"; "
            "systemctl show -p ActiveState -p UnitFileState -p MainPID -- \"$@\" | "
            "while IFS= read -r l; do case $l in "
            "'') shift; echo \"unit=$1\";; "
            "MainPID=0) ;; "
            "MainPID=*) case $(readlink /proc/${l#MainPID=}/exe 2>/dev/null) in "
            "*' (deleted)') echo replaced=yes;; esac;; "
            "*) echo \"$l\";; esac; done"
        )

    def process(self, output: list[str]) -> dict[str, UnitState]:
        found: dict[str, dict[str, str]] = {}
        fields: dict[str, str] = {}
        for line in output:
            key, _, value = line.partition("=")
            if key == "unit":
                fields = found.setdefault(value, {}) if value else {}
            else:
                fields[key] = value
        return {unit: UnitState(f.get("ActiveState", "inactive"), f.get("UnitFileState", ""),
                                f.get("replaced") == "yes") for unit, f in found.items()}


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
    found = host.get_fact(UnitStates, units=[f"{s.name}.service" for s in wanted])
    stopped = UnitState("inactive", "disabled")
    states = {s.name: found.get(f"{s.name}.service", stopped) for s in wanted}
    running = {name for name, state in states.items() if state.active == "active"}
    _record_makes(ctx.data, synced.recorded, [s.name for s in wanted], running)
    disabled = [name for name, state in states.items() if state.enabled != "enabled"]
    if disabled or any(synced.changed(s.unit) for s in wanted):
        server.shell(name=", ".join(["reload systemd units", *(f"enable {n}" for n in disabled)]),
                     commands=[reload_command([f"{n}.service" for n in disabled])])
    for svc in wanted:
        state = states[svc.name]
        active = state.active
        certificates = ctx.take_restart(host.name, svc.name)
        changed = (synced.changed(svc.unit, *svc.inputs) or svc.restart or certificates
                   or state.replaced)
        if active == "active" and changed:
            if svc.reload and not synced.changed(svc.unit) and not svc.restart:
                systemd.service(name=service_op(f"reload {svc.name} (inputs changed)"),
                                service=f"{svc.name}.service", reloaded=True)
            else:
                _restart(svc)
        if active != "active":
            _start(svc)


def reload_command(enable: Sequence[str]) -> str:
    """Enable these units, then one daemon-reload: `systemctl enable` reloads systemd on its
    own, a reload per unit (0.14-0.18 CPU-s of systemd each on a lab host), unless told not
    to."""
    enabled = f"systemctl enable --no-reload -- {' '.join(map(shlex.quote, enable))} && " if (
        enable) else ""
    return f"{enabled}systemctl daemon-reload"


MAKES_PROBE = {
    "dir": 'if [ ! -e {q} ]; then echo {q} absent; elif [ -n "$(ls -A {q})" ]; then echo {q} full;'
           ' else echo {q} empty; fi',
    "link": "ip link show {q} >/dev/null 2>&1 && echo {q} full || echo {q} absent",
}


def _record_makes(data: Mapping[str, object], recorded: set[str], names: Sequence[str],
                  running: set[str]) -> None:
    """Record what these services make (service table) before they first start. A directory or
    link already there and not empty is recorded `kept` (reset leaves it), unless the service
    already runs (installed by an earlier kubesmith, before manifests)."""
    pending: dict[tuple[str, str], bool] = {}
    for name in names:
        for kind, value in service_table.SERVICES[name].made(data):
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
    """Start a service (enabled already): wait for its start job, or (wait=False) only queue
    it."""
    unit = f"{svc.name}.service"
    if svc.wait:
        systemd.service(name=service_op(f"{svc.name} running and enabled"), service=unit,
                        running=True)
    else:
        server.shell(name=service_op(f"{svc.name} running and enabled"),
                     commands=[f"systemctl start --no-block {unit}"])


class ShellOutput(FactBase):
    """The output of a read-only shell probe (empty when it prints nothing)."""

    @staticmethod
    def default() -> str:
        return ""

    def command(self, probe: str) -> str:
        return f"( {probe} ) 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output).strip()
