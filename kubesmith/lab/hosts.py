"""Lab lifecycle: boot, report and tear down systemd-nspawn hosts; stop and start one host."""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubesmith import pki, sshkeys
from kubesmith.errors import UserError
from kubesmith.lab import cgroups, network, rootfs
from kubesmith.lab.state import (
    DEFAULT_BRIDGE,
    FIRST_HOST_OCTET,
    LabHost,
    LabPaths,
    LabState,
    load,
    save,
)

SSH_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0  # a clean shutdown of one host (a cluster's units take longer)
Log = Callable[[str], None]


class LabError(UserError):
    """A lab operation could not be done; the message says why and what to do."""


def preflight() -> None:
    """Refuse early, with one line, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (systemd-nspawn, bridges, mounts): run as root")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: apt-get install systemd-container debootstrap "
                           "iproute2 openssh-client")


# Kernel limits every lab host shares with this machine (one user namespace): each host's systemd,
# kubelet and containerd take inotify instances from root's 128 by default, so a few hosts with a
# cluster exhaust it ("inotify_init: too many open files", hosts failing to boot).
SHARED_LIMITS = {"/proc/sys/fs/inotify/max_user_instances": 1024,
                 "/proc/sys/fs/inotify/max_user_watches": 524288}


# The values the lab raised, as the machine had them: restored when no lab host runs any more
# (tmpfs, like the values themselves: a reboot forgets both).
RAISED_RECORD = Path("/run/kubesmith/lab-raised-limits.json")


@contextlib.contextmanager
def _record_lock(record: Path) -> Iterator[None]:
    """The record (and the limits) to this process alone while held: labs booted at the same
    time (the test suite's workers) raise at once, and two unlocked writes had interleaved into
    a record no JSON parser reads."""
    record.parent.mkdir(parents=True, exist_ok=True)
    with open(record.with_name(f"{record.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _read_record(log: Log, record: Path) -> dict[str, int]:
    """The machine's own values the lab raised (empty without a record, or with one that does
    not parse: said in one line, and those values are then not restored)."""
    if not record.exists():
        return {}
    try:
        raised = json.loads(record.read_text())
    except ValueError:
        raised = None
    if not isinstance(raised, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in raised.items()):
        log(f"lab: {record} is unreadable: ignored (the limits it recorded are not restored)")
        return {}
    return raised


def raise_shared_limits(log: Log, record: Path | None = None) -> None:
    """Raise the shared kernel limits lab hosts need when they are lower (never lowers them),
    recording the machine's own values for restore_shared_limits."""
    record = record or RAISED_RECORD
    with _record_lock(record):
        raised = _read_record(log, record)
        for path, wanted in SHARED_LIMITS.items():
            current = int(Path(path).read_text())
            if current < wanted:
                Path(path).write_text(f"{wanted}\n")
                raised.setdefault(path, current)
                log(f"lab: {Path(path).name} raised from {current} to {wanted} for the lab hosts")
        if raised:
            pki.write_atomic(record, json.dumps(raised).encode(), 0o644)


def restore_shared_limits(log: Log, record: Path | None = None,
                          hosts_running: Callable[[], bool] | None = None) -> None:
    """Put back the limits the lab raised, once no lab host (of any lab) runs on this machine;
    a value someone changed since is left as it is."""
    record = record or RAISED_RECORD
    if not record.exists():
        return
    with _record_lock(record):
        if not record.exists():  # (restored by another lab meanwhile)
            return
        if (hosts_running or _any_lab_host)():
            log("lab: shared kernel limits stay raised: other lab hosts still run on this "
                "machine")
            return
        for path, original in _read_record(log, record).items():
            if path in SHARED_LIMITS and int(Path(path).read_text()) == SHARED_LIMITS[path]:
                Path(path).write_text(f"{original}\n")
                log(f"lab: {Path(path).name} restored to {original}")
        record.unlink()


