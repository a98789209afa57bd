"""kubectl on the control machine, with kubesmith's own kubeconfig of a cluster's state,
failing over to any live apiserver (the external endpoint, else each master in turn)."""

from __future__ import annotations

import re
import subprocess

from kubesmith.certificates import KUBESMITH_USER
from kubesmith.context import DeployContext

# What kubectl says when it could not talk to an apiserver at all (then the next one is tried).
UNREACHABLE = re.compile(
    r"Unable to connect to the server|The connection to the server .* was refused|"
    r"no route to host|connection refused|i/o timeout|TLS handshake timeout|"
    r"http2: client connection lost|connection reset by peer")
# Per cluster state directory: the URL that answered last, tried first next time.
_live: dict[str, str] = {}


def servers(ctx: DeployContext) -> list[str]:
    """The apiserver URLs to try, the one that answered last first."""
    urls = list(ctx.cluster.apiserver_urls)
    last = _live.get(str(ctx.state))
    return [last, *(u for u in urls if u != last)] if last in urls else urls


def _run(ctx: DeployContext, url: str, args: tuple[str, ...], timeout: float,
         stdin: str | None, credential: str) -> subprocess.CompletedProcess:
    """One kubectl run against one apiserver URL with a kubeconfig of the state directory."""
    return subprocess.run(
        [ctx.binary("kubernetes", "kubectl"),
         f"--kubeconfig={ctx.state / f'{credential}.kubeconfig'}", f"--server={url}", *args],
        input=stdin, capture_output=True, text=True, timeout=timeout, check=False)


def kubectl(ctx: DeployContext, *args: str, timeout: float = 30, stdin: str | None = None,
            credential: str = KUBESMITH_USER) -> subprocess.CompletedProcess:
    """Run the cached kubectl against the cluster (kubesmith's own credential unless told); the
    result is returned, never raised. An apiserver that cannot be reached is skipped."""
    *others, last = servers(ctx)
    for url in others:
        result = _run(ctx, url, args, timeout, stdin, credential)
        if result.returncode == 0 or not UNREACHABLE.search(result.stderr):
            _live[str(ctx.state)] = url
            return result
    return _run(ctx, last, args, timeout, stdin, credential)
