"""`deploy.py restore SNAPSHOT --yes`: check the file on the control machine, stop the control
plane and node daemons, restore every etcd member's data directory from the same snapshot (a
new cluster, the old data directory kept aside), then start everything with the bootstrap's
phases and their readiness checks."""

from __future__ import annotations

import json
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

from pyinfra.api.host import Host as PyinfraHost

from kubesmith import backup, encryption, manifest, membership, paths, services
from kubesmith.backup import Snapshot
from kubesmith.context import DeployContext
from kubesmith.model import Host
from kubesmith.rules import printable
from kubesmith.runner import DeployError, Report, Runner, run_on
from kubesmith.workflows import steps
from tasks import etcd
from tasks.phases import HOSTS, PHASES

WORK_DIR = f"{paths.STATE_DIR}/restore"
# Above any revision a client may have watched (etcd's advice for Kubernetes, etcd #16028):
# watchers see the jump and re-list instead of waiting for revisions that will never come.
BUMP_REVISION = 1_000_000_000
# The daemons stopped before etcd's data is replaced, in this order (containerd and the node
# balancer keep running: pods keep running, kubelet reconciles them afterwards).
STOPPED = ("kubelet", "kube-proxy", "flanneld", "kube-scheduler", "kube-controller-manager",
           "kube-apiserver", "etcd")


def run(runner: Runner, path: Path, yes: bool) -> Report:
    """Refuse a bad file or a missing --yes before any host is contacted; then restore."""
    start = time.monotonic()
    ctx = runner.ctx
    snap, status = backup.check(ctx, path)
    members = ", ".join(h.name for h in ctx.cluster.etcd)
    if not yes:
        raise DeployError(f"restore: refusing without --yes: {path.name} (checked: revision "
                          f"{status['revision']}) would replace etcd's data on {members}")
    meta = snap.meta()
    readmit_keys(runner, meta)
    taken = sorted(f"{m['name']}={','.join(m['peer_urls'])}" for m in meta["members"])
    wanted = sorted(f"{h.name}={h.peer_url}" for h in ctx.cluster.etcd)
    if taken != wanted:
        runner.out(printable(f"[restore] the inventory's etcd members ({', '.join(wanted)}) "
                             f"differ from the snapshot's ({', '.join(taken)}): restoring onto "
                             "the inventory's"))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    steps.prepare_local(ctx, runner.out)  # certificates for replacement hosts
    runner.run(HOSTS, ctx.cluster.hosts)
    with runner.connect("restore", ctx.cluster.hosts) as connected:
        by_name = {h.name: h for h in connected}
        stop(runner, by_name)
        for member in ctx.cluster.etcd:
            restore_member(runner, by_name[member.name], snap, stamp)
    for phase in PHASES[1:]:
        runner.run(phase, phase.on(ctx.cluster))
    state = json.loads(etcd_status(runner))
    ids = sorted({format(s["Status"]["header"]["cluster_id"], "x") for s in state})
    revision = max(s["Status"]["header"]["revision"] for s in state)
    return runner.finish(start, f"etcd restored from {path.name} (revision "
                                f"{status['revision']}): cluster {', '.join(ids)}, revision "
                                f"{revision}; previous data directories kept as "
                                f"{ctx.data['etcd_data_dir']}.before-restore-{stamp}")


def readmit_keys(runner: Runner, meta: dict) -> None:
    """List again (read only) the kept encryption keys the snapshot's Secrets are under, so that
    the restored apiservers can read them; rotate-encryption-key drops them afterwards."""
    directory = runner.ctx.pki.directory
    ring = encryption.load(directory)
    names = [str(k).split(":")[1] for k in meta["encryption_keys"]]
    readmitted = encryption.readmit(ring, names) if ring else None
    if readmitted is not None and readmitted != ring:
        encryption.save(directory, readmitted)
        added = ", ".join(readmitted.providers[len(ring.providers):])
        runner.out(f"[restore] the snapshot's Secrets are under retired key(s) {added}: listed "
                   "again for reading; run `deploy.py rotate-encryption-key` afterwards to "
                   "rewrite them under a new key and drop the old ones")


