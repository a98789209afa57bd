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


def _rows(stats_csv: str) -> list[dict[str, str]]:
    """The apiserver backend's server rows of haproxy's CSV."""
    rows = csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
    return [row for row in rows
            if row.get("pxname") == BACKEND and row.get("svname") not in ("FRONTEND", "BACKEND")]


def servers(stats_csv: str) -> dict[str, str]:
    """{server name: status (UP, DOWN, ...)} of the apiserver backend in haproxy's CSV."""
    return {row["svname"]: row["status"].split()[0] for row in _rows(stats_csv)}


def _down(row: dict[str, str]) -> str:
    """A server not up, with its last check's result as haproxy gives it: its status (L4CON,
    L7STS...) and detail (`Connection refused`, else haproxy's description of the status)."""
    detail = row.get("last_chk") or row.get("check_desc") or ""
    check = ": ".join(part for part in (row.get("check_status") or "", detail) if part)
    return f"{row['svname']} {row['status']}" + (f" (last check {check})" if check else "")


def problem(stats_csv: str, cluster: Cluster) -> str | None:
    """Why a balancer's backends are not exactly the masters, each up (None when they are)."""
    rows = _rows(stats_csv)
    found = sorted(row["svname"] for row in rows)
    wanted = [m.name for m in cluster.masters]
    if found != sorted(wanted):
        return f"backends {found} are not the masters {wanted}"
    down = [_down(row) for row in rows if row["status"].split()[0] != "UP"]
    return f"backends not up: {', '.join(down)}" if down else None
