"""`deploy.py certs renew`: re-issue leaf certificates now (the CAs unchanged) and roll them out
one host at a time, each phase's readiness checked before the next host, restarting only the
services that read a replaced file (the certificate table). When certificates in use have
expired already (the cluster is down, etcd peers cannot form quorum) every host is renewed at
once, phase by phase, which brings the cluster back (the hosts' certificates are read first,
as `certs check` reads them)."""

from __future__ import annotations

import os
import shlex
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from kubesmith import certificates, settings
from kubesmith.context import DeployContext
from kubesmith.pki import PKI, CertSpec
from kubesmith.runner import Report, Runner
from kubesmith.workflows import certs_check, steps
from tasks.phases import PHASES

# `--schedule`: a daily crontab line (the control machine need not run systemd).
CRON_TIME = "17 3 * * *"
LOG = "certs-renew.log"


def run(runner: Runner, within: timedelta | None = None, every: bool = False) -> Report:
    """Re-issue the chosen leaf certificates (all; those expiring within the window; by
    default those `up` would renew), then roll them out."""
    start = time.monotonic()
    ctx = runner.ctx
    steps.require_cluster(ctx, "certs renew")
    now = datetime.now(UTC)
    expired = sorted({f"{f.place.host} {f.place.path}" for f in certs_check.collect(runner)
                      if f.cert is not None and f.cert.not_valid_after_utc <= now})
    chosen = chosen_specs(ctx.pki, certificates.cert_specs(ctx.cluster), within, every, now)
    if not chosen:
        runner.out("[certs] nothing to renew")
        return runner.finish(start, "0 certificates renewed")
    for spec in chosen:
        ctx.pki.issue(spec)
    runner.out(f"[certs] re-issued {len(chosen)} leaf certificates valid "
               f"{ctx.lifetime('leaf')} (CAs unchanged): {', '.join(s.name for s in chosen)}")
    steps.prepare_local(ctx, runner.out)
    if expired:
        runner.out(f"[certs] {len(expired)} expired in use ({expired[0]}, …): every host at "
                   "once")
        for phase in PHASES:
            runner.run(phase, phase.on(ctx.cluster))
    else:
        steps.roll(runner, ctx.cluster.hosts)
    return runner.finish(start, f"{len(chosen)} certificates renewed")


def chosen_specs(pki: PKI, specs: list[CertSpec], within: timedelta | None, every: bool,
                 now: datetime) -> list[CertSpec]:
    """The leaf certificates to re-issue: every one; or those missing, out of date or expiring
    within the window; without a window, those `up` would renew (a third of the lifetime)."""
    if every:
        return specs
    return [s for s in specs if pki.reason(s) or (
        within is not None and pki.expiry(s.name) - now < within)]


def schedule(ctx: DeployContext, inventory: Path) -> str:
    """The crontab line running `certs renew` daily with this inventory and environment."""
    env = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
           if k.startswith("KUBESMITH_")]
    words = [*env, shlex.quote(sys.executable), shlex.quote(str(settings.PROJECT / "deploy.py")),
             "certs", "renew", "-i", shlex.quote(str(inventory.resolve()))]
    log = shlex.quote(str(ctx.state / LOG))
    # cron turns an unescaped % into a newline.
    return f"{CRON_TIME} {' '.join(words)} >> {log} 2>&1".replace("%", "\\%")
