"""Benchmark: add-node wall time on a 3-node and a 5-node lab cluster (target <= 30 s, flat).

Run as root: python bench/add_node.py [--sizes 3 5]
Each size: boot 1 master + N nodes, bootstrap, boot one more host, time `add-node` for it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
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

INVENTORY = PROJECT / "inventories" / "lab.py"


def measure(nodes: int) -> tuple[float, float]:
    """(bootstrap seconds, add-node seconds) for a cluster of `nodes` nodes."""
    quiet = lambda _m: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="kubesmith-bench-") as tmp:
        paths = LabPaths(Path(tmp) / "lab")
        os.environ.update(KUBESMITH_LAB_DIR=str(paths.root), KUBESMITH_STATE=f"{tmp}/state")
        try:
            lab.up(nodes + 1, "10.242.0.0/24", paths, log=quiet, bridge="ksbench0")
            start = time.monotonic()
            up.run(Runner(context.load(INVENTORY, quiet), quiet))
            bootstrap = time.monotonic() - start
            lab.up(nodes + 2, "10.242.0.0/24", paths, log=quiet, bridge="ksbench0")
            # A new process, as users run it (pyinfra caches known_hosts per process).
            start = time.monotonic()
            subprocess.run([sys.executable, str(PROJECT / "deploy.py"), "add-node",
                            f"lab-{nodes + 2}"], check=True, capture_output=True)
            return bootstrap, time.monotonic() - start
        finally:
            lab.down(paths, log=quiet, bridge="ksbench0")


def main() -> int:
    """Measure each size and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5])
    args = parser.parse_args()
    for size in args.sizes:
        bootstrap, add = measure(size)
        print(f"{size}-node cluster: bootstrap {bootstrap:.1f} s, add-node {add:.1f} s "
              "(target <= 30 s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
