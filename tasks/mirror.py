"""The binary mirror: while a workflow installs artifacts, the first master serves them over
HTTPS (its certificate from the cluster CA); it gets each file once from the control machine
(only files it lacks), so the control machine's upload does not grow with the number of hosts.
Started only when some prepared op fetches, stopped when the workflow ends."""

from __future__ import annotations

import shlex
from collections.abc import Callable

from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.operations import systemd

from kubesmith import certificates, paths
from kubesmith.certificates import MIRROR
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import Phase, Runner, retry
from kubesmith.services import MIRROR_PORT
from tasks import _ops, pki

UNIT = f"{paths.MIRROR_UNIT}.service"


def seed(cluster: Cluster) -> Host:
    """The host that serves the mirror: the first master."""
    return cluster.masters[0]


def cacert(ctx: DeployContext) -> str:
    """The CA certificate every host checks the mirror's certificate with."""
    return f"{ctx.data['pki_dir']}/kubernetes-ca.crt"


def url(ctx: DeployContext, sha256: str) -> str:
    """Where a host fetches the artifact with this sum."""
    return f"https://{seed(ctx.cluster).address}:{MIRROR_PORT}/{sha256}"


def values(ctx: DeployContext) -> dict[str, object]:
    """The values of the mirror's templates (its server script and unit)."""
    pki = str(ctx.data["pki_dir"])
    return {"directory": paths.MIRROR_DIR, "address": seed(ctx.cluster).address,
            "port": MIRROR_PORT, "cert": f"{pki}/{MIRROR}.crt", "key": f"{pki}/{MIRROR}.key",
            "script": paths.MIRROR_SCRIPT}


def _fill(files: dict[str, str]) -> Callable[[DeployContext], None]:
    """The task on the seed: these artifacts (sha256 -> local cache file) in the mirror
    directory, the server's certificate (also the hosts phase's: here for workflows that run
    that phase on other hosts only), script and unit, the server running."""
    def fill(ctx: DeployContext) -> None:
        credential = next(c for c in certificates.of_host(ctx.cluster, seed(ctx.cluster))
                          if c.name == MIRROR)
        unit = _ops.template("kubesmith-mirror unit", "mirror/kubesmith-mirror.service.j2",
                             paths.unit(paths.MIRROR_UNIT), **values(ctx))
        server = [_ops.template("kubesmith-mirror server", "mirror/serve.py.j2",
                                paths.MIRROR_SCRIPT, **values(ctx)),
                  *pki.credential_items(ctx, credential), unit]
        synced = _ops.sync([
            _ops.directory(paths.MIRROR_DIR),
            *(_ops.local(f"mirror {src.rsplit('/', 1)[-1]}", src, f"{paths.MIRROR_DIR}/{sha}",
                         "644", sha) for sha, src in files.items()),
            *server,
        ])
        if synced.changed(unit):
            systemd.daemon_reload(name="reload systemd units")
        state = host.get_fact(_ops.UnitStates, units=[UNIT]).get(UNIT)
        running = state is not None and state.active == "active"
        if not running or synced.changed(*server):  # (left running by a killed run)
            systemd.service(name="start the binary mirror", service=UNIT, running=True,
                            restarted=running)
    return fill


def _stop(ctx: DeployContext) -> None:
    """The task on the seed: the server stopped (the files stay for the next workflow)."""
    systemd.service(name="stop the binary mirror", service=UNIT, running=False)


def _serving(ctx: DeployContext, remote: PyinfraHost) -> None:
    """The mirror answers over TLS, its certificate checked with the cluster CA."""
    retry(remote, f"curl -fsS -o /dev/null --cacert {shlex.quote(cacert(ctx))} "
                  f"{shlex.quote(url(ctx, ''))}", "binary mirror serving", 30)


def serve(runner: Runner) -> None:
    """Before a phase's ops run: the artifacts they fetch are in the mirror, which runs."""
    wanted = {sha: src for sha, src in _ops.FETCHES.items() if sha not in runner.mirrored}
    _ops.FETCHES.clear()
    if not wanted:
        return
    phase = Phase("binary mirror", lambda c: (seed(c),), (_fill(wanted),), (UNIT,), _serving)
    runner.run(phase, phase.hosts(runner.ctx.cluster))
    runner.mirrored.update(wanted)


def stop(runner: Runner) -> None:
    """When the workflow ends: stop the mirror if this workflow started it."""
    if runner.mirrored:
        runner.mirrored.clear()
        phase = Phase("binary mirror stop", lambda c: (seed(c),), (_stop,))
        runner.run(phase, phase.hosts(runner.ctx.cluster))
