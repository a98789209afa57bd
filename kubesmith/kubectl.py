"""kubectl on the control machine, with the operator's admin kubeconfig of a cluster's state."""

from __future__ import annotations

import subprocess

from kubesmith.context import DeployContext


def kubectl(ctx: DeployContext, *args: str, timeout: float = 30,
            stdin: str | None = None) -> subprocess.CompletedProcess:
    """Run the cached kubectl against the cluster; the result is returned, never raised."""
    return subprocess.run(
        [ctx.binary("kubernetes", "kubectl"), f"--kubeconfig={ctx.state / 'admin.kubeconfig'}",
         *args], input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
