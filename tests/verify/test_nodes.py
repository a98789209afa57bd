"""Nodes: runtime and node daemons, the local apiserver balancer, Ready, kube-proxy's chains,
pod-to-pod on every pair."""

from __future__ import annotations

from kubesmith import balancer, services
from kubesmith.model import Host
from kubesmith.services import APISERVER_LB_PORT
from tests.verify.checks import kubectl
from tests.verify.conftest import PROBE_NAMESPACE, remote


def test_node_daemons(node_host: Host) -> None:
    host = remote(node_host.name)
    daemons = [s.name for s in services.of_role("nodes")]
    down = [d for d in daemons if not host.service(d).is_running]
    assert not down, f"not running: {', '.join(down)}"


def test_balancer_backends_are_every_master_and_up(ctx, node_host: Host) -> None:
    stats = remote(node_host.name).check_output(balancer.STATS_COMMAND)
    why = balancer.problem(stats, ctx.cluster)
    assert why is None, f"{node_host.name}: apiserver balancer: {why}"


def test_balancer_on_loopback_only_and_used(ctx, node_host: Host) -> None:
    host = remote(node_host.name)
    listening = host.check_output(f"ss -Hltn 'sport = :{APISERVER_LB_PORT}'")
    addresses = {line.split()[3] for line in listening.splitlines() if line.strip()}
    assert addresses == {f"127.0.0.1:{APISERVER_LB_PORT}"}, f"balancer listens on {addresses}"
    conf = ctx.data["kube_config_dir"]
    for name in ("kubelet", "kube-proxy"):
        kubeconfig = host.file(f"{conf}/{name}.kubeconfig").content_string
        assert f"server: {ctx.cluster.balancer_url}\n" in kubeconfig, \
            f"{name} does not use the balancer {ctx.cluster.balancer_url}"


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
