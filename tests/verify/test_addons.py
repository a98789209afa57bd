"""Add-ons: CoreDNS ready on distinct nodes and answering from a pod on every node; the metrics
API Available with metrics for every node. The checks of an add-on turned off are skipped."""

from __future__ import annotations

import json
import time

import pytest

from kubesmith import addons
from kubesmith.model import Host
from tasks.addons import MAX_DNS_REPLICAS
from tests.verify.checks import kubectl
from tests.verify.conftest import CTX, PROBE_NAMESPACE, timeout

ON = {a.name for a in addons.enabled(CTX.data)}
coredns = pytest.mark.skipif("coredns" not in ON, reason="add-on coredns is turned off")
metrics = pytest.mark.skipif("metrics-server" not in ON, reason="add-on metrics-server is off")
FIX = "run `python deploy.py up`"


def _ready(pod: dict) -> bool:
    """Whether a pod (as JSON) has condition Ready=True."""
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod.get("status", {}).get("conditions", []))


@coredns
def test_coredns_replicas_ready_on_distinct_nodes(ctx) -> None:
    out = kubectl(ctx, "-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", "json")
    assert out.returncode == 0, out.stderr
    nodes = [p["spec"].get("nodeName") for p in json.loads(out.stdout)["items"] if _ready(p)]
    want = min(MAX_DNS_REPLICAS, len(ctx.cluster.nodes))
    assert len(nodes) >= want, (f"CoreDNS: {len(nodes)} of {want} replicas ready "
                                f"(kubectl -n kube-system get pods -l k8s-app=kube-dns): {FIX}")
    assert len(set(nodes)) == len(nodes), f"CoreDNS replicas share a node: {sorted(nodes)}"


def _lookup(ctx, pod: str, name: str) -> str:
    """busybox nslookup in a probe pod (it applies the search list to dotless names only)."""
    return kubectl(ctx, "-n", PROBE_NAMESPACE, "exec", pod, "--", "timeout", str(timeout(5)),
                   "nslookup", name).stdout


@coredns
def test_cluster_dns_resolves_from_every_node(ctx, node_host: Host,
                                              probes: dict[str, str]) -> None:
    assert node_host.name in probes, f"probe pod on {node_host.name} not running"
    service_ip = kubectl(ctx, "-n", PROBE_NAMESPACE, "get", "service", "kubesmith-probe", "-o",
                         "jsonpath={.spec.clusterIP}").stdout
    wanted = {f"kubernetes.default.svc.{ctx.data['cluster_domain']}": ctx.cluster.service_vip,
              "kubesmith-probe": service_ip}
    failed = [f"{name} (want {ip})" for name, ip in wanted.items()
              if f"Address: {ip}" not in _lookup(ctx, f"probe-{node_host.name}", name)]
    assert not failed, (f"from a pod on {node_host.name}, {ctx.data['cluster_dns']} does not "
                        f"resolve {', '.join(failed)}")


@metrics
def test_metrics_apiservice_available(ctx) -> None:
    out = kubectl(ctx, "get", "apiservice", "v1beta1.metrics.k8s.io", "-o",
                  "jsonpath={.status.conditions[?(@.type==\"Available\")]}")
    assert out.returncode == 0, f"{out.stderr.strip()}: {FIX}"
    condition = json.loads(out.stdout or "{}")
    assert condition.get("status") == "True", (
        f"v1beta1.metrics.k8s.io not Available: {condition.get('reason')}: "
        f"{condition.get('message')}")


@metrics
def test_every_node_has_metrics(ctx) -> None:
    wanted = {n.name for n in ctx.cluster.nodes}
    deadline = time.monotonic() + timeout(60)  # metrics-server scrapes every 15 s
    while True:
        out = kubectl(ctx, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes")
        have = ({i["metadata"]["name"] for i in json.loads(out.stdout)["items"]}
                if out.returncode == 0 else set())
        if wanted <= have or time.monotonic() > deadline:
            break
        time.sleep(3)
    missing = sorted(wanted - have)
    assert not missing, (f"no metrics for {', '.join(missing)} "
                         f"({out.stderr.strip() or 'metrics.k8s.io answered'})")
