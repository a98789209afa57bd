"""The cluster as an operator checks it: componentstatuses and nodes."""

from __future__ import annotations

from tests.verify.checks import kubectl


def test_componentstatuses_healthy(ctx) -> None:
    out = kubectl(ctx, "get", "componentstatuses", "--no-headers")
    assert out.returncode == 0, out.stderr
    unhealthy = [line for line in out.stdout.splitlines() if line.split()[1] != "Healthy"]
    assert not unhealthy, "; ".join(unhealthy)


def test_all_nodes_ready(ctx) -> None:
    out = kubectl(ctx, "get", "nodes", "--no-headers")
    assert out.returncode == 0, out.stderr
    status = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()}
    assert status == {n.name: "Ready" for n in ctx.cluster.nodes}
