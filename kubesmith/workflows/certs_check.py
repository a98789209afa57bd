"""`deploy.py certs check`: every certificate on every host and on the control machine, read
from where it is used, with subject, issuer, time left and whether it is the PKI's copy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kubesmith import certcheck
from kubesmith.runner import DeployError, Runner, run_on


def run(runner: Runner, within: timedelta) -> list[certcheck.Row]:
    """Collect (one command per host), print the table; raise when a certificate expires within
    the window, is missing or unreadable, or differs from the control machine's copy."""
    ctx = runner.ctx
    found = [certcheck.read_local(place) for place in certcheck.control_places(ctx)]
    found += collect(runner)
    report = certcheck.rows(ctx, found, datetime.now(UTC))
    for line in certcheck.table(report, within):
        runner.out(line)
    failing = certcheck.problems(report, within)
    hosts = len({row.found.place.host for row in report})
    if failing:
        raise DeployError(f"certs: {len(failing)} of {len(report)} certificates (on {hosts} "
                          f"machines) need attention (window {certcheck.span(within)}):\n  "
                          + "\n  ".join(failing))
    runner.out(f"certs: {len(report)} certificates on {hosts} machines, none expires within "
               f"{certcheck.span(within)}, every copy is the PKI's")
    return report


def collect(runner: Runner) -> list[certcheck.Found]:
    """Every host's certificates, read where they are used (one command per host)."""
    ctx = runner.ctx
    found: list[certcheck.Found] = []
    with runner.connect("certs check", ctx.cluster.hosts) as connected:
        for remote in connected:
            places = certcheck.host_places(ctx, ctx.cluster.host(remote.name))
            _ok, output = run_on(remote, certcheck.command(places))
            found += certcheck.parse(places, output)
    order = [h.name for h in ctx.cluster.hosts]
    return sorted(found, key=lambda item: order.index(item.place.host))
