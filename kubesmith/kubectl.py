"""kubectl on the control machine, with kubesmith's own kubeconfig of a cluster's state."""

from __future__ import annotations

import subprocess

from kubesmith.certificates import KUBESMITH_USER
from kubesmith.context import DeployContext


def kubectl(ctx: DeployContext, *args: str, timeout: float = 30, stdin: str | None = None,
            credential: str = KUBESMITH_USER) -> subprocess.CompletedProcess:
    """Run the cached kubectl against the cluster with a kubeconfig of the state directory
    (kubesmith's own unless told); the result is returned, never raised."""
    kubeconfig = ctx.state / f"{credential}.kubeconfig"
    return subprocess.run(
        [ctx.binary("kubernetes", "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False)
