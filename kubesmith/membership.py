"""etcd membership of a running cluster: list, join (learner, then promoted), leave, and the
flannel leases of departed hosts; every call runs etcdctl on one remaining member."""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterator, Sequence

from pyinfra.api.host import Host as PyinfraHost

from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Runner, retry, run_on
from tasks import etcd, etcd_access, flannel
from tasks.phases import ETCD_JOIN, HOSTS


class Peer:
    """A connected etcd member that stays in the cluster, to run etcdctl on."""

    def __init__(self, runner: Runner, remote: PyinfraHost) -> None:
        self.runner, self.remote = runner, remote

    def etcdctl(self, args: str) -> str:
        """etcdctl on the peer; raise DeployError naming the host when it fails."""
        ok, output = run_on(self.remote, etcd.etcdctl(self.runner.ctx, args))
        if not ok:
            raise DeployError(f"{self.remote.name}: etcdctl {args}: {output.strip()[-300:]}")
        return output

    def members(self) -> list[etcd.Member]:
        """The members as the running cluster lists them."""
        return etcd.members(self.etcdctl("member list -w simple"))

    def member(self, me: Host) -> etcd.Member | None:
        """The member at this host's peer URL, if any."""
        return next((m for m in self.members() if m.peer_url == me.peer_url), None)

    def join(self, me: Host) -> None:
        """`member add --learner`, start the new member, promote it once it is in sync."""
        ctx, out = self.runner.ctx, self.runner.out
        mine = self.member(me)
        if mine is not None and mine.started and not mine.learner:
            out(f"[etcd join] {me.name}: already a member")
            return
        others = [m for m in self.members() if m.peer_url != me.peer_url]
        stray = next((m for m in others if not m.started), None)
        if stray is not None:
            raise DeployError(f"etcd lists an unstarted member at {stray.peer_url}: finish its "
                              f"join or remove it (etcdctl member remove {stray.id})")
        if mine is None:
            # etcd refuses a new member until every voting member has been connected for a few
            # seconds ("unhealthy cluster", e.g. just after a promotion): retry, idempotently.
            retry(self.remote, add_command(ctx, me), f"etcd member add {me.name}", 60)
            mine = self.member(me)
            out(f"[etcd join] {me.name}: added as learner")
        ctx.joining[me.name] = ",".join(
            [f"{m.name}={m.peer_url}" for m in others] + [f"{me.name}={me.peer_url}"])
        for phase in (HOSTS, ETCD_JOIN):
            self.runner.run(phase, (me,))
        if mine is not None and mine.learner:
            retry(self.remote, etcd.etcdctl(ctx, etcd.quoted("member", "promote", mine.id)),
                  f"etcd learner {me.name} in sync (member promote)", 120)
            out(f"[etcd join] {me.name}: promoted to voting member")

    def leave(self, me: Host) -> None:
        """`etcdctl member remove` of a host, before it is reset."""
        member = self.member(me)
        if member is not None:
            self.etcdctl(etcd.quoted("member", "remove", member.id))
            self.runner.out(f"[remove] {me.name}: removed from etcd ({member.id})")

    def grant_access(self, cluster: Cluster) -> None:
        """etcd users and roles for this cluster's hosts (a new pod host's user before its
        flanneld starts; a removed host's user deleted), authentication on."""
        ctx = self.runner.ctx
        ok, output = run_on(self.remote, etcd_access.probe(ctx))
        current = etcd_access.parse(output) if ok else None
        if current is None:
            raise DeployError(f"{self.remote.name}: etcd's users and roles unreadable: "
                              f"{output.strip()[-300:]}")
        commands = etcd_access.plan(cluster, str(ctx.data["flannel_etcd_prefix"]), current)
        for args in commands:
            self.etcdctl(args)
        if commands:
            self.runner.out(f"[etcd access] {len(commands)} change(s) to etcd users and roles")

    def forget_leases(self, hosts: Sequence[Host]) -> None:
        """Delete the hosts' flannel subnet leases from etcd."""
        ctx = self.runner.ctx
        listing = self.etcdctl(leases_args(ctx))
        addresses = {h.address for h in hosts}
        prefix = str(ctx.data["flannel_etcd_prefix"])
        for key, owner in flannel.leases(listing, prefix).items():  # validated lease keys only
            if owner in addresses:
                self.etcdctl(etcd.quoted("del", key))


def leases_args(ctx: DeployContext) -> str:
    """etcdctl arguments listing flannel's subnet leases."""
    return etcd.quoted("get", "--prefix", f"{ctx.data['flannel_etcd_prefix']}/subnets/")


def add_command(ctx: DeployContext, me: Host) -> str:
    """`member add --learner` of a host unless etcd already lists its peer URL (idempotent)."""
    listed = etcd.etcdctl(ctx, "member list -w simple")
    add = etcd.etcdctl(ctx, etcd.quoted("member", "add", me.name, "--learner",
                                        f"--peer-urls={me.peer_url}"))
    return f"{listed} | grep -qF {shlex.quote(', ' + me.peer_url + ',')} || {add}"


@contextlib.contextmanager
def peer(runner: Runner, exclude: Sequence[str] = ()) -> Iterator[Peer]:
    """A connected etcd member outside `exclude`; raise when there is none."""
    member = next((h for h in runner.ctx.cluster.etcd if h.name not in exclude), None)
    if member is None:
        raise DeployError("no etcd member outside " + ", ".join(exclude) +
                          ": bootstrap the cluster with `python deploy.py up` first")
    with runner.connect("etcd peer", (member,)) as connected:
        yield Peer(runner, connected[0])
