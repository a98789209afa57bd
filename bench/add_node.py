"""Benchmark: add-node wall time on a 3-node and a 5-node lab cluster (target <= 12 s, flat).

Run as root: python bench/add_node.py [--sizes 3 5] [--subnet 10.242.0.0/24 --bridge ksbench0]
Each size: boot 1 master + N nodes, bootstrap, boot one more host, time add-node for it (in this
process, as `deploy.py add-node` runs it), split into waiting for services and own work.
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

from pyinfra.connectors.sshuserclient.client import get_host_keys  # noqa: E402

from kubesmith import context  # noqa: E402
from kubesmith.lab import hosts as lab  # noqa: E402
from kubesmith.lab.state import LabPaths  # noqa: E402
from kubesmith.runner import Report, Runner  # noqa: E402
from kubesmith.settings import PROJECT  # noqa: E402
from kubesmith.workflows import add_node, up  # noqa: E402

INVENTORY = PROJECT / "inventories" / "lab.py"


def measure(nodes: int, subnet: str, bridge: str) -> tuple[float, Report]:
    """(bootstrap seconds, add-node report) for a cluster of `nodes` nodes."""
    quiet = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp) / "lab")
        os.environ.update(KUBESMITH_LAB_DIR=str(paths.root), KUBESMITH_STATE=f"{tmp}/state")
        try:
            lab.up(nodes + 1, subnet, paths, log=quiet, bridge=bridge)
            start = time.monotonic()
            up.run(Runner(context.load(INVENTORY, quiet), quiet))
            bootstrap = time.monotonic() - start
            lab.up(nodes + 2, subnet, paths, log=quiet, bridge=bridge)
            get_host_keys.cache.clear()  # the new host's key, as a new process reads it
            report = add_node.run(Runner(context.load(INVENTORY, quiet), quiet),
                                  [f"lab-{nodes + 2}"])
            return bootstrap, report
        finally:
            lab.down(paths, log=quiet, bridge=bridge)


def main() -> int:
    """Measure each size and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--subnet", default="10.242.0.0/24", help="the lab's /24")
    parser.add_argument("--bridge", default="ksbench0", help="the lab's bridge (one per lab)")
    args = parser.parse_args()
    for size in args.sizes:
        bootstrap, report = measure(size, args.subnet, args.bridge)
        first, *rest = report.breakdown()
        print(f"{size}-node cluster: bootstrap {bootstrap:.1f} s; add-node (target <= 12 s) "
              f"{first}")
        print("\n".join(rest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
