"""etcd: a TLS cluster (peer and client certificates required), run by the `etcd` user with a
0700 data directory it owns."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from pyinfra import host
from pyinfra.operations import server

from kubesmith import certificates, manifest, paths, rules
from kubesmith.context import DeployContext
from kubesmith.services import ETCD_CLIENT_PORT
from tasks import _ops, artifacts
from tasks._ops import Op

# etcdctl's defaults (2 s to dial, 5 s per command) fail on a loaded or emulated host, where a TLS
# handshake alone can take seconds (seen under QEMU without KVM). etcdctl 3.6 ignores
# ETCDCTL_DIAL_TIMEOUT/ETCDCTL_COMMAND_TIMEOUT in the environment, so these are flags.
ETCDCTL_TIMEOUTS = "--dial-timeout=10s --command-timeout=30s"


def deploy(ctx: DeployContext) -> None:
    """Install, configure and start the etcd member on this host."""
    me = ctx.cluster.host(host.name)
    conf = str(ctx.data["kube_config_dir"])
    joining = ctx.joining.get(me.name)
    binaries = artifacts.service_binaries(ctx, "etcd")
    unit = _ops.template("etcd unit", "etcd/etcd.service.j2", paths.unit("etcd"), mode="600",
                         etcd_peer_cn="" if ctx.etcd_old_peers else certificates.ETCD_PEER_CN,
                         **ctx.values(me))
    synced = _ops.sync([
        _ops.template("etcd bootstrap membership", "etcd/etcd-bootstrap.env.j2",
                      f"{conf}/etcd-bootstrap.env", create_only=True, **ctx.data,
                      initial_cluster=joining or ctx.cluster.etcd_initial_cluster,
                      initial_cluster_state="existing" if joining else "new"),
        *binaries.values(),
        _ops.directory(str(ctx.data["etcd_data_dir"]), "700"),
        _ops.template("etcdctl environment", "etcd/etcdctl.env.j2", f"{conf}/etcdctl.env",
                      etcd_endpoints=f"https://{me.address}:{ETCD_CLIENT_PORT}",
                      pki_dir=ctx.data["pki_dir"]),
        unit,
    ])
    owned = _etcd_owns_data_dir(str(ctx.data["etcd_data_dir"]), synced.recorded)
    _ops.services(ctx, synced, [_ops.Service("etcd", unit, [binaries["etcd"]],
                                             restart=owned is not None)])


def data_dir_commands(data_dir: str) -> dict[str, str]:
    """The data directory's owner probe, and the commands making the etcd user and its owner."""
    quoted = shlex.quote(data_dir)
    return {
        "probe": f"echo $(id -u etcd 2>/dev/null || echo none) $(stat -c %U:%G {quoted})",
        "user": f"useradd --system --user-group --home-dir {quoted} --no-create-home "
                "--shell /usr/sbin/nologin --comment kubesmith-etcd etcd",
        "chown": f"chown -R etcd:etcd {quoted}",
    }


def _etcd_owns_data_dir(data_dir: str, recorded: set[str]) -> Op:
    """The `etcd` system user (recorded in the manifest when kubesmith makes it), owner of the
    data directory (created or fixed when needed)."""
    commands = data_dir_commands(data_dir)
    user, _sep, owner = host.get_fact(_ops.ShellOutput, probe=commands["probe"]).partition(" ")
    if user == "none":
        _ops.record([manifest.line("user", "etcd")], recorded)
        server.shell(name="etcd system user", commands=[commands["user"]])
    if owner == "etcd:etcd":
        return None
    return server.shell(name="etcd owns its data directory", commands=[commands["chown"]])


def etcdctl(ctx: DeployContext, args: str, endpoints: str | None = None) -> str:
    """A shell command running etcdctl over TLS with the host's etcdctl environment; `args` must
    be quoted by the caller (see quoted())."""
    override = f"ETCDCTL_ENDPOINTS={shlex.quote(endpoints)} " if endpoints else ""
    env_file = shlex.quote(f"{ctx.data['kube_config_dir']}/etcdctl.env")
    return f". {env_file} && {override}etcdctl {ETCDCTL_TIMEOUTS} {args}"


def quoted(*words: str) -> str:
    """etcdctl arguments, each quoted for the shell."""
    return " ".join(shlex.quote(w) for w in words)


def health_command(ctx: DeployContext) -> str:
    """etcdctl over TLS against every member: exits non-zero unless all are healthy."""
    return etcdctl(ctx, "endpoint health", ctx.cluster.etcd_client_urls)


@dataclass(frozen=True)
class Member:
    """One line of `etcdctl member list -w simple`."""

    id: str
    started: bool
    name: str
    peer_url: str
    learner: bool


def members(listing: str) -> list[Member]:
    """Parse `etcdctl member list -w simple` (unstarted members have an empty name)."""
    found = []
    for line in listing.splitlines():
        fields = [f.strip() for f in line.split(",")]
        # Member ids go back into commands (member remove/promote): hex only, as etcd prints.
        if len(fields) == 6 and fields[1] in ("started", "unstarted") \
                and rules.ETCD_MEMBER_ID.fullmatch(fields[0]):
            found.append(Member(fields[0], fields[1] == "started", fields[2], fields[3],
                                fields[5] == "true"))
    return found