def etcd_status(runner: Runner) -> str:
    """`etcdctl endpoint status -w json` of every member, asked from the first one."""
    ctx = runner.ctx
    with membership.peer(runner) as peer:
        ok, output = run_on(peer.remote, etcd.etcdctl(ctx, "endpoint status -w json",
                                                     ctx.cluster.etcd_client_urls))
    if not ok:
        raise DeployError(f"etcd endpoint status: {output.strip()[-300:]}")
    return output


def stop(runner: Runner, hosts: dict[str, PyinfraHost]) -> None:
    """Stop the node daemons, then the control plane, then etcd, on every host that runs them."""
    cluster = runner.ctx.cluster
    for name in STOPPED:
        service = services.SERVICES[name]
        for me in getattr(cluster, service.role):
            unit = shlex.quote(f"{name}.service")
            ok, output = run_on(hosts[me.name], f"! systemctl cat {unit} >/dev/null 2>&1 || "
                                                f"systemctl stop {unit}")
            if not ok:
                raise DeployError(f"{me.name}: could not stop {name}: {output.strip()[-300:]}")
    runner.out(f"[restore] stopped {', '.join(STOPPED)}")


WORK = {"dir": WORK_DIR, "db": f"{WORK_DIR}/snapshot.db", "etcdutl": f"{WORK_DIR}/etcdutl"}


def restore_member(runner: Runner, remote: PyinfraHost, snap: Snapshot, stamp: str) -> None:
    """Copy the snapshot (and the cached etcdutl) to the member, `etcdutl snapshot restore`
    it with the inventory's membership and a new cluster token, and swap the data directories;
    the copy is removed (it holds every Secret)."""
    ctx = runner.ctx
    me = ctx.cluster.host(remote.name)
    work = shlex.quote(WORK["dir"])
    ok, output = run_on(remote, f"rm -rf {work} && mkdir -m 700 -p {work}")
    for local, remote_file in ((snap.path, WORK["db"]),
                               (Path(ctx.binary("etcd", "etcdutl")), WORK["etcdutl"])):
        if not ok or not remote.put_file(str(local), remote_file):
            raise DeployError(f"{me.name}: could not copy {local.name}: {output.strip()[-300:]}")
    ok, output = run_on(remote, restore_command(ctx, me, snap.recorded_sha256(), stamp))
    if not ok:
        run_on(remote, f"rm -rf {work}")
        raise DeployError(f"{me.name}: etcdutl snapshot restore failed: {output.strip()[-300:]}")
    runner.out(f"[restore] {me.name}: data directory restored ({ctx.data['etcd_data_dir']}; "
               f"previous one kept as {ctx.data['etcd_data_dir']}.before-restore-{stamp})")


def restore_command(ctx: DeployContext, me: Host, sha256: str, stamp: str) -> str:
    """The shell command on a member: check the copied snapshot, `etcdutl snapshot restore` it
    beside the data directory, keep the old one aside (recorded in the manifest, so that reset
    removes it), put the new one in place (0700, etcd's)."""
    data_dir = str(ctx.data["etcd_data_dir"])
    restored, aside = f"{data_dir}.restored-{stamp}", f"{data_dir}.before-restore-{stamp}"
    args = etcd.quoted(
        WORK["etcdutl"], "snapshot", "restore", WORK["db"], f"--name={me.name}",
        f"--initial-cluster={ctx.cluster.etcd_initial_cluster}",
        f"--initial-cluster-token=kubesmith-restore-{stamp}",
        f"--initial-advertise-peer-urls={me.peer_url}", f"--data-dir={restored}",
        f"--bump-revision={BUMP_REVISION}", "--mark-compacted")
    q = {k: shlex.quote(v) for k, v in WORK.items()}
    data, new, old = (shlex.quote(p) for p in (data_dir, restored, aside))
    script = (f"set -e; chmod 700 {q['etcdutl']}; "
              f"echo {shlex.quote(sha256 + '  ' + WORK['db'])} | sha256sum -c --quiet; "
              f"{args} >/dev/null 2>{q['dir']}/restore.log || {{ cat {q['dir']}/restore.log; "
              f"exit 1; }}; "
              f"if [ -e {data} ]; then {manifest.append_command([manifest.line('dir', aside)])}; "
              f"mv {data} {old}; fi; mv {new} {data}; chmod 700 {data}; "
              f"if id -u etcd >/dev/null 2>&1; then chown -R etcd:etcd {data}; fi; "
              f"rm -rf {q['dir']}")
    return f"sh -c {shlex.quote(script)}"
