"""Steps several workflows share: local preparation, preflight, rolling convergence, host names."""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from kubesmith import addons, certificates, membership
from kubesmith.binaries import cache, sources
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext, claim
from kubesmith.model import Host
from kubesmith.pki import CAS
from kubesmith.runner import DeployError, Out, Runner, run_on
from tasks import addons as addon_tasks
from tasks import pki, preflight
from tasks.phases import APISERVERS_SERVING, ETCD, PHASES, wait_for_addons

ETCD_RUNNING_PEER_CERT = "/run/credentials/etcd.service/etcd-peer.crt"
# The read of it (old_peer_certificates), one per member.
PEER_CERT_READ = f"cat {ETCD_RUNNING_PEER_CERT}"


def prepare_local(ctx: DeployContext, out: Out, dry: bool = False) -> None:
    """Verify the binary cache and make the PKI on the control machine. The images of the
    add-ons turned on must be in the cache already (refused otherwise, before anything is built
    or touched); other components are built when missing. Dry, only say what would be built or
    generated: nothing is written locally."""
    addons.check_images(ctx.data)
    for name, component in COMPONENTS.items():
        if not component.deployed or name in addons.image_components():
            continue
        if not dry:
            sources.ensure(name, ctx.versions)
            continue
        version = ctx.versions[component.version_key]
        directory = cache.component_dir(cache.default_root(), name, version, cache.host_arch())
        if not cache.is_complete(directory, component.files):
            out(f"[binaries] would build {name} {version} into {directory}")
    if dry:
        planned = pki.plan(ctx)
        out(f"[pki] would make or renew {len(planned)}: {', '.join(planned)}"
                   if planned else "[pki] up to date")
        return
    claim(ctx)  # this inventory's state directory from now on
    made = pki.prepare(ctx)
    out(f"[pki] {len(made)} made or renewed" if made else "[pki] up to date")


def require_cluster(ctx: DeployContext, what: str) -> None:
    """Refuse a workflow that extends or renews a running cluster when this control machine has
    no CAs for it (a new CA would issue certificates that cluster does not trust)."""
    for ca in CAS:
        if ctx.pki.ca_reason(ca):  # raises for a damaged or expired CA
            raise DeployError(f"{what}: no {ca} in {ctx.pki.directory}: bootstrap the cluster "
                              "with `python deploy.py up` first (or run from the control "
                              "machine that holds its state directory)")


def check_hosts(runner: Runner, hosts: Sequence[Host], whole_cluster: bool) -> None:
    """Read-only preflight on these hosts; raise naming each problem, before any change."""
    with runner.connect("preflight", hosts, reads=True) as connected:
        issues = preflight.check(runner.ctx, connected, whole_cluster, runner.clocks())
    if issues:
        raise DeployError(preflight.refusal(issues, "\n(fix the hosts, or pass --skip-preflight)"))
    runner.out(f"[preflight] ok: {', '.join(h.name for h in hosts)}")


def roll(runner: Runner, hosts: Sequence[Host]) -> None:
    """Converge hosts one at a time: each phase's readiness is checked before the next host,
    so services that must restart (new member lists, new SANs) restart one host at a time."""
    cluster = runner.ctx.cluster
    with membership.peer(runner) as peer:
        peer.grant_access(cluster)
    for one in hosts:
        for phase in PHASES:
            if phase is ETCD:
                etcd_member(runner, phase.on(cluster, [one.name]), apiservers=True)
            else:
                runner.run(phase, phase.on(cluster, [one.name]))


def etcd_member(runner: Runner, member: Sequence[Host], apiservers: bool) -> None:
    """The etcd phase on one member (or none); when it changed and apiservers run, every
    apiserver serves again (its etcd client reconnected) before anything else restarts, so two
    outages never run into one."""
    changed = sum(runner.report.count(ETCD.name, h.name) for h in member)
    runner.run(ETCD, member)
    if apiservers and sum(runner.report.count(ETCD.name, h.name) for h in member) > changed:
        runner.run(APISERVERS_SERVING, APISERVERS_SERVING.on(runner.ctx.cluster))


def serving(runner: Runner, hosts: Sequence[Host], services: Sequence[str]) -> bool:
    """Whether every one of these hosts runs all these services (a cluster to converge, not to
    bootstrap: a new etcd member's first start waits for the others)."""
    if not hosts:
        return False
    units = " ".join(shlex.quote(f"{s}.service") for s in services)
    with runner.connect("running services", hosts, reads=True) as connected:
        return all(run_on(remote, f"systemctl is-active --quiet {units}")[0]
                   for remote in connected)


def roll_etcd(runner: Runner, members: Sequence[Host]) -> None:
    """The etcd phase one running member at a time (quorum holds, and apiservers that run
    serve again after each member that changed). While a member still runs a peer certificate
    without ETCD_PEER_CN (an earlier kubesmith's), the members restarted leave the CN check
    out; a second pass, every member then on its new certificate, adds it."""
    cluster = runner.ctx.cluster
    apiservers = serving(runner, APISERVERS_SERVING.on(cluster), APISERVERS_SERVING.services)
    for _pass in range(2):
        runner.ctx.etcd_old_peers = bool(old_peer_certificates(runner, members))
        for one in members:
            etcd_member(runner, (one,), apiservers)
        if not runner.ctx.etcd_old_peers:
            return


def expect_etcd_roll(runner: Runner, members: Sequence[Host]) -> None:
    """After a run that started etcd on these members (a bootstrap): the next run rolls them,
    reading each one's peer certificate first; that read goes in its read-ahead batch."""
    if runner.ahead is not None:
        for member in members:
            runner.ahead.expect(member.name, PEER_CERT_READ)


def old_peer_certificates(runner: Runner, members: Sequence[Host]) -> list[str]:
    """Members whose running etcd presents a peer certificate without ETCD_PEER_CN (systemd
    hands etcd a copy of it at start: /run/credentials/etcd.service)."""
    old = []
    with runner.connect("etcd peer certificates", members, reads=True) as connected:
        for remote in connected:
            ok, pem = run_on(remote, PEER_CERT_READ)
            try:
                cert = x509.load_pem_x509_certificate(pem.encode()) if ok else None
            except ValueError:
                cert = None
            names = [] if cert is None else [
                str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
            if names != [certificates.ETCD_PEER_CN]:
                old.append(remote.name)
    return old


def named(runner: Runner, names: Sequence[str], role: str) -> tuple[Host, ...]:
    """The named hosts, each checked to be in the role's inventory group."""
    found = []
    for name in names:
        if name not in {h.name for h in runner.ctx.cluster.hosts}:
            raise DeployError(f"{name} is not in the inventory: add it to `{role}`")
        me = runner.ctx.cluster.host(name)
        if not me.has(role):
            raise DeployError(f"{name} is not in the inventory's `{role}` group")
        found.append(me)
    return tuple(found)


def converge_addons(runner: Runner, dry: bool = False) -> None:
    """Apply the add-ons whose objects follow the node count (CoreDNS replicas) after nodes came
    or went, from the control machine alone (no host is connected to), then wait until ready."""
    for label, function, addon in addon_tasks.pending(runner.ctx):
        runner.report.add("add-ons", "control machine", label)
        runner.out(f"  [add-ons] control machine: {'would change: ' if dry else ''}{label}")
        if not dry:
            function(runner.ctx, addon)
    if not dry:
        wait_for_addons(runner.ctx)
