"""`deploy.py reset`: remove what kubesmith installed on hosts of the inventory's role groups
(all of them when none are named), after checking each belongs to this cluster."""

from __future__ import annotations

import hashlib
import shlex
import time
from collections.abc import Sequence

from kubesmith import manifest
from kubesmith.context import DeployContext
from kubesmith.model import ROLES, Cluster, Host
from kubesmith.pki import CAS
from kubesmith.runner import DeployError, Report, Runner, run_on
from tasks.phases import RESET


def targets(cluster: Cluster, names: Sequence[str] | None) -> tuple[Host, ...]:
    """The named hosts, or every host of a role group; a host in no role group is refused."""
    if not names:
        return tuple(h for h in cluster.hosts if h.groups)
    found = tuple(cluster.host(n) for n in names)
    for host in found:
        if not host.groups:
            raise DeployError(f"{host.name} is in none of the inventory's role groups "
                              f"({', '.join(ROLES)}): refusing to reset it")
    return found


def probe(ctx: DeployContext) -> str:
    """Each CA certificate on the host with its sha256, and whether it has a manifest."""
    pki = str(ctx.data["pki_dir"])
    lines = [f"f={shlex.quote(f'{pki}/{ca}.crt')}; "
             f'[ -f "$f" ] && echo "{ca} $(sha256sum < "$f" | cut -c1-64)"' for ca in CAS]
    return "; ".join([*lines, f"[ -s {manifest.PATH} ] && echo manifest; true"])


def problems(ctx: DeployContext, host: str, found: str, force: bool) -> list[str]:
    """Why a host must not be reset from this state directory (from probe()'s output): its CA
    is another cluster's (unless force), or it has no manifest yet carries this cluster's CA."""
    on_host: dict[str, str] = {}
    for line in found.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] in CAS:
            on_host[words[0]] = words[1]
    issues, matched = [], False
    for ca, digest in on_host.items():
        mine = ctx.pki.path(f"{ca}.crt")
        ours = mine.exists() and hashlib.sha256(mine.read_bytes()).hexdigest() == digest
        matched = matched or ours
        if not ours and not force:
            issues.append(f"{host}: its {ctx.data['pki_dir']}/{ca}.crt is not the CA in {mine} "
                          "(a host of another cluster?): refusing to reset it; --force resets "
                          "it anyway")
    if "manifest" not in found.split() and matched and not issues:
        issues.append(f"{host}: no manifest ({manifest.PATH}) of what kubesmith installed: an "
                      "earlier kubesmith deployed it; run `up` once (it records the manifest), "
                      "then reset")
    return issues


def check(runner: Runner, hosts: Sequence[Host], force: bool = False) -> None:
    """Refuse, before anything changes, every host that reset must not touch (read-only)."""
    issues = []
    with runner.connect("reset check", hosts) as connected:
        for remote in connected:
            _ok, found = run_on(remote, probe(runner.ctx))
            issues += problems(runner.ctx, remote.name, found, force)
    if issues:
        raise DeployError("reset refused, nothing was changed:\n  " + "\n  ".join(issues))


def run(runner: Runner, names: Sequence[str] | None = None, force: bool = False) -> Report:
    """The reset phase on the named hosts, or on every host of the inventory's role groups."""
    start = time.monotonic()
    hosts = targets(runner.ctx.cluster, names)
    check(runner, hosts, force)
    runner.run(RESET, hosts)
    return runner.finish(start, f"reset: {', '.join(h.name for h in hosts)}")
