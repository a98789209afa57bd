"""The scheduled etcd backup on each member: a script, a oneshot service and its timer."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api.host import Host as PyinfraHost
from pyinfra.operations import systemd

from kubesmith import backup, paths
from kubesmith.context import DeployContext
from kubesmith.model import Host
from kubesmith.runner import retry
from tasks import _ops, etcd

DEFAULT_KEEP = 7
SERVICE = "etcd-backup"
TIMER = f"{SERVICE}.timer"


def values(ctx: DeployContext, me: Host, calendar: str, keep: int) -> dict[str, object]:
    """The values of the backup script and units of one member."""
    return {**ctx.values(me), "backup_dir": backup.REMOTE_DIR, "keep": keep,
            "etcdctl_timeouts": etcd.ETCDCTL_TIMEOUTS, "script": paths.BACKUP_SCRIPT,
            "calendar": calendar}


def schedule(ctx: DeployContext, calendar: str, keep: int) -> None:
    """Install the backup script and units; the timer enabled and running."""
    given = values(ctx, ctx.cluster.host(host.name), calendar, keep)
    script = _ops.template("etcd backup script", "backup/etcd-backup.sh.j2", paths.BACKUP_SCRIPT,
                           "700", **given)
    service = _ops.template("etcd-backup service", "backup/etcd-backup.service.j2",
                            paths.unit(SERVICE), **given)
    timer = _ops.template("etcd-backup timer", "backup/etcd-backup.timer.j2",
                          f"{paths.UNIT_DIR}/{TIMER}", **given)
    synced = _ops.sync([script, service, timer])
    states = host.get_fact(_ops.UnitStates, units=[TIMER])
    state = states.get(TIMER, _ops.UnitState("inactive", "disabled"))
    active, enabled = state.active, state.enabled
    changed = synced.changed(service, timer)
    if changed:
        systemd.daemon_reload(name="reload systemd units")
    if changed or active != "active" or enabled != "enabled":
        systemd.service(name="etcd-backup timer running and enabled", service=TIMER,
                        running=True, enabled=True, restarted=changed and active == "active")


def timer_ready(ctx: DeployContext, member: PyinfraHost) -> None:
    """The timer is listed with a next run."""
    retry(member, f"systemctl list-timers --no-legend {TIMER} | grep -q {TIMER}",
          "etcd-backup.timer listed", 30)
