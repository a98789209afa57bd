"""CoreDNS and metrics-server on a fresh 3-host lab (lab-1 master, lab-2 and lab-3 nodes), lab-3
with a systemd-resolved stub in /etc/resolv.conf: lookups from every node, a Deployment reached by
its Service name, `kubectl top`, a re-run that changes and restarts nothing, verify failing by
name without CoreDNS and `up` restoring it, a drain DNS does not notice, a node crash measured."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kubesmith import settings
from tests.lab.conftest import Deployed, missing_binaries

pytestmark = pytest.mark.lab

NODES = ("lab-2", "lab-3")
STUB_HOST = "lab-3"
RESOLVED_UPSTREAM = "/run/systemd/resolve/resolv.conf"
FQDN = f"kubernetes.default.svc.{settings.group_data()['cluster_domain']}"
BUSYBOX = f"kubesmith.local/busybox:{settings.versions()['busybox_version']}"
POD = """apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 0
  containers:
  - name: main
    image: {image}
    imagePullPolicy: Never
    command: ["sh", "-c", {command}]
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers:
      - name: web
        image: {image}
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && echo hello-from-web > /www/index.html &&
                  exec httpd -f -p 8080 -h /www"]
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
"""
# One lookup every 0.2 s, one line per result (kubectl logs --timestamps dates them).
LOOP = (f"while true; do if timeout 2 nslookup {FQDN} >/dev/null 2>&1; then echo ok; "
        "else echo FAIL; fi; sleep 0.2; done")
# The longest a LOOP iteration takes (a lookup timing out, then the sleep): the loop logs at
# least one result per LOOP_PERIOD seconds, whether its lookups answer or not.
LOOP_PERIOD = 2 + 0.2


@pytest.fixture(scope="module")
def cluster(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """Three lab hosts, lab-3's /etc/resolv.conf the stub of systemd-resolved (its upstream list
    in /run/systemd/resolve), then `deploy.py up`; `finished` is when up returned."""
    if missing := missing_binaries():
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    lab_ = lab_factory(3)
    state = Path(tmp_path_factory.mktemp("state"))
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root), KUBESMITH_STATE=str(state))
    deployed = Deployed(lab_, state, env, "")
    stub = deployed.ssh(STUB_HOST, (
        "printf 'nameserver 127.0.0.53\\noptions edns0 trust-ad\\nsearch .\\n' > /etc/resolv.conf"
        f" && mkdir -p {Path(RESOLVED_UPSTREAM).parent}"
        f" && echo 'nameserver {lab_.state.gateway}' > {RESOLVED_UPSTREAM}"))
    assert stub.returncode == 0, stub.stderr
    first = deployed.deploy("up")
    deployed.finished = time.monotonic()
    assert first.returncode == 0, f"bootstrap failed:\n{first.stdout}\n{first.stderr}"
    deployed.first_up = first.stdout + first.stderr
    return deployed


def _pod(cluster: Deployed, name: str, node: str, command: str) -> None:
    """A busybox pod pinned to a node, Ready."""
    cluster.apply(POD.format(name=name, node=node, image=BUSYBOX, command=json.dumps(command)))
    cluster.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=90s")


def _in(cluster: Deployed, pod: str, command: str) -> str:
    """The output of a shell command in a pod (its exit status is not checked)."""
    return cluster.kubectl("exec", pod, "--", "sh", "-c", f"{command}; true")


def _addon_pods(cluster: Deployed) -> dict[str, tuple[str, int]]:
    """kube-system pods: name -> (uid, restarts)."""
    items = json.loads(cluster.kubectl("-n", "kube-system", "get", "pods", "-o", "json"))["items"]
    return {p["metadata"]["name"]: (p["metadata"]["uid"],
                                    sum(c["restartCount"] for c in p["status"].get(
                                        "containerStatuses", [])))
            for p in items}


def _dns_pods(cluster: Deployed) -> dict[str, dict]:
    """CoreDNS pods by node."""
    items = json.loads(cluster.kubectl("-n", "kube-system", "get", "pods", "-l",
                                       "k8s-app=kube-dns", "-o", "json"))["items"]
    return {p["spec"].get("nodeName"): p for p in items}


def test_up_applies_the_addons_in_their_own_phase(cluster: Deployed) -> None:
    assert "  [add-ons] lab-1: apply add-on coredns" in cluster.first_up
    assert "  [add-ons] lab-1: apply add-on metrics-server" in cluster.first_up
    took = re.search(r"\[add-ons\] ok in ([\d.]+) s", cluster.first_up)
    assert took, cluster.first_up[-2000:]
    print(f"add-ons phase on bootstrap: {took.group(1)} s")


def test_kubectl_top_lists_every_node_within_120_s_of_up(cluster: Deployed) -> None:
    while True:
        out = cluster.kubectl("top", "nodes", "--no-headers", check=False)
        listed = {line.split()[0] for line in out.splitlines() if line.split()}
        waited = time.monotonic() - cluster.finished
        if set(NODES) <= listed or waited > 120:
            break
        time.sleep(2)
    assert set(NODES) <= listed, f"kubectl top nodes after {waited:.0f} s: {out}"
    print(f"kubectl top nodes lists every node {waited:.1f} s after up")
    condition = cluster.kubectl("get", "apiservice", "v1beta1.metrics.k8s.io", "-o",
                                "jsonpath={.status.conditions[?(@.type==\"Available\")].status}")
    assert condition == "True"


def test_a_stub_resolver_host_gets_its_upstream_file_and_no_loop(cluster: Deployed) -> None:
    for node, wanted in (("lab-2", "/etc/resolv.conf"), (STUB_HOST, RESOLVED_UPSTREAM)):
        config = cluster.ssh(node, "cat /var/lib/kubelet/config.yaml").stdout
        assert f"resolvConf: {json.dumps(wanted)}\n" in config, node  # (a JSON string)
    pod = _dns_pods(cluster)[STUB_HOST]
    statuses = pod["status"]["containerStatuses"]
    assert statuses[0]["ready"] and statuses[0]["restartCount"] == 0, statuses
    logs = cluster.kubectl("-n", "kube-system", "logs", pod["metadata"]["name"])
    assert "plugin/loop" not in logs and "detected" not in logs, logs[-1000:]


def test_lookups_from_every_node_answer_within_2_s(cluster: Deployed) -> None:
    vip = cluster.kubectl("get", "service", "kubernetes", "-o", "jsonpath={.spec.clusterIP}")
    for node in NODES:
        _pod(cluster, f"dns-{node}", node, "exec sleep 100000")
        # busybox nslookup applies the search list to dotless names only: the full name here,
        # the short one through the C library's resolver (ping prints the address it resolved).
        answer = _in(cluster, f"dns-{node}", f"timeout 2 nslookup {FQDN}")
        assert f"Address: {vip}" in answer, f"{node}: {answer}"
        answer = _in(cluster, f"dns-{node}", "timeout 2 ping -c1 -W1 kubernetes.default 2>&1")
        assert f"PING kubernetes.default ({vip})" in answer, f"{node}: {answer}"


def test_a_pod_reaches_a_deployment_by_its_service_name(cluster: Deployed) -> None:
    cluster.apply(WEB.format(image=BUSYBOX))
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=90s")
    for node in NODES:
        answer = _in(cluster, f"dns-{node}",
                     'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 3 web 80')
        assert "hello-from-web" in answer, f"{node}: {answer}"


def test_rerun_changes_nothing_and_restarts_no_addon_pod(cluster: Deployed) -> None:
    before = _addon_pods(cluster)
    again = cluster.deploy("up")
    assert again.returncode == 0, again.stderr
    assert "0 operations changed" in again.stdout and "[add-ons] ok in" in again.stdout
    assert _addon_pods(cluster) == before


def test_verify_fails_by_name_without_coredns_and_up_restores_it(cluster: Deployed) -> None:
    cluster.kubectl("-n", "kube-system", "scale", "deployment/coredns", "--replicas=0")
    cluster.kubectl("-n", "kube-system", "wait", "--for=delete", "pod", "-l", "k8s-app=kube-dns",
                    "--timeout=60s")
    failed = cluster.deploy("verify", "-k", "coredns")
    assert failed.returncode != 0
    assert re.search(r"coredns_replicas_ready_on_distinct_nodes\s+FAIL", failed.stdout), \
        failed.stdout[-2000:]
    restored = cluster.deploy("up")
    assert restored.returncode == 0, restored.stderr
    assert "apply add-on coredns" in restored.stdout and "1 operations changed" in restored.stdout
    pods = _dns_pods(cluster)
    assert set(pods) == set(NODES), "a CoreDNS replica per node"
    verify = cluster.deploy("verify")
    assert verify.returncode == 0, verify.stdout[-3000:]


def _loop_results(cluster: Deployed, pod: str) -> list[tuple[datetime, bool]]:
    """The resolver loop's results with the runtime's timestamps."""
    rows = []
    for line in cluster.kubectl("logs", "--timestamps", pod).splitlines():
        stamp, result = line.split()
        rows.append((datetime.fromisoformat(stamp[:26].rstrip("Z") + "+00:00"), result == "ok"))
    return rows


def test_draining_a_coredns_node_is_not_noticed_by_a_resolver_loop(cluster: Deployed) -> None:
    assert set(_dns_pods(cluster)) == set(NODES)
    _pod(cluster, "loop-drain", "lab-3", LOOP)
    time.sleep(3)
    drained = cluster.kubectl("drain", "lab-2", "--ignore-daemonsets", "--force",
                              "--delete-emptydir-data", "--timeout=120s")
    assert "node/lab-2 drained" in drained
    time.sleep(5)
    results = _loop_results(cluster, "loop-drain")
    cluster.kubectl("uncordon", "lab-2")
    failures = [when for when, ok in results if not ok]
    assert not failures and len(results) >= 20, f"{len(failures)} of {len(results)} failed"
    cluster.kubectl("-n", "kube-system", "rollout", "status", "deployment/coredns",
                    "--timeout=120s")


def test_a_crashed_coredns_node_costs_at_most_60_s_of_dns(cluster: Deployed) -> None:
    assert set(_dns_pods(cluster)) == set(NODES)
    _pod(cluster, "loop-crash", "lab-3", LOOP)
    time.sleep(3)
    killed = datetime.now(UTC)
    stopped = cluster.deploy("lab", "stop", "lab-2", "--kill")
    assert stopped.returncode == 0, stopped.stderr
    time.sleep(75)
    watched = (datetime.now(UTC) - killed).total_seconds()
    results = [(when, ok) for when, ok in _loop_results(cluster, "loop-crash") if when > killed]
    # Half of what the loop logs at its slowest (every lookup timing out): it ran throughout.
    least = int(watched / LOOP_PERIOD / 2)
    assert len(results) >= least, \
        f"{len(results)} lookups in the {watched:.0f} s after the crash, expected {least}+"
    failures = [when for when, ok in results if not ok]
    longest, start = 0.0, None
    for when, ok in results:
        if not ok and start is None:
            start = when
        elif ok and start is not None:
            longest, start = max(longest, (when - start).total_seconds()), None
    last = (failures[-1] - killed).total_seconds() if failures else 0.0
    print(f"node crash: {len(failures)} of {len(results)} lookups failed, longest failing "
          f"stretch {longest:.1f} s, last failure {last:.1f} s after the kill")
    assert start is None, "lookups still failing 75 s after the crash"
    assert last < 60, f"lookups failed until {last:.1f} s after the crash"
