"""Benchmark: `deploy.py upgrade` wall time per phase on a 3-host lab (lab-1 etcd+master, two
nodes) bootstrapped at one Kubernetes version and upgraded to the next.

Run as root: python bench/upgrade.py [--from v1.33.13] [--to v1.34.4]
Both versions must be in the binary cache (`python deploy.py binaries -i INV kubernetes`).
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
from kubesmith.workflows import up, upgrade  # noqa: E402


def measure(old: str, new: str, subnet: str, bridge: str) -> tuple[float, dict[str, float]]:
    """(bootstrap seconds at old, upgrade seconds per phase) on a fresh 3-host lab."""
    quiet = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp) / "lab")
        os.environ.update(KUBESMITH_LAB_DIR=str(paths.root), KUBESMITH_STATE=f"{tmp}/state")
        inventory = Path(tmp) / "inventory" / "hosts.py"
        (inventory.parent / "group_data").mkdir(parents=True)
        inventory.write_text((PROJECT / "inventories" / "lab.py").read_text())
        settings = inventory.parent / "group_data" / "all.py"
        try:
            lab.up(3, subnet, paths, log=quiet, bridge=bridge)
            settings.write_text(f"kubernetes_version = {old!r}\n")
            start = time.monotonic()
            up.run(Runner(context.load(inventory, quiet), quiet))
            bootstrap = time.monotonic() - start
            settings.write_text(f"kubernetes_version = {new!r}\n")
            report = upgrade.run(Runner(context.load(inventory, quiet), quiet), str(inventory))
            return bootstrap, report.seconds
        finally:
            lab.down(paths, log=quiet, bridge=bridge)


def main() -> int:
    """Measure one upgrade and print the wall time of each of its phases."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--from", dest="old", default="v1.33.13")
    parser.add_argument("--to", dest="new", default="v1.34.4")
    parser.add_argument("--subnet", default="10.242.0.0/24")
    parser.add_argument("--bridge", default="ksbench0")
    args = parser.parse_args()
    bootstrap, seconds = measure(args.old, args.new, args.subnet, args.bridge)
    print(f"bootstrap at {args.old}: {bootstrap:.1f} s")
    print(f"upgrade {args.old} -> {args.new}:")
    for phase, value in seconds.items():
        print(f"  {phase:<24} {value:7.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
