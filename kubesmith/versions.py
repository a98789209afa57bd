"""What version each component runs on a host: read from its running process (runc: its binary),
parsed once into typed records, and compared with the versions the inventory's settings pin."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from kubesmith import paths
from kubesmith.binaries.cache import SHA256
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.model import Cluster, Host
from kubesmith.services import SERVICES

NUMBERS = re.compile(r"(\d+)\.(\d+)\.(\d+)")
PREFIX = "version:"
# runc runs no service: its installed binary is read (on the hosts that run containerd).
RUNC = "runc"


@dataclass(frozen=True, order=True)
class Version:
    """A release as major.minor.patch (pre-release and build suffixes are not compared)."""

    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> Version | None:
        """The first x.y.z in a text (`Kubernetes v1.34.4`, `etcd Version: 3.6.16`), or None."""
        found = NUMBERS.search(text)
        return cls(*(int(n) for n in found.groups())) if found else None

    def minors_after(self, other: Version) -> int:
        """How many minor releases this one is ahead of other (same major; else a large number)."""
        return self.minor - other.minor if self.major == other.major else 1000

    def __str__(self) -> str:
        return f"v{self.major}.{self.minor}.{self.patch}"


def watched(cluster: Cluster, me: Host) -> dict[str, str]:
    """The components read on a host and the settings key pinning each: its services with
    binaries (service table), and runc where containerd runs."""
    found = {}
    for service in SERVICES.values():
        if service.binaries and me in getattr(cluster, service.role):
            found[service.name] = COMPONENTS[service.binaries[0][0]].version_key
    if "containerd" in found:
        found[RUNC] = COMPONENTS[RUNC].version_key
    return found


def probe(cluster: Cluster, me: Host, bin_dir: str,
          installed: Mapping[str, tuple[str, str]] | None = None) -> str:
    """A shell command printing `version:NAME=<first line of --version>` for each watched
    component: the running process's own executable (empty when the service is not running).
    installed: {component: (sha256, version)} of the binaries kubesmith installs; a running
    executable that is the file at bin_dir whose sha256 the host recorded at install for its
    inode, ctime and size (paths.SUMS, as FileStates reads it) and equal to that one's prints
    that version without being run."""
    names = list(watched(cluster, me))
    services = [n for n in names if n != RUNC]
    # Every service's main PID from one systemctl (one value per unit, 0 when not running).
    units = " ".join(shlex.quote(f"{n}.service") for n in services)
    lines = [f"set -- $(systemctl show -p MainPID --value {units} 2>/dev/null)"] if units else []
    for name in names:
        if name == RUNC:
            runc = shlex.quote(f"{bin_dir}/{RUNC}")
            lines.append(f'echo "{PREFIX}{RUNC}=$({runc} --version 2>/dev/null | head -n1)"')
            continue
        run = "/proc/$pid/exe --version 2>&1 | head -n1"
        sha256, version = (installed or {}).get(name, ("", ""))
        if SHA256.fullmatch(sha256):  # (it goes into the command in double quotes)
            path = shlex.quote(f"{bin_dir}/{SERVICES[name].files[0]}")
            record = f'"{sha256} $(stat -L -c "{paths.SUMS_IDENTITY}" /proc/$pid/exe) "{path}'
            run = (f'{{ [ "$(readlink /proc/$pid/exe)" = {path} ] && grep -qxF -- {record} '
                   f"{shlex.quote(paths.SUMS)} 2>/dev/null && echo {shlex.quote(version)}; }} "
                   f"|| {{ {run}; }}")
        running = '[ "${pid:-0}" -gt 0 ] 2>/dev/null'
        lines.append(f"pid=${{{services.index(name) + 1}:-0}}; "
                     f'echo "{PREFIX}{name}=$({running} && {{ {run}; }})"')
    return "; ".join(lines) + "; true"


def parse(output: str) -> dict[str, Version | None]:
    """The probe's output as {component: version, None when not running}."""
    found: dict[str, Version | None] = {}
    for line in output.splitlines():
        if line.startswith(PREFIX):
            name, _, text = line.removeprefix(PREFIX).partition("=")
            found[name] = Version.parse(text)
    return found


def targets(data: dict[str, object], keys: dict[str, str]) -> dict[str, Version]:
    """The pinned version of each component ({component: settings key})."""
    found = {}
    for name, key in keys.items():
        version = Version.parse(str(data[key]))
        if version is not None:
            found[name] = version
    return found


def newer_than_pinned(running: dict[str, Version | None], pinned: dict[str, Version],
                      keys: dict[str, str]) -> list[str]:
    """One line per pinned version that components run newer than (what `up` refuses: it never
    downgrades), naming those components."""
    newer: dict[tuple[str, Version], list[str]] = {}
    for name, version in running.items():
        if version is not None and name in pinned and version > pinned[name]:
            newer.setdefault((keys[name], version), []).append(name)
    return [f"{', '.join(names)} run{'s' if len(names) == 1 else ''} {version}, newer than "
            f"{key} {pinned[names[0]]} in the inventory: `up` never downgrades (to move "
            "versions: `python deploy.py upgrade`)" for (key, version), names in newer.items()]
