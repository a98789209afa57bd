"""The phase runner carries a new workflow without any edit: a trivial one defined here runs
against this machine through pyinfra's @local connector (no SSH, nothing changed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pyinfra.api.host import Host as PyinfraHost

from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import (
    DeployError,
    Phase,
    Report,
    Runner,
    on_each,
    poll,
    retry,
    run_on,
    service_op,
)

LOCAL = Host("@local", "127.0.0.1", frozenset({"nodes"}))


def _runner(lines: list[str]) -> Runner:
    ctx = DeployContext(Cluster((LOCAL,)), {}, Path("/nonexistent"),
                        groups={"nodes": [("@local", {})]})
    return Runner(ctx, lines.append)


def hostnames(runner: Runner) -> dict[str, str]:
    """A whole workflow: connect every host, read its hostname, disconnect."""
    with runner.connect("hostnames", runner.ctx.cluster.hosts) as connected:
        return {h.name: run_on(h, "hostname")[1].strip() for h in connected}


def test_a_new_workflow_needs_no_runner_edit() -> None:
    assert hostnames(_runner([])) == {"@local": socket.gethostname()}


def test_a_new_phase_runs_its_tasks_and_readiness_check() -> None:
    seen: dict[str, str] = {}

    def read_hostname(_ctx: DeployContext, remote: PyinfraHost) -> None:
        seen[remote.name] = run_on(remote, "hostname")[1].strip()

    lines: list[str] = []
    runner = _runner(lines)
    phase = Phase("hostname", lambda c: c.hosts, (lambda _ctx: None,), ready=on_each(read_hostname))
    runner.run(phase, phase.on(runner.ctx.cluster))
    assert seen == {"@local": socket.gethostname()}
    assert lines[-1].startswith("[hostname] ok in") and lines[-1].endswith("@local 0 changed")
    assert runner.report.total_changes == 0


def test_under_pyinfra_s_cli_a_check_run_on_each_host_gets_the_host_itself() -> None:
    """pyinfra's CLI sets its context `host` per greenlet: on_each's greenlets get the host."""
    from pyinfra.context import ctx_host

    from tasks.phases import ready_here

    seen: list[str] = []
    runner = _runner([])
    phase = Phase("hostname", lambda c: c.hosts, (),
                  ready=on_each(lambda _ctx, remote: seen.append(run_on(remote, "hostname")[1])))
    with runner.connect("cli", (LOCAL,)) as connected, ctx_host.use(connected[0]):
        ready_here(runner.ctx, phase)
    assert seen == [socket.gethostname()]


def test_a_failing_readiness_check_names_the_phase_and_host() -> None:
    def never(_ctx: DeployContext, remote: PyinfraHost) -> None:
        raise DeployError(f"{remote.name}: never ready")

    runner = _runner([])
    phase = Phase("doomed", lambda c: c.hosts, (lambda _ctx: None,), ready=on_each(never))
    with pytest.raises(DeployError, match="phase doomed: @local: never ready"):
        runner.run(phase, phase.on(runner.ctx.cluster))


def test_phase_on_limits_to_named_hosts() -> None:
    other = Host("b", "10.0.0.2", frozenset({"nodes"}))
    phase = Phase("p", lambda c: c.nodes, ())
    cluster = Cluster((LOCAL, other))
    assert phase.on(cluster) == (LOCAL, other)
    assert phase.on(cluster, ["b"]) == (other,)


def test_the_report_splits_waiting_for_services_from_own_work_and_counts_commands(
        tmp_path: Path) -> None:
    """A service that comes up on the third try: the time before the passing try is waiting,
    the rest own work; every command the host ran (fact, ops, checks) is counted."""
    flag = tmp_path / "up"

    def comes_up(_ctx: DeployContext, remote: PyinfraHost) -> None:
        tries: list[int] = []

        def attempt() -> str | None:
            tries.append(1)
            if len(tries) == 3:
                flag.touch()
            return None if run_on(remote, f"test -e {flag}")[0] else "not yet"

        poll(attempt, "service up", 10)

    runner = _runner([])
    phase = Phase("slow", lambda c: c.hosts, (lambda _ctx: None,), ready=on_each(comes_up))
    runner.run(phase, phase.on(runner.ctx.cluster))
    report = runner.report
    # Two failed tries and the backoff after each (0.1 s, then 0.15 s) before the passing one.
    assert 0.25 <= report.waited["slow"] < report.seconds["slow"]
    assert report.own("slow") == report.seconds["slow"] - report.waited["slow"]
    assert report.commands["slow"]["@local"] == 3

    again = _runner([])
    again.run(phase, phase.on(again.ctx.cluster))
    assert again.report.waited["slow"] == 0.0  # ready at the first try: nothing waited


def test_a_check_that_never_passes_names_host_and_reason_after_its_timeout() -> None:
    with (_runner([]).connect("check", (LOCAL,)) as connected,
          pytest.raises(DeployError, match=r"@local: service not reached within 0 s: .*nope")):
        retry(connected[0], "echo nope; false", "service", 0.2)


def test_outside_phase_commands_are_counted_under_their_label() -> None:
    runner = _runner([])
    assert hostnames(runner) == {"@local": socket.gethostname()}
    assert runner.report.commands["hostnames"]["@local"] == 1
    lines = runner.report.breakdown() if runner.report.seconds.setdefault("total", 1.0) else []
    assert lines[1].startswith("  hostnames: ") and lines[1].endswith("remote commands: @local 1")


def test_a_service_start_job_counts_as_waiting_for_the_service() -> None:
    """A start job lasts as long as the service takes to start (Type=notify): waiting."""
    from pyinfra.operations import server

    def starts(_ctx: DeployContext) -> None:
        server.shell(name=service_op("slowd running and enabled"), commands=["sleep 0.5"])
        server.shell(name="own work", commands=["true"])

    runner = _runner([])
    phase = Phase("start", lambda c: c.hosts, (starts,))
    runner.run(phase, phase.on(runner.ctx.cluster))
    assert 0.5 <= runner.report.waited["start"] < runner.report.seconds["start"]


def test_a_phase_run_inside_another_reports_its_time_once(monkeypatch) -> None:
    """The binary mirror is filled inside the phase that needs it: its seconds are its own,
    not the enclosing phase's too (they would add up to more than the workflow took)."""
    from pyinfra.operations import server

    from tasks import mirror

    inner = Phase("inner", lambda c: c.hosts,
                  (lambda _ctx: server.shell(name="inner work", commands=["sleep 0.4"]),))
    runner = _runner([])
    calls: list[int] = []

    def serve(r: Runner) -> None:  # like the mirror's: fill (a phase) once, not from inside it
        calls.append(1)
        if len(calls) == 1:
            r.run(inner, inner.on(r.ctx.cluster))

    monkeypatch.setattr(mirror, "serve", serve)
    outer = Phase("outer", lambda c: c.hosts, (lambda _ctx: None,))
    runner.run(outer, outer.on(runner.ctx.cluster))
    monkeypatch.setattr(mirror, "serve", lambda _r: None)
    runner.run(outer, outer.on(runner.ctx.cluster))  # the accounting holds for the next phase
    seconds = runner.report.seconds
    assert seconds["inner"] >= 0.4 and 0 < seconds["outer"] < 0.4


def test_the_breakdown_gives_the_total_as_a_ratio_to_the_waiting() -> None:
    """The services' own start is the limit: the first line says how far the run is from it."""
    report = Report()
    report.seconds.update({"slow": 30.0, "total": 40.0})
    report.wait("slow", 20.0)
    assert report.breakdown()[0] == ("40.0 s (2.00x its waiting): waiting for services 20.0 s, "
                                     "own work 20.0 s (50%)")
    report = Report()
    report.seconds.update({"quick": 1.0, "total": 1.0})
    assert report.breakdown()[0] == "1.0 s: waiting for services 0.0 s, own work 1.0 s (100%)"
