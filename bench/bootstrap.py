"""Benchmark: bare lab hosts -> every node Ready (warm binary cache), then a no-op re-run.

Targets (issue 3): 3 hosts, total <= 90 s; re-run <= 10 s. Run as root: python bench/bootstrap.py
Prints wall time in total and per phase for both runs.
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
from kubesmith.lab.state import LabPaths  # noqa: E402
from kubesmith.runner import Runner  # noqa: E402
from kubesmith.settings import PROJECT  # noqa: E402
from kubesmith.workflows import up  # noqa: E402


def _print(label: str, seconds: dict[str, float], changes: int) -> None:
    phases = ", ".join(f"{k} {v:.1f}" for k, v in seconds.items() if k != "total")
    print(f"{label}: {seconds['total']:.1f} s total, {changes} changes ({phases})")


def main() -> int:
    """Boot a fresh lab, bootstrap twice, tear down."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp) / "lab")
        os.environ.update(KUBESMITH_LAB_DIR=str(paths.root), KUBESMITH_STATE=f"{tmp}/state")
        start = time.monotonic()
        bridge = os.environ.get("KUBESMITH_TEST_BRIDGE", "ksbench0")
        lab.up(args.hosts, os.environ.get("KUBESMITH_TEST_SUBNET", "10.242.0.0/24"), paths,
               log=lambda _m: None, bridge=bridge)
        boot = time.monotonic() - start
        try:
            quiet = lambda _m: None  # noqa: E731
            sent = Path(f"/sys/class/net/{bridge}/statistics/tx_bytes")  # control machine -> hosts
            before = int(sent.read_text())
            first = up.run(Runner(context.load(PROJECT / "inventories" / "lab.py", quiet), quiet))
            mib = (int(sent.read_text()) - before) / 2**20
            second = up.run(Runner(context.load(PROJECT / "inventories" / "lab.py", quiet), quiet))
        finally:
            lab.down(paths, log=lambda _m: None)
    print(f"lab boot: {args.hosts} hosts in {boot:.1f} s")
    _print("bootstrap (target <= 90 s)", first.seconds, first.total_changes)
    _print("re-run (target <= 10 s)", second.seconds, second.total_changes)
    print(f"bootstrap: control machine sent {mib:.1f} MiB to the hosts "
          f"({mib / args.hosts:.1f} MiB per host)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
