"""Benchmark: boot N lab hosts from a warm cache to ssh-ready; print wall time and memory per host.

Targets (issue 2): 4 hosts <= 10 s, <= 60 MiB per host. Run as root: python bench/lab_boot.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubesmith.lab import hosts as lab  # noqa: E402
from kubesmith.lab import rootfs  # noqa: E402
from kubesmith.lab.cgroups import memory_mib  # noqa: E402
from kubesmith.lab.state import LabPaths  # noqa: E402


def main() -> int:
    """Boot, measure, tear down."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=4)
    args = parser.parse_args()
    rootfs.ensure_extracted(rootfs.ensure_tarball())  # warm cache: not part of the figure
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp))
        start = time.monotonic()
        state = lab.up(args.hosts, "10.242.0.0/24", paths, log=lambda _m: None, bridge="ksbench0")
        boot = time.monotonic() - start
        time.sleep(2)
        per_host = {h.name: memory_mib(h.cgroups) for h in state.hosts}
        start = time.monotonic()
        left = lab.down(paths, log=lambda _m: None)
        down = time.monotonic() - start
    print(f"lab boot: {args.hosts} hosts ssh-ready in {boot:.1f} s (target <= 10 s)")
    for name, mib in per_host.items():
        print(f"  {name}: {mib:.1f} MiB memory cgroup usage (target <= 60 MiB)")
    print(f"lab down: {down:.1f} s, left behind: {left or 'nothing'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
