"""libvirtd on a machine without systemd: start it for Vagrant, and later put the machine back.

`start` records what the machine looked like (ip_forward, LIBVIRT_* iptables chains, libvirt
networks and storage pools, whether libvirtd ran) in a state file, then starts virtlogd and
libvirtd by hand if they are not running (without autostarting anyone's networks or domains).
`stop` removes the networks, pools and volumes that appeared since, stops the daemons it started (by
their pid), deletes the iptables chains libvirt added and restores ip_forward.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from kubesmith.errors import UserError

URI = "qemu:///system"
STATE_FILE = Path("/run/kubesmith/libvirt-host.json")
DAEMONS = ("virtlogd", "libvirtd")
PID_FILES = {"virtlogd": Path("/run/virtlogd.pid"), "libvirtd": Path("/run/libvirtd.pid")}
# libvirt autostarts networks/domains only when these files are absent (once per boot).
AUTOSTARTED = (Path("/run/libvirt/network/autostarted"), Path("/run/libvirt/qemu/autostarted"))
IPTABLES = ("iptables", "ip6tables")
TABLES = ("filter", "nat", "mangle")
BUILTIN_CHAINS = ("INPUT", "OUTPUT", "FORWARD", "PREROUTING", "POSTROUTING")
PACKAGES = {"vagrant": "vagrant", "libvirtd": "libvirt-daemon-system", "virsh": "libvirt-clients",
            "virtlogd": "libvirt-daemon-system", "qemu-system-x86_64": "qemu-system-x86",
            "qemu-img": "qemu-utils", "dnsmasq": "dnsmasq-base"}
VAGRANT_LIBVIRT = "vagrant-libvirt"


class LibvirtHostError(UserError):
    """libvirtd cannot be started or the machine cannot be restored; the message says why."""


@dataclass
class Snapshot:
    """What the machine looked like before kubesmith started libvirtd."""

    ip_forward: str
    chains: dict[str, list[str]]  # "<iptables>/<table>" -> LIBVIRT_* chains present
    networks: list[str]
    pools: list[str]
    volumes: dict[str, list[str]] = field(default_factory=dict)  # pool -> its volumes
    started: dict[str, int] = field(default_factory=dict)  # daemons kubesmith started -> pid
    autostarted_made: list[str] = field(default_factory=list)


def missing_packages() -> list[str]:
    """Debian packages needed for Vagrant on libvirt that are not installed (empty when none)."""
    missing = {pkg for tool, pkg in PACKAGES.items() if shutil.which(tool) is None}
    if shutil.which("vagrant") and VAGRANT_LIBVIRT not in _vagrant_plugins():
        missing.add(VAGRANT_LIBVIRT)
    return sorted(missing)


def _vagrant_plugins() -> str:
    result = subprocess.run(["vagrant", "plugin", "list"], capture_output=True, text=True,
                            check=False, timeout=120)
    return result.stdout


def libvirt_chains(rules: str) -> list[str]:
    """LIBVIRT_* chain names declared in `iptables -S` output."""
    return sorted(line.split()[1] for line in rules.splitlines()
                  if line.startswith("-N LIBVIRT_"))


def jumps_to(rules: str, chains: set[str]) -> list[list[str]]:
    """The rules (as -D arguments) in built-in chains that jump to one of these chains."""
    found = []
    for line in rules.splitlines():
        words = line.split()
        if (len(words) >= 4 and words[0] == "-A" and words[1] in BUILTIN_CHAINS
                and "-j" in words and words[words.index("-j") + 1] in chains):
            found.append(["-D", *words[1:]])
    return found


def volume_names(table: str) -> list[str]:
    """Volume names from `virsh vol-list` output (libvirt 9 has no --name for volumes)."""
    lines = table.splitlines()
    start = next((i + 1 for i, line in enumerate(lines) if line.startswith("---")), len(lines))
    return sorted(line.split()[0] for line in lines[start:] if line.strip())


def _iptables_rules(binary: str, table: str) -> str:
    if shutil.which(binary) is None:
        return ""
    result = subprocess.run([binary, "-w", "-t", table, "-S"], capture_output=True, text=True,
                            check=False)
    return result.stdout if result.returncode == 0 else ""


def _virsh_names(kind: str) -> list[str]:
    result = subprocess.run(["virsh", "-c", URI, f"{kind}-list", "--all", "--name"],
                            capture_output=True, text=True, check=False, timeout=60)
    return sorted(n.strip() for n in result.stdout.splitlines() if n.strip())


def _running(daemon: str) -> int | None:
    """The pid of a running daemon from its pid file, or None."""
    try:
        pid = int(PID_FILES[daemon].read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    comm = Path(f"/proc/{pid}/comm")
    return pid if comm.exists() and comm.read_text().strip() == daemon else None


def _ip_forward() -> str:
    return Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()


def snapshot() -> Snapshot:
    """The machine's state now (libvirt networks and pools only if libvirtd answers)."""
    chains = {f"{b}/{t}": libvirt_chains(_iptables_rules(b, t)) for b in IPTABLES for t in TABLES}
    up = _running("libvirtd") is not None
    pools = _virsh_names("pool") if up else []
    return Snapshot(_ip_forward(), chains, _virsh_names("net") if up else [], pools,
                    {pool: _volumes(pool) for pool in pools})


