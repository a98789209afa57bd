"""Benchmark: `deploy.py verify` wall time on an existing cluster (target <= 10 s on 3 lab hosts),
with the remote commands it ran per host.

Run after `python deploy.py lab up && python deploy.py up`: python bench/verify.py [-i INVENTORY]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run verify three times and print each wall time."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-i", "--inventory", default=str(PROJECT / "inventories" / "lab.py"))
    args = parser.parse_args()
    for run in range(1, 4):
        start = time.monotonic()
        result = subprocess.run([sys.executable, str(PROJECT / "deploy.py"), "verify", "-i",
                                 args.inventory], capture_output=True, text=True, check=False)
        lines = result.stdout.strip().splitlines() or ["?"]
        commands = next((line for line in lines if line.startswith("remote commands: ")), "")
        print(f"verify run {run}: {time.monotonic() - start:.1f} s ({lines[-1]}) {commands}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