def _any_lab_host() -> bool:
    """Whether any systemd-nspawn process runs on this machine (a host of any lab)."""
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if proc.read_bytes().split(b"\0")[0].endswith(b"systemd-nspawn"):
                return True
    return False


def host_name(index: int) -> str:
    """The name of the lab host with that 1-based index."""
    return f"lab-{index}"


def _pid_alive(pid: int) -> bool:
    """Whether the process runs: a zombie counts as gone (and is reaped if it is our child).

    Zombies matter here: this machine's PID 1 does not reap the orphans it inherits, so an
    nspawn launched by an earlier `deploy.py lab` process stays a zombie after it exits.
    """
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _host_running(host: LabHost) -> bool:
    """Whether the host's own systemd-nspawn runs (not a zombie, not a reused pid)."""
    if not _pid_alive(host.pid):
        return False
    try:
        argv = Path(f"/proc/{host.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return argv[0].endswith(b"systemd-nspawn") and host.merged.encode() in argv


def _write(root: Path, path: str, content: str, mode: int = 0o644) -> None:
    """Write a file into a host's root filesystem with that mode."""
    dest = root / path.lstrip("/")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(content)
    os.chmod(dest, mode)


def _prepare_host(paths: LabPaths, state: LabState, host: LabHost, client_pub: str,
                  hosts_file: str) -> str:
    """Mount the host's overlay and write its identity; return its host public key line."""
    hdir = paths.host_dir(host.name)
    for sub in ("upper", "work", "merged", "containerd"):
        (hdir / sub).mkdir(parents=True, exist_ok=True)
    merged = hdir / "merged"
    if not os.path.ismount(merged):
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             f"lowerdir={state.rootfs},upperdir={hdir / 'upper'},workdir={hdir / 'work'}",
             str(merged)],
            check=True,
        )
    host.merged = str(merged)
    _write(merged, "/etc/hostname", host.name + "\n")
    _write(merged, "/etc/hosts", hosts_file)
    machine_id = merged / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")
    _write(merged, "/etc/systemd/network/10-host0.network",
           f"[Match]\nName=host0\n\n[Network]\nAddress={host.address}/{state.prefix_len}\n"
           f"Gateway={state.gateway}\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n")
    _write(merged, "/root/.ssh/authorized_keys", client_pub + "\n", 0o600)
    host_key = merged / "etc/ssh/ssh_host_ed25519_key"
    return sshkeys.ensure(host_key, f"root@{host.name}")


def _launch(paths: LabPaths, state: LabState, host: LabHost) -> None:
    """Start systemd-nspawn for the host in its own session and cgroups."""
    hdir = paths.host_dir(host.name)
    host.cgroups = cgroups.create(f"{state.bridge}-{host.name}")
    cmd = [
        "systemd-nspawn", "-D", host.merged, "-M", f"{state.bridge}-{host.name}", "-b",
        "--register=no",
        "--keep-unit", f"--network-bridge={state.bridge}", "--console=read-only",
        "--capability=all", "--system-call-filter=@keyring bpf", "--bind=/dev/kmsg",
        f"--bind={hdir / 'containerd'}:/var/lib/containerd", "--resolv-conf=off",
        "--timezone=off", "--link-journal=no",
    ]
    env = dict(os.environ, SYSTEMD_NSPAWN_API_VFS_WRITABLE="1")
    with open(hdir / "console.log", "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, preexec_fn=lambda: cgroups.enter(host.cgroups),
        )
    host.pid = proc.pid