def load_state(path: Path = STATE_FILE) -> Snapshot | None:
    """The snapshot `start` recorded, or None."""
    if not path.exists():
        return None
    return Snapshot(**json.loads(path.read_text()))


def start(path: Path = STATE_FILE) -> Snapshot:
    """Record the machine's state (once) and start virtlogd and libvirtd if they are not running."""
    recorded = load_state(path)
    if recorded is not None and all(_running(d) for d in DAEMONS):
        return recorded
    missing = missing_packages()
    if missing:
        raise LibvirtHostError(f"Vagrant on libvirt needs: apt-get install {' '.join(missing)}")
    before = recorded or snapshot()
    was_up = _running("libvirtd") is not None
    for daemon in DAEMONS:
        if _running(daemon):
            continue
        if daemon == "libvirtd":
            for marker in AUTOSTARTED:
                if not marker.exists():
                    marker.parent.mkdir(parents=True, exist_ok=True)
                    marker.touch()
                    before.autostarted_made.append(str(marker))
        subprocess.run([daemon, "--daemon"], check=True, timeout=60)
        for _ in range(100):
            pid = _running(daemon)
            if pid:
                before.started[daemon] = pid
                break
            time.sleep(0.1)
        else:
            raise LibvirtHostError(f"{daemon} did not start (no live pid in {PID_FILES[daemon]})")
    for _ in range(100):
        if subprocess.run(["virsh", "-c", URI, "version"], capture_output=True,
                          check=False).returncode == 0:
            break
        time.sleep(0.2)
    else:
        raise LibvirtHostError(f"libvirtd does not answer on {URI}")
    if recorded is None and not was_up:
        # Defined networks and pools are only listed by a running libvirtd: list them now (with
        # autostart held off, starting it created none).
        before.networks = _virsh_names("net")
        before.pools = _virsh_names("pool")
        before.volumes = {pool: _volumes(pool) for pool in before.pools}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(before)))
    return before


def _virsh(*args: str) -> None:
    subprocess.run(["virsh", "-c", URI, *args], capture_output=True, check=False, timeout=120)


def _volumes(pool: str) -> list[str]:
    """The volumes of a storage pool."""
    result = subprocess.run(["virsh", "-c", URI, "vol-list", "--pool", pool],
                            capture_output=True, text=True, check=False, timeout=60)
    return volume_names(result.stdout)


def _remove_pool(name: str) -> None:
    """Delete a storage pool's volumes, then stop and undefine the pool (its directory stays)."""
    _virsh("pool-refresh", name)
    for volume in _volumes(name):
        _virsh("vol-delete", volume, "--pool", name)
    _virsh("pool-destroy", name)
    _virsh("pool-undefine", name)


def _stop_daemon(name: str, pid: int) -> None:
    """SIGTERM a daemon kubesmith started (by pid) and wait for it to go."""
    if _running(name) != pid:
        return
    os.kill(pid, signal.SIGTERM)
    for _ in range(300):  # until the process is gone (its pid file goes earlier)
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def stop(path: Path = STATE_FILE) -> list[str]:
    """Put the machine back as `start` found it; what could not be removed (empty when all)."""
    before = load_state(path)
    if before is None:
        return []
    if _running("libvirtd"):
        for network in set(_virsh_names("net")) - set(before.networks):
            _virsh("net-destroy", network)
            _virsh("net-undefine", network)
        for pool in _virsh_names("pool"):
            if pool not in before.pools:
                _remove_pool(pool)
                continue
            for volume in set(_volumes(pool)) - set(before.volumes.get(pool, [])):
                _virsh("vol-delete", volume, "--pool", pool)
    for daemon in reversed(DAEMONS):
        if daemon in before.started:
            _stop_daemon(daemon, before.started[daemon])
    for marker in before.autostarted_made:
        Path(marker).unlink(missing_ok=True)
    left = []
    for key, had in before.chains.items():
        binary, table = key.split("/")
        rules = _iptables_rules(binary, table)
        added = set(libvirt_chains(rules)) - set(had)
        for rule in jumps_to(rules, added):
            subprocess.run([binary, "-w", "-t", table, *rule], check=False)
        for chain in sorted(added):
            subprocess.run([binary, "-w", "-t", table, "-F", chain], check=False)
        for chain in sorted(added):
            subprocess.run([binary, "-w", "-t", table, "-X", chain], check=False)
        left += [f"{key} {c}" for c in set(libvirt_chains(_iptables_rules(binary, table)))
                 - set(had)]
    Path("/proc/sys/net/ipv4/ip_forward").write_text(before.ip_forward + "\n")
    if _ip_forward() != before.ip_forward:
        left.append(f"ip_forward is {_ip_forward()}, was {before.ip_forward}")
    if not left:
        path.unlink()
    return left
