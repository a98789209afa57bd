"""The node balancer's backends as haproxy reports them, and what they must be: every master,
each up. Shared by the deploy's readiness check, verify and the lab tests."""

from __future__ import annotations

import csv
import io
import shlex

from kubesmith import paths
from kubesmith.model import Cluster

BACKEND = "apiservers"
# haproxy's statistics as CSV, from its root-only unix socket (curl speaks HTTP over it).
STATS_COMMAND = (f"curl -sf --max-time 5 --unix-socket {shlex.quote(paths.APISERVER_LB_STATS)} "
                 "'http://localhost/;csv'")


def servers(stats_csv: str) -> dict[str, str]:
    """{server name: status (UP, DOWN, ...)} of the apiserver backend in haproxy's CSV."""
    rows = csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
    return {row["svname"]: row["status"].split()[0] for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")}


def problem(stats_csv: str, cluster: Cluster) -> str | None:
    """Why a balancer's backends are not exactly the masters, each up (None when they are)."""
    found = servers(stats_csv)
    wanted = [m.name for m in cluster.masters]
    if sorted(found) != sorted(wanted):
        return f"backends {sorted(found)} are not the masters {wanted}"
    down = {name: status for name, status in found.items() if status != "UP"}
    return f"backends not up: {down}" if down else None
