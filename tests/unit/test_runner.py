"""The phase runner carries a new workflow without any edit: a trivial one defined here runs
against this machine through pyinfra's @local connector (no SSH, nothing changed)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from pyinfra.api.host import Host as PyinfraHost

from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Phase, Runner, run_on

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
    phase = Phase("hostname", lambda c: c.hosts, (lambda _ctx: None,), ready=read_hostname)
    runner.run(phase, phase.on(runner.ctx.cluster))
    assert seen == {"@local": socket.gethostname()}
    assert lines[-1].startswith("[hostname] ok in") and lines[-1].endswith("@local 0 changed")
    assert runner.report.total_changes == 0


def test_a_failing_readiness_check_names_the_phase_and_host() -> None:
    def never(_ctx: DeployContext, remote: PyinfraHost) -> None:
        raise DeployError(f"{remote.name}: never ready")

    runner = _runner([])
    phase = Phase("doomed", lambda c: c.hosts, (lambda _ctx: None,), ready=never)
    with pytest.raises(DeployError, match="phase doomed: @local: never ready"):
        runner.run(phase, phase.on(runner.ctx.cluster))


def test_phase_on_limits_to_named_hosts() -> None:
    other = Host("b", "10.0.0.2", frozenset({"nodes"}))
    phase = Phase("p", lambda c: c.nodes, ())
    cluster = Cluster((LOCAL, other))
    assert phase.on(cluster) == (LOCAL, other)
    assert phase.on(cluster, ["b"]) == (other,)
