"""`deploy.py backup`: an etcd snapshot on the control machine (with --keep, the newest N kept);
or, with --schedule, a systemd timer on every etcd member taking local snapshots."""

from __future__ import annotations

import functools
import time
from pathlib import Path

from kubesmith import backup
from kubesmith.backup import Snapshot
from kubesmith.runner import DeployError, Phase, Report, Runner, on_each
from tasks import backup as backup_tasks


def run(runner: Runner, dest: Path | None, keep: int | None, schedule: str | None) -> Report:
    """Take one snapshot now and prune, or install the members' backup timer."""
    start = time.monotonic()
    if schedule is not None:
        if dest is not None:
            raise DeployError("backup: --dest is for a backup taken now; with --schedule the "
                              f"members keep their snapshots in {backup.REMOTE_DIR}")
        kept = keep or backup_tasks.DEFAULT_KEEP
        phase = Phase("backup schedule", lambda c: c.etcd,
                      (functools.partial(backup_tasks.schedule, calendar=schedule, keep=kept),),
                      (backup_tasks.SERVICE,), on_each(backup_tasks.timer_ready))
        runner.run(phase, runner.ctx.cluster.etcd)
        return runner.finish(start, f"{backup_tasks.TIMER} ({schedule}) on every member, the "
                                    f"newest {kept} snapshots kept in {backup.REMOTE_DIR}")
    folder = dest or backup.default_dest(runner.ctx)
    path = backup.snapshot(runner, folder)
    meta = Snapshot(path).meta()
    status = meta["status"]
    runner.out(f"[backup] {path} (0600, {path.stat().st_size / 2**20:.1f} MiB) from "
               f"{meta['taken_from']}: revision {status['revision']}, {status['totalKey']} keys; "
               f"sha256 {meta['sha256']}")
    if keep is not None:
        for gone in backup.prune(folder, keep):
            runner.out(f"[backup] removed {gone.name} (--keep {keep})")
    return runner.finish(start, str(path))
