"""Lab lifecycle: boot, report and tear down systemd-nspawn hosts."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubesmith import sshkeys
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
Log = Callable[[str], None]


class LabError(Exception):
    """A lab operation could not be done; the message says why and what to do."""


def preflight() -> None:
    """Refuse early, with one line, when this machine cannot run the lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (systemd-nspawn, bridges, mounts): run as root")
    for tool in ("systemd-nspawn", "debootstrap", "ip", "ssh"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found: apt-get install systemd-container debootstrap "
                           "iproute2 openssh-client")


def host_name(index: int) -> str:
    """The name of the lab host with that 1-based index."""
    return f"lab-{index}"


def _pid_alive(pid: int) -> bool:
    """Whether the process runs (a zombie child of ours is reaped and counts as gone)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write(root: Path, path: str, content: str, mode: int = 0o644) -> None:
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


def up(count: int, subnet: str | None = None, paths: LabPaths | None = None,
       log: Log = print, bridge: str | None = None) -> LabState:
    """Boot the lab with `count` hosts (starting only those not running yet)."""
    preflight()
    paths = paths or LabPaths()
    state = load(paths) or LabState()
    if subnet and state.hosts and subnet != state.subnet:
        raise LabError(f"a lab on {state.subnet} exists: run `lab down` before changing subnet")
    state.subnet = subnet or state.subnet
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
    t0 = time.monotonic()
    state.rootfs = str(rootfs.ensure_extracted(rootfs.ensure_tarball()))
    client_pub = sshkeys.ensure(paths.ssh_key, "kubesmith-lab")
    network.ensure_bridge(state.bridge, state.gateway, state.prefix_len)
    for index in range(1, count + 1):
        name = host_name(index)
        if name not in {h.name for h in state.hosts}:
            address = net.network_address + FIRST_HOST_OCTET + index - 1
            state.hosts.append(LabHost(name, str(address)))
    hosts_file = "127.0.0.1 localhost\n" + "".join(
        f"{h.address} {h.name}\n" for h in state.hosts)
    host_keys = {}
    starting = []
    for host in state.hosts:
        host_keys[host.name] = _prepare_host(paths, state, host, client_pub, hosts_file)
        if not _pid_alive(host.pid):
            starting.append(host)
    _write_client_files(paths, state, host_keys)
    save(paths, state)
    for host in starting:
        _launch(paths, state, host)
        save(paths, state)
        log(f"lab: started {host.name} ({host.address}), pid {host.pid}")
    deadline = time.monotonic() + SSH_TIMEOUT
    with ThreadPoolExecutor(max_workers=max(1, len(state.hosts))) as pool:
        reasons = dict(zip(
            [h.name for h in state.hosts],
            pool.map(lambda h: _ssh_ready(paths, h, deadline), state.hosts), strict=True))
    failed = {name: why for name, why in reasons.items() if why}
    if failed:
        details = "\n".join(
            f"lab host {name}: {why}; console log tail:\n{_console_tail(paths, name)}"
            for name, why in failed.items())
        raise LabError(details)
    log(f"lab: {len(state.hosts)} hosts ssh-ready in {time.monotonic() - t0:.1f} s")
    return state


def _kill_cgroup_members(paths: list[str]) -> None:
    for path in paths:
        for procs in Path(path).glob("**/cgroup.procs"):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)


def _stop_host(host: LabHost) -> None:
    if _pid_alive(host.pid):
        os.kill(host.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _pid_alive(host.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    _kill_cgroup_members(host.cgroups)
    for _ in range(50):
        if not any((Path(p) / "cgroup.procs").exists() and
                   (Path(p) / "cgroup.procs").read_text().strip() for p in host.cgroups):
            break
        time.sleep(0.1)


def _unmount_under(directory: Path) -> None:
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(directory))), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False)


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
        return []
    with ThreadPoolExecutor(max_workers=max(1, len(state.hosts))) as pool:
        list(pool.map(_stop_host, state.hosts))
    left = []
    for host in state.hosts:
        _unmount_under(paths.host_dir(host.name))
        left += cgroups.remove(host.cgroups)
        log(f"lab: stopped {host.name}")
    network.remove_bridge(state.bridge)
    if not left:
        shutil.rmtree(paths.hosts, ignore_errors=True)
        for path in (paths.state, paths.known_hosts, paths.ssh_config):
            path.unlink(missing_ok=True)
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
