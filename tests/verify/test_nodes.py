"""Nodes: runtime and node daemons, Ready, kube-proxy's chains, pod-to-pod on every pair."""

from __future__ import annotations

from kubesmith import services
from kubesmith.model import Host
from tests.verify.checks import kubectl
from tests.verify.conftest import PROBE_NAMESPACE, remote


def test_node_daemons(node_host: Host) -> None:
    host = remote(node_host.name)
    daemons = [s.name for s in services.of_role("nodes")]
    down = [d for d in daemons if not host.service(d).is_running]
    assert not down, f"not running: {', '.join(down)}"


def test_node_ready(ctx, node_host: Host) -> None:
    result = kubectl(ctx, "get", "node", node_host.name, "-o",
                     "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}")
    assert result.stdout == "True", f"Ready={result.stdout or result.stderr.strip()}"


def test_kube_proxy_chains(node_host: Host) -> None:
    nat = remote(node_host.name).check_output("iptables -t nat -S")
    for chain in ("KUBE-SERVICES", "KUBE-NODEPORTS"):
        assert f"-N {chain}" in nat, f"chain {chain} missing"
    assert "-A KUBE-SERVICES" in nat and "default/kubernetes:https" in nat, \
        "KUBE-SERVICES has no service rules"


def test_pod_reaches_every_other_node(ctx, node_host: Host, probes: dict[str, str]) -> None:
    assert node_host.name in probes, f"probe pod on {node_host.name} not running"
    failed = []
    for other, ip in probes.items():
        if other == node_host.name:
            continue
        answer = kubectl(ctx, "-n", PROBE_NAMESPACE, "exec", f"probe-{node_host.name}", "--", "sh",
                         "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {ip} 8080')
        if other not in answer.stdout:
            failed.append(f"{other} ({ip})")
    assert not failed, f"pod on {node_host.name} cannot reach pods on {', '.join(failed)}"