def _ssh_ready(paths: LabPaths, host: LabHost, deadline: float) -> str | None:
    """Wait until ssh with strict host key checking runs a command; None or the reason."""
    while time.monotonic() < deadline:
        if not _pid_alive(host.pid):
            return "its systemd-nspawn process exited"
        try:
            with socket.create_connection((host.address, 22), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.1)
            continue
        probe = subprocess.run(
            ["ssh", "-F", str(paths.ssh_config), host.name, "systemctl is-system-running --wait"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        if probe.stdout.strip() in ("running", "degraded"):
            return None
        time.sleep(0.2)
    return f"no ssh within {SSH_TIMEOUT:.0f} s"


def _console_tail(paths: LabPaths, name: str, lines: int = 15) -> str:
    """The last lines of a host's console log (why it did not come up)."""
    log = paths.host_dir(name) / "console.log"
    if not log.exists():
        return "(no console log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def _write_client_files(paths: LabPaths, state: LabState, host_keys: dict[str, str]) -> None:
    known = [f"{h.name},{h.address} {' '.join(host_keys[h.name].split()[:2])}"
             for h in state.hosts]
    paths.known_hosts.write_text("\n".join(known) + "\n")
    blocks = [
        f"Host {h.name} {h.address}\n  HostName {h.address}\n  User root\n"
        f"  IdentityFile {paths.ssh_key}\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {paths.known_hosts}\n  StrictHostKeyChecking yes\n"
        f"  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 5\n"
        for h in state.hosts
    ]
    paths.ssh_config.write_text("\n".join(blocks))


def _configure(state: LabState, count: int, subnet: str | None,
               bridge: str | None) -> LabState:
    """Settle the lab's subnet, bridge and gateway, refusing a change or a clash early."""
    if subnet and state.hosts and subnet != state.subnet:
        raise LabError(f"a lab on {state.subnet} exists: run `lab down` before changing subnet")
    state.subnet = subnet or state.subnet
    if bridge and not re.fullmatch(r"[a-z][a-z0-9-]{0,14}", bridge):
        raise LabError(f"bridge name {bridge!r}: 1-15 of a-z, 0-9, '-', starting with a letter")
    if bridge and state.hosts and bridge != state.bridge:
        raise LabError(f"a lab on bridge {state.bridge} exists: run `lab down` before changing it")
    state.bridge = bridge or state.bridge
    net = ipaddress.ip_network(state.subnet)
    if count + FIRST_HOST_OCTET >= net.num_addresses:
        raise LabError(f"{count} hosts do not fit in {state.subnet}")
    if not network.link_exists(state.bridge):
        try:
            network.check_subnet_free(state.subnet, state.bridge)
        except network.SubnetInUse as error:
            raise LabError(str(error)) from error
    state.gateway = str(net.network_address + 1)
    return state


def _provide_machine_side(paths: LabPaths, state: LabState) -> str:
    """Root filesystem, client key and bridge on this machine; return the client public key."""
    state.rootfs = str(rootfs.ensure_extracted(rootfs.ensure_tarball()))
    client_pub = sshkeys.ensure(paths.ssh_key, "kubesmith-lab")
    network.ensure_bridge(state.bridge, state.gateway, state.prefix_len)
    return client_pub


def _add_hosts(state: LabState, count: int) -> None:
    """Record hosts lab-1 .. lab-count not recorded yet, each with its fixed address."""
    net = ipaddress.ip_network(state.subnet)
    known = {h.name for h in state.hosts}
    for index in range(1, count + 1):
        if host_name(index) not in known:
            address = net.network_address + FIRST_HOST_OCTET + index - 1
            state.hosts.append(LabHost(host_name(index), str(address)))


def _hosts_file(state: LabState) -> str:
    """The /etc/hosts every lab host gets: localhost and every lab host by name."""
    return "127.0.0.1 localhost\n" + "".join(f"{h.address} {h.name}\n" for h in state.hosts)


def _prepare_all(paths: LabPaths, state: LabState, client_pub: str) -> list[LabHost]:
    """Prepare every host's disk and the client's ssh files; return the hosts not running."""
    hosts_file = _hosts_file(state)
    host_keys = {}
    for host in state.hosts:
        host_keys[host.name] = _prepare_host(paths, state, host, client_pub, hosts_file)
    _write_client_files(paths, state, host_keys)
    save(paths, state)
    return [host for host in state.hosts if not _pid_alive(host.pid)]


def _boot(paths: LabPaths, state: LabState, host: LabHost, log: Log) -> None:
    """Launch one prepared host and record its pid at once (so `down` finds it)."""
    _launch(paths, state, host)
    save(paths, state)
    log(f"lab: started {host.name} ({host.address}), pid {host.pid}")


def _wait_ssh(paths: LabPaths, hosts: list[LabHost]) -> None:
    """Wait until every host answers ssh; raise LabError with each failure's console tail."""
    deadline = time.monotonic() + SSH_TIMEOUT
    with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
        reasons = dict(zip([h.name for h in hosts],
                           pool.map(lambda h: _ssh_ready(paths, h, deadline), hosts),
                           strict=True))
    failed = {name: why for name, why in reasons.items() if why}
    if failed:
        raise LabError("\n".join(
            f"lab host {name}: {why}; console log tail:\n{_console_tail(paths, name)}"
            for name, why in failed.items()))


def up(count: int, subnet: str | None = None, paths: LabPaths | None = None,
       log: Log = print, bridge: str | None = None) -> LabState:
    """Boot the lab with `count` hosts (starting every recorded host not running yet)."""
    preflight()
    raise_shared_limits(log)
    paths = paths or LabPaths()
    state = _configure(load(paths) or LabState(), count, subnet, bridge)
    t0 = time.monotonic()
    client_pub = _provide_machine_side(paths, state)
    _add_hosts(state, count)
    for host in _prepare_all(paths, state, client_pub):
        _boot(paths, state, host, log)
    _wait_ssh(paths, state.hosts)
    log(f"lab: {len(state.hosts)} hosts ssh-ready in {time.monotonic() - t0:.1f} s")
    return state


def _cgroup_pids(paths: list[str]) -> list[int]:
    """PIDs in the given cgroups and their descendants (every hierarchy)."""
    pids = set()
    for path in paths:
        for procs in Path(path).glob("**/cgroup.procs"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in procs.read_text().split())
    return sorted(pids)


def _kill_cgroup_members(paths: list[str]) -> None:
    """SIGKILL every process in the given cgroups (one pass)."""
    for pid in _cgroup_pids(paths):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_cgroups_empty(paths: list[str], seconds: float = 5.0, kill: bool = False,
                        child: int = 0) -> None:
    """Wait until no process is left in the cgroups; with kill, SIGKILL them on every pass.

    `child` (nspawn, when we launched it) is reaped on the way: a zombie may still be listed.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        _pid_alive(child)
        if not _cgroup_pids(paths):
            return
        if kill:
            _kill_cgroup_members(paths)
        time.sleep(0.1)


def _stop_host(host: LabHost, timeout: float = 15.0) -> bool:
    """Shut the host down (SIGTERM to nspawn), killing what is left after the timeout.

    Returns whether it shut down in time (False: it had to be killed or was not running).
    """
    clean = False
    if _pid_alive(host.pid):
        os.kill(host.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(host.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        clean = not _pid_alive(host.pid)
    _kill_cgroup_members(host.cgroups)
    _wait_cgroups_empty(host.cgroups)
    return clean


def _kill_host(host: LabHost) -> None:
    """Power cut: SIGKILL every process of the host (nspawn and all inside) until none is left."""
    _wait_cgroups_empty(host.cgroups, seconds=10.0, kill=True, child=host.pid)


def mounts_under(directory: Path, mounts: list[str]) -> list[str]:
    """The mount points at or below the directory, deepest first (lab-1 does not hold lab-10)."""
    prefix = str(directory).rstrip("/") + "/"
    inside = [m for m in mounts if m == prefix[:-1] or m.startswith(prefix)]
    return sorted(inside, key=lambda m: m.count("/"), reverse=True)


def _unmount_under(directory: Path) -> None:
    """Lazily unmount everything mounted at or below the directory."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in mounts_under(directory, mounts):
        subprocess.run(["umount", "-l", mount], check=False)


def _host_veth(host: LabHost) -> str | None:
    """The bridge-side veth of a running host: the peer of host0 in its container, or None."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] != str(host.pid):
                continue
            peer = Path(stat.parent, "root/sys/class/net/host0/iflink").read_text().strip()
            for link in Path("/sys/class/net").iterdir():
                if (link / "ifindex").read_text().strip() == peer:
                    return link.name
    return None


def _veth_gone(name: str, seconds: float = 5.0) -> bool:
    """Wait for a stopped host's veth to go with its network namespace; else delete it."""
    deadline = time.monotonic() + seconds
    while Path("/sys/class/net", name).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    if Path("/sys/class/net", name).exists():
        subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
    return not Path("/sys/class/net", name).exists()


def _recorded(paths: LabPaths) -> LabState:
    """The recorded lab, or LabError saying to boot one."""
    state = load(paths)
    if state is None or not state.hosts:
        raise LabError(f"no lab recorded in {paths.root}: run `python deploy.py lab up` first")
    return state


def find_host(state: LabState, name: str) -> LabHost:
    """The recorded host of that name, or LabError listing the known names."""
    try:
        return state.host(name)
    except KeyError:
        known = ", ".join(h.name for h in state.hosts) or "none"
        raise LabError(f"no lab host named {name!r}; known: {known}") from None


def _release(paths: LabPaths, host: LabHost) -> list[str]:
    """Unmount a halted host's overlay and remove its cgroups, keeping its disk and keys.

    Returns the cgroups that could not be removed (kept in the state for `down`).
    """
    _unmount_under(paths.host_dir(host.name) / "merged")
    left = cgroups.remove(host.cgroups)
    host.pid = 0
    host.cgroups = host.cgroups if left else []
    return left


def stop(name: str, kill: bool = False, paths: LabPaths | None = None,
         log: Log = print) -> None:
    """Stop one host: clean shutdown, or with kill a crash; its disk, address and keys stay."""
    paths = paths or LabPaths()
    state = _recorded(paths)
    host = find_host(state, name)
    preflight()
    running = _host_running(host)
    veth = _host_veth(host) if running else None
    if kill or not running:  # not running: only what a host that died on its own left
        _kill_host(host)
        how = "killed (crash)"
    elif _stop_host(host, timeout=STOP_TIMEOUT):
        how = "shut down"
    else:
        how = f"killed: no clean shutdown within {STOP_TIMEOUT:.0f} s"
    left = _release(paths, host)
    save(paths, state)
    if veth and not _veth_gone(veth):
        left.append(f"link {veth}")
    if left:
        raise LabError(f"lab host {name} stopped but could not remove: {', '.join(left)}")
    log(f"lab: {name} {how}" if running else f"lab: {name} is already stopped")


def start(name: str, paths: LabPaths | None = None, log: Log = print) -> LabHost:
    """Boot a stopped host again with its disk, address and host keys; wait until ssh answers."""
    paths = paths or LabPaths()
    state = _recorded(paths)
    host = find_host(state, name)
    preflight()
    raise_shared_limits(log)
    if _host_running(host):
        log(f"lab: {name} is already running (pid {host.pid})")
        return host
    if not Path(state.rootfs, "etc").is_dir():
        raise LabError(f"the lab's root filesystem {state.rootfs} is gone: run `lab down`, "
                       "then `lab up`")
    network.ensure_bridge(state.bridge, state.gateway, state.prefix_len)
    _kill_host(host)  # anything a host that died on its own left in its cgroups
    client_pub = sshkeys.ensure(paths.ssh_key, "kubesmith-lab")
    _prepare_host(paths, state, host, client_pub, _hosts_file(state))
    _boot(paths, state, host, log)
    _wait_ssh(paths, [host])
    return host


def _lab_processes(paths: LabPaths) -> list[int]:
    """PIDs of systemd-nspawn processes running hosts of this lab directory."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            argv = proc.read_bytes().split(b"\0")
            if argv[0].endswith(b"systemd-nspawn") and str(paths.hosts).encode() in b" ".join(argv):
                pids.append(int(proc.parent.name))
    return pids


def sweep(paths: LabPaths, bridge: str) -> None:
    """Remove what a lab whose state was lost left behind: processes, mounts, bridge."""
    for pid in _lab_processes(paths):
        _stop_host(LabHost("orphan", "", pid=pid))
    _unmount_under(paths.hosts)
    network.remove_bridge(bridge, only_if_unused=True)
    orphans = Path(cgroups.CGROUP_ROOT).glob(f"**/{cgroups.GROUP}/{bridge}-*/")
    cgroups.remove([str(p) for p in orphans])


def down(paths: LabPaths | None = None, log: Log = print,
         bridge: str = DEFAULT_BRIDGE) -> list[str]:
    """Stop every host and remove all the lab made; return what could not be removed."""
    paths = paths or LabPaths()
    state = load(paths)
    if state is None:
        sweep(paths, bridge)
        log("lab: no state recorded; swept processes, mounts and bridge")
        restore_shared_limits(log)
        return leftovers(paths, bridge)
    with ThreadPoolExecutor(max_workers=max(1, len(state.hosts))) as pool:
        list(pool.map(_stop_host, state.hosts))
    for host in state.hosts:
        _unmount_under(paths.host_dir(host.name))
        cgroups.remove(host.cgroups)
        log(f"lab: stopped {host.name}")
    network.remove_bridge(state.bridge)
    left = leftovers(paths, state.bridge)  # checked, not assumed: what `lab down` reports
    if not left:
        shutil.rmtree(paths.hosts, ignore_errors=True)
        for path in (paths.state, paths.known_hosts, paths.ssh_config):
            path.unlink(missing_ok=True)
    restore_shared_limits(log)
    return left


def status(paths: LabPaths | None = None) -> list[dict[str, str]]:
    """One row per host: name, address, process and ssh state."""
    paths = paths or LabPaths()
    state = load(paths)
    rows = []
    for host in state.hosts if state else []:
        alive = _pid_alive(host.pid)
        try:
            with socket.create_connection((host.address, 22), timeout=0.5):
                ssh = "open"
        except OSError:
            ssh = "closed"
        rows.append({"host": host.name, "address": host.address,
                     "process": f"running (pid {host.pid})" if alive else "stopped", "ssh": ssh})
    return rows


def leftovers(paths: LabPaths | None = None, bridge: str | None = None) -> list[str]:
    """Anything of a lab still on this machine: link, mount, cgroup, process, iptables rule."""
    paths = paths or LabPaths()
    state = load(paths)
    bridge = bridge or (state.bridge if state else None) or DEFAULT_BRIDGE
    found = []
    if network.link_exists(bridge):
        found.append(f"link {bridge}")
    veth_prefix = f"vb-{bridge}"[:11]  # nspawn's host-side veth: vb-<machine>, shortened
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True,
                           check=False).stdout.split("\n")
    found += [f"link {line.split()[0]}" for line in links if line.startswith(veth_prefix)]
    found += [f"mount {line.split()[1]}" for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(paths.root))]
    found += [f"cgroup {p}"
              for p in Path(cgroups.CGROUP_ROOT).glob(f"**/{cgroups.GROUP}/{bridge}-*")]
    found += [f"process {pid} (systemd-nspawn)" for pid in _lab_processes(paths)]
    if shutil.which("iptables-save"):
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True,
                               check=False).stdout
        found += [f"iptables {line}" for line in rules.splitlines() if bridge in line]
    return found
