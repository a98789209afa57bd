"""Nodes: runtime and node daemons, Ready, kube-proxy's chains, pod-to-pod on every pair."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from kubesmith import services
from kubesmith.binaries.images import image_ref
from kubesmith.model import Host
from tests.verify.checks import kubectl
from tests.verify.conftest import CTX, remote, timeout

# One namespace per run: the previous run's may still be terminating.
NAMESPACE = f"kubesmith-verify-{uuid.uuid4().hex[:8]}"
PROBE = """apiVersion: v1
kind: Pod
metadata:
  name: probe-{node}
  namespace: {ns}
  labels: {{app: kubesmith-probe}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - name: probe
    image: {image}
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo {node} > /www/index.html &&
              exec httpd -f -p 8080 -h /www"]
"""


@pytest.fixture(scope="session")
def probes() -> Iterator[dict[str, str]]:
    """A short-lived pod per node: node name -> pod IP (removed afterwards)."""
    image = image_ref("busybox", str(CTX.data["busybox_version"]))
    created = kubectl(CTX, "create", "namespace", NAMESPACE)
    assert created.returncode == 0, created.stderr
    # Pods are refused until the controller-manager has made the namespace's default account.
    kubectl(CTX, "-n", NAMESPACE, "wait", "--for=create", "serviceaccount/default",
            f"--timeout={timeout(30)}s")
    manifests = [PROBE.format(node=n.name, ns=NAMESPACE, image=image) for n in CTX.cluster.nodes]
    applied = kubectl(CTX, "apply", "-f", "-", stdin="---\n".join(manifests))
    assert applied.returncode == 0, applied.stderr
    kubectl(CTX, "-n", NAMESPACE, "wait", "--for=condition=Ready", "pod",
            "-l", "app=kubesmith-probe", f"--timeout={timeout(30)}s")
    out = kubectl(CTX, "-n", NAMESPACE, "get", "pods", "-o",
                  "jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP}{\"\\n\"}{end}")
    ips = dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)
    yield ips
    kubectl(CTX, "delete", "namespace", NAMESPACE, "--wait=false")


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
        answer = kubectl(ctx, "-n", NAMESPACE, "exec", f"probe-{node_host.name}", "--", "sh",
                         "-c", f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 {ip} 8080')
        if other not in answer.stdout:
            failed.append(f"{other} ({ip})")
    assert not failed, f"pod on {node_host.name} cannot reach pods on {', '.join(failed)}"
