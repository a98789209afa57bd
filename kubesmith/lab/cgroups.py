"""Per-host cgroups in every v1 hierarchy, so nspawn hosts do not collide on /payload."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
HIERARCHIES = ("systemd", "unified", "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer",
               "blkio", "pids")
GROUP = "kubesmith-lab"


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy (from /proc/self/cgroup)."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _id, controllers, path = line.split(":", 2)
        names = ["unified"] if controllers == "" else controllers.replace("name=", "").split(",")
        for name in names:
            paths[name] = path
    return paths


def _mounted(hierarchy: str) -> Path:
    """Where a hierarchy is mounted (cpu and cpuacct may be links to a joint mount)."""
    return (CGROUP_ROOT / hierarchy).resolve()


def create(host: str) -> list[str]:
    """Make the host's cgroup in each mounted hierarchy under our own; return their paths."""
    own = _own_paths()
    made = []
    for hierarchy in HIERARCHIES:
        mount = _mounted(hierarchy)
        if not (mount / "cgroup.procs").exists() or hierarchy not in own:
            continue
        parent = mount / own[hierarchy].lstrip("/")
        for directory in (parent / GROUP, parent / GROUP / host):
            directory.mkdir(exist_ok=True)
            if hierarchy == "cpuset":
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (directory / knob).read_text().strip():
                        (directory / knob).write_text((directory.parent / knob).read_text())
        made.append(str(parent / GROUP / host))
    return sorted(set(made))


def enter(paths: list[str]) -> None:
    """Move the calling process into the given cgroups (run in the launcher before exec)."""
    pid = str(os.getpid())
    for path in paths:
        Path(path, "cgroup.procs").write_text(pid)


def remove(paths: list[str]) -> list[str]:
    """Remove the host's cgroups (children first); return those that could not be removed."""
    left = []
    for path in paths:
        for directory in sorted(Path(path).glob("**/"), key=lambda p: len(p.parts), reverse=True):
            try:
                directory.rmdir()
            except FileNotFoundError:
                pass
            except OSError:
                left.append(str(directory))
        parent = Path(path).parent
        if parent.name == GROUP:
            with contextlib.suppress(OSError):
                parent.rmdir()
    return left


def memory_mib(cgroup_paths: list[str], stat: str = "") -> float:
    """Memory charged to a host's memory cgroup (all its processes and their pages), in MiB;
    with stat, that line of memory.stat instead (total_rss: what its processes hold)."""
    for path in cgroup_paths:
        usage = Path(path, "memory.usage_in_bytes")
        if "/memory/" in path and usage.exists():
            if not stat:
                return int(usage.read_text()) / 2**20
            lines = Path(path, "memory.stat").read_text().splitlines()
            return next(int(v) for k, v in map(str.split, lines) if k == stat) / 2**20
    return float("nan")
