"""`deploy.py reset`: remove everything kubesmith installed on hosts (all when none are named)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from kubesmith.runner import Report, Runner
from tasks.phases import RESET


def run(runner: Runner, names: Sequence[str] | None = None) -> Report:
    """The reset phase on the named hosts, or on every host of the inventory."""
    start = time.monotonic()
    cluster = runner.ctx.cluster
    targets = tuple(cluster.host(n) for n in names) if names else cluster.hosts
    runner.run(RESET, targets)
    return runner.finish(start, f"reset: {', '.join(h.name for h in targets)}")
