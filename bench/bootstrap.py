"""Benchmark: bare lab hosts -> every node Ready (warm binary cache), then a no-op re-run.

Targets (issue 19): 3 hosts, total <= 25 s with own work <= 40% of it; re-run <= 4 s.
Run as root: python bench/bootstrap.py [--hosts N --subnet 10.242.0.0/24 --bridge ksbench0]
Prints for both runs the wall time, split into waiting for services to become ready and own work,
in total and per phase, with the remote commands each host ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from gevent import monkey

monkey.patch_all()

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kubesmith import context  # noqa: E402
from kubesmith.lab import hosts as lab  # noqa: E402
from kubesmith.lab.cgroups import memory_mib  # noqa: E402
from kubesmith.lab.state import LabPaths  # noqa: E402
from kubesmith.runner import Report, Runner  # noqa: E402
from kubesmith.settings import PROJECT  # noqa: E402
from kubesmith.workflows import up  # noqa: E402


def _print(label: str, report: Report) -> None:
    first, *rest = report.breakdown()
    print(f"{label}: {report.total_changes} changes, {first}")
    print("\n".join(rest))


def main() -> int:
    """Boot a fresh lab, bootstrap twice, tear down."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--subnet", default="10.242.0.0/24", help="the lab's /24")
    parser.add_argument("--bridge", default="ksbench0", help="the lab's bridge (one per lab)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp) / "lab")
        os.environ.update(KUBESMITH_LAB_DIR=str(paths.root), KUBESMITH_STATE=f"{tmp}/state")
        start = time.monotonic()
        state = lab.up(args.hosts, args.subnet, paths, log=lambda _m: None, bridge=args.bridge)
        boot = time.monotonic() - start
        try:
            quiet = lambda _m: None  # noqa: E731
            # What the control machine sends the hosts (host-to-host traffic is not counted).
            sent = Path(f"/sys/class/net/{args.bridge}/statistics/tx_bytes")
            before = int(sent.read_text())
            first = up.run(Runner(context.load(PROJECT / "inventories" / "lab.py", quiet), quiet))
            mib = (int(sent.read_text()) - before) / 2**20
            memory = {h.name: (memory_mib(h.cgroups), memory_mib(h.cgroups, "total_rss"))
                      for h in state.hosts}
            second = up.run(Runner(context.load(PROJECT / "inventories" / "lab.py", quiet), quiet))
        finally:
            lab.down(paths, log=lambda _m: None)
    print(f"lab boot: {args.hosts} hosts in {boot:.1f} s")
    _print("bootstrap (target <= 25 s, own work <= 40%)", first)
    _print("re-run (target <= 4 s)", second)
    print(f"bootstrap: control machine sent {mib:.1f} MiB to the hosts "
          f"({mib / args.hosts:.1f} MiB per host)")
    print("memory per host after the bootstrap, cgroup usage (with page cache) / processes' RSS: "
          + ", ".join(f"{name} {used:.0f}/{rss:.0f} MiB" for name, (used, rss) in memory.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
