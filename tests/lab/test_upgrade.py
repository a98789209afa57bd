"""`deploy.py upgrade` on a 3-host lab (lab-1 etcd+master, lab-2 and lab-3 nodes): v1.33.13 ->
v1.34.4 (when v1.33.13 is cached) keeps a 2-replica Deployment (PDB minAvailable 1) answering
through a NodePort, never has two nodes out, snapshots etcd first, and ends with every component
at the target, verify and cis passing and `up` changing nothing; then, at v1.34.4 (bootstrapped
there when v1.33.13 is not cached: a fresh machine), the refusals change nothing.
Opt-in (`pytest -m "lab or upgrade_drill" tests/lab/test_upgrade.py`): the upgrade interrupted at
lab-3 by a kubelet drop-in kubesmith does not manage, repaired, resumed: v1.34.4 -> v1.35.4 when
v1.35.4 is cached, else v1.33.13 -> v1.34.4 on a cluster bootstrapped at v1.33.13."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kubesmith import settings, versions
from kubesmith.binaries import cache
from kubesmith.inventory import to_cluster
from tests.lab.conftest import PROJECT, Deployed, missing_binaries

pytestmark = pytest.mark.lab

FROM, TO, NEXT = "v1.33.13", "v1.34.4", "v1.35.4"
UNCACHED = "v1.34.5"  # a patch release after TO that the binary cache does not hold
NODE_PORT = 30080
WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: default}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 20
      topologySpreadConstraints:
      - {{maxSkew: 1, topologyKey: kubernetes.io/hostname, whenUnsatisfiable: ScheduleAnyway,
          labelSelector: {{matchLabels: {{app: web}}}}}}
      containers:
      - name: web
        image: kubesmith.local/busybox:{busybox}
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html &&
                  exec httpd -f -p 8080 -h /www"]
        readinessProbe: {{httpGet: {{path: /, port: 8080}}, periodSeconds: 1}}
        # keep serving while the Service's endpoints drop the terminating pod
        lifecycle: {{preStop: {{exec: {{command: ["sleep", "5"]}}}}}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {{name: web, namespace: default}}
spec:
  minAvailable: 1
  selector: {{matchLabels: {{app: web}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  type: NodePort
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080, nodePort: {node_port}}}]
"""
NODES = ("lab-2", "lab-3")
MASTER_UNITS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "flanneld")
NODE_UNITS = ("containerd", "flanneld", "kubelet", "kube-proxy")
DROP_IN = "/etc/systemd/system/kubelet.service.d/50-drill.conf"


def cached(version: str) -> bool:
    """Whether the Kubernetes binaries of a version are in the cache."""
    files = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
             "kube-proxy", "kubectl")
    return cache.is_complete(cache.component_dir(cache.default_root(), "kubernetes", version,
                                                 cache.host_arch()), files)


def first_version(request: pytest.FixtureRequest) -> str:
    """FROM when cached and a selected test upgrades from it (the minor leg, or the interrupted
    drill without NEXT to go to), else TO (the default version)."""
    selected = {item.name for item in request.session.items if item.module is request.module}
    from_first = "test_upgrade_one_minor_serving_throughout" in selected or (
        "test_interrupted_at_lab_3_then_resumed" in selected and not cached(NEXT))
    return FROM if from_first and cached(FROM) else TO


@pytest.fixture(scope="module")
def cluster(lab_factory, tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Deployed:
    """Three lab hosts bootstrapped (at first_version) from an inventory whose settings pin the
    version, serving the web Deployment."""
    if missing := missing_binaries():
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    lab_ = lab_factory(3)
    directory = Path(tmp_path_factory.mktemp("inventory"))
    (directory / "group_data").mkdir()
    (directory / "hosts.py").write_text((PROJECT / "inventories" / "lab.py").read_text())
    state = Path(tmp_path_factory.mktemp("state"))
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root), KUBESMITH_STATE=str(state))
    deployed = Deployed(lab_, state, env, "")
    deployed.inventory = directory / "hosts.py"
    pin(deployed, first_version(request))
    first = deployed.deploy("up", "-i", str(deployed.inventory))
    assert first.returncode == 0, f"bootstrap failed:\n{first.stdout}\n{first.stderr}"
    deployed.apply(WEB.format(busybox=settings.group_data()["busybox_version"],
                              node_port=NODE_PORT))
    deployed.kubectl("rollout", "status", "deployment/web", "--timeout=180s")
    return deployed


def pin(cluster: Deployed, version: str) -> None:
    """The inventory's settings name this Kubernetes version (what an operator edits)."""
    (cluster.inventory.parent / "group_data" / "all.py").write_text(
        f"kubernetes_version = {version!r}\n")


def run(cluster: Deployed, *args: str) -> subprocess.CompletedProcess:
    """deploy.py ARGS -i the inventory (upgrades take longer than Deployed.deploy allows)."""
    return subprocess.run([sys.executable, str(PROJECT / "deploy.py"), *args, "-i",
                           str(cluster.inventory)], capture_output=True, text=True,
                          env=cluster.env, cwd=PROJECT, timeout=3000, check=False)


def running(cluster: Deployed) -> dict[str, dict[str, str]]:
    """What every host runs, read from the hosts with the product's own probe."""
    address = {h.name: {"address": h.address} for h in cluster.lab.state.hosts}
    groups = {"etcd": [("lab-1", address["lab-1"])], "masters": [("lab-1", address["lab-1"])],
              "nodes": [(n, address[n]) for n in NODES]}
    model = to_cluster(groups, settings.group_data())
    found = {}
    for me in model.hosts:
        out = cluster.ssh(me.name, versions.probe(model, me, "/usr/local/bin")).stdout
        found[me.name] = {k: str(v) for k, v in versions.parse(out).items()}
    return found


def started(cluster: Deployed) -> dict[str, dict[str, str]]:
    """Each kubesmith unit's last start (monotonic) on every host."""
    return {"lab-1": cluster.started("lab-1", MASTER_UNITS),
            **{n: cluster.started(n, NODE_UNITS) for n in NODES}}


def started_at(cluster: Deployed) -> dict[tuple[str, str], int]:
    """Each kubesmith unit's last start as wall-clock seconds: {(host, unit): time}."""
    found = {}
    for host, units in (("lab-1", MASTER_UNITS), *((n, NODE_UNITS) for n in NODES)):
        out = cluster.ssh(host, "; ".join(
            f'echo {u} $(date -d "$(systemctl show -p ActiveEnterTimestamp --value {u})" +%s)'
            for u in units)).stdout
        found.update({(host, line.split()[0]): int(line.split()[1]) for line in out.splitlines()
                      if len(line.split()) == 2})
    return found


# The node watch lists nodes, then sleeps NODE_POLL_SLEEP: one listing per 1-2 s (kubectl's own
# time included) while the apiserver answers.
NODE_POLL_SLEEP = 1.0
NODE_POLL_PERIOD = 2.0


@dataclass
class Watch:
    """NodePort probes every 0.5 s (alternating nodes) and node states every second, in
    background threads, while an upgrade runs."""

    cluster: Deployed
    probes: list[tuple[float, bool]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)  # "+SECONDS NODE: error" of failed probes
    worst: int = 0  # most nodes unschedulable or NotReady at once
    worst_seen: str = ""
    polls: int = 0  # node listings read
    failed_polls: list[str] = field(default_factory=list)  # "+SECONDS: error" of the others
    started: float = 0.0
    ended: float = 0.0
    stop: threading.Event = field(default_factory=threading.Event)

    def _probe(self) -> None:
        addresses = {h.name: h.address for h in self.cluster.lab.state.hosts if h.name in NODES}
        turn, first = 0, time.monotonic()
        while not self.stop.is_set():
            began = time.monotonic()
            node = NODES[turn % 2]
            try:
                with urllib.request.urlopen(f"http://{addresses[node]}:{NODE_PORT}/",
                                            timeout=2) as answer:
                    ok = answer.status == 200
            except OSError as error:
                ok = False
                self.failed.append(f"+{began - first:.1f} s {node}: {error}")
            self.probes.append((began, ok))
            turn += 1
            time.sleep(max(0.0, 0.5 - (time.monotonic() - began)))

    def _list_nodes(self) -> list[dict]:
        """The nodes as the apiserver lists them (JSON from kubectl's stdout only: a warning on
        stderr is no failure); raises AssertionError when the listing fails."""
        return json.loads(self.cluster.kubectl("get", "nodes", "-o", "json",
                                               "--request-timeout=5s"))["items"]

    def _nodes(self) -> None:
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                items = self._list_nodes()
            except (AssertionError, subprocess.TimeoutExpired, ValueError, KeyError) as error:
                # The apiserver restarting: counted, and assert_served allows only a few.
                self.failed_polls.append(f"+{began - self.started:.1f} s: {error}")
                time.sleep(NODE_POLL_SLEEP)
                continue
            self.polls += 1
            out_now = [n["metadata"]["name"] for n in items
                       if n["spec"].get("unschedulable") or not any(
                           c["type"] == "Ready" and c["status"] == "True"
                           for c in n["status"].get("conditions", ()))]
            if len(out_now) > self.worst:
                self.worst, self.worst_seen = len(out_now), ", ".join(out_now)
            time.sleep(NODE_POLL_SLEEP)

    def __enter__(self) -> Watch:
        self.started = time.monotonic()
        self.threads = [threading.Thread(target=t, daemon=True) for t in (self._probe,
                                                                          self._nodes)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.ended = time.monotonic()
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    @property
    def success(self) -> float:
        """Share of probes answered 200."""
        return sum(ok for _t, ok in self.probes) / max(1, len(self.probes))

    @property
    def longest_gap(self) -> float:
        """The longest time between two successful probes."""
        times = [t for t, ok in self.probes if ok]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def upgrade_leg(cluster: Deployed, version: str) -> tuple[subprocess.CompletedProcess, Watch]:
    """Pin the version and run `deploy.py upgrade` while probes and the node watch run."""
    pin(cluster, version)
    with Watch(cluster) as watch:
        time.sleep(2)
        result = run(cluster, "upgrade")
        time.sleep(2)
    print(f"upgrade to {version}: {len(watch.probes)} probes, {watch.success:.2%} ok, longest "
          f"gap {watch.longest_gap:.1f} s, at most {watch.worst} node(s) out "
          f"({watch.worst_seen}) in {watch.polls} node listings "
          f"({len(watch.failed_polls)} failed)\nfailed probes: {watch.failed}\n"
          f"failed node listings: {watch.failed_polls}\n{result.stdout}")
    return result, watch


def assert_served(watch: Watch) -> None:
    """>= 99% of probes answered, no gap over 5 s, never two nodes out at once."""
    assert watch.success >= 0.99, \
        f"{watch.success:.2%} of {len(watch.probes)} probes ok; failed: {watch.failed}"
    assert watch.longest_gap <= 5.0, f"{watch.longest_gap:.1f} s without an answer"
    # The node watch ran throughout: at least half the listings of its slowest pace, and
    # most of its listings read (failures: the apiserver restarting).
    elapsed = watch.ended - watch.started
    least = int(elapsed / NODE_POLL_PERIOD / 2)
    assert watch.polls >= least, (f"the node watch read {watch.polls} node listings in "
                                  f"{elapsed:.0f} s, expected {least}+: {watch.failed_polls}")
    assert len(watch.failed_polls) <= watch.polls // 2, \
        f"{len(watch.failed_polls)} node listings failed, {watch.polls} read: {watch.failed_polls}"
    assert watch.worst <= 1, f"nodes out at once: {watch.worst_seen}"


def assert_at(cluster: Deployed, version: str) -> None:
    """Every Kubernetes component runs the version (read from the hosts); verify and cis pass;
    `up` changes nothing."""
    k8s = {"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet",
           "kube-proxy"}
    found = running(cluster)
    assert {(h, c, v) for h, read in found.items() for c, v in read.items() if c in k8s} == {
        (h, c, version) for h, read in found.items() for c in read if c in k8s}, found
    assert found["lab-1"]["etcd"] == settings.group_data()["etcd_version"]
    verify = run(cluster, "verify")
    assert verify.returncode == 0, verify.stdout[-3000:]
    cis = run(cluster, "cis")
    assert cis.returncode == 0, cis.stdout[-3000:] + cis.stderr[-2000:]
    again = run(cluster, "up")
    assert again.returncode == 0, again.stderr
    assert re.search(r"done in [\d.]+ s: 0 operations changed", again.stdout), again.stdout


def test_upgrade_one_minor_serving_throughout(cluster: Deployed) -> None:
    if running(cluster)["lab-1"]["kube-apiserver"] != FROM:
        pytest.skip(f"kubernetes {FROM} not cached: the cluster was bootstrapped at {TO}")
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-3", "--timeout=120s")
    before = started_at(cluster)
    result, watch = upgrade_leg(cluster, TO)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-3000:]}"
    # The snapshot (with its sha256) came before the first change, and holds what it says.
    lines = result.stdout.splitlines()
    taken = next(i for i, line in enumerate(lines) if "[upgrade] etcd snapshot: " in line)
    first_phase = next(i for i, line in enumerate(lines) if re.match(r"\[(hosts|etcd|control "
                                                                     r"plane|cluster config)\]",
                                                                     line))
    assert taken < first_phase
    snapshot = Path(lines[taken].split("etcd snapshot: ")[1])
    digest = hashlib.sha256(snapshot.read_bytes()).hexdigest()
    assert Path(f"{snapshot}.sha256").read_text() == f"{digest}  {snapshot.name}\n"
    restarted = {unit: at for unit, at in started_at(cluster).items() if at != before[unit]}
    assert restarted, "the upgrade restarted nothing"
    assert snapshot.stat().st_mtime <= min(restarted.values()) + 1, restarted
    assert_served(watch)
    if "node lab-2: cordon" in result.stdout:  # the watch saw each node out, one at a time
        assert watch.worst == 1, watch.worst_seen
    assert_at(cluster, TO)
    # A re-run finds every host at the target: nothing to upgrade, nothing restarted.
    before = started(cluster)
    again = run(cluster, "upgrade")
    assert again.returncode == 0 and "nothing to upgrade" in again.stdout, again.stdout
    assert started(cluster) == before


def test_refusals_change_nothing(cluster: Deployed) -> None:
    """At TO (after the leg above, or bootstrapped there): a skipped minor, a downgrade, an
    uncached version and a stopped kubelet are each refused in one line, nothing changed."""
    if running(cluster)["lab-1"]["kube-apiserver"] != TO:
        pytest.skip(f"the cluster does not run {TO} (the upgrade leg above failed)")
    assert not cached(UNCACHED), f"kubernetes {UNCACHED} is cached: name another in UNCACHED"
    before = started(cluster)
    backups = sorted((cluster.state / "backups").glob("*"))
    cases = [(("--to", "v1.36.3"), "v1.34.4 -> v1.36.3 skips a minor release: upgrade to "
                                   "v1.35 first"),
             (("--to", FROM), f"runs v1.34.4, the inventory names {FROM}: downgrades are not "
                              "supported"),
             (("--to", UNCACHED), f"not in the binary cache: kubernetes {UNCACHED}: build them "
                                  f"first (set kubernetes_version = '{UNCACHED}' in the "
                                  "inventory's settings, then `python deploy.py binaries -i")]
    for args, reason in cases:
        refused = run(cluster, "upgrade", *args)
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 1 and len(lines) == 1 and reason in lines[0], refused.stderr
        assert lines[0].startswith("error: upgrade refused, nothing was changed: ")
    cluster.ssh("lab-3", "systemctl stop kubelet")
    try:
        refused = run(cluster, "upgrade", "--to", TO)
        assert refused.returncode == 1 and refused.stderr.strip().splitlines() == [
            "error: upgrade refused, nothing was changed: lab-3 (kubelet): not running: start it "
            "(or fix the host) before upgrading"], refused.stderr
    finally:
        cluster.ssh("lab-3", "systemctl start kubelet")
    after = started(cluster)
    after["lab-3"].pop("kubelet")
    before["lab-3"].pop("kubelet")
    assert after == before
    assert sorted((cluster.state / "backups").glob("*")) == backups
    assert {h: read["kubelet"] for h, read in running(cluster).items() if h in NODES} == {
        h: TO for h in NODES}
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-3", "--timeout=180s")


@pytest.mark.upgrade_drill
def test_interrupted_at_lab_3_then_resumed(cluster: Deployed) -> None:
    """The next leg (FROM -> TO on a fresh cluster, TO -> NEXT after the leg above) with lab-3's
    new kubelet unable to start: stops naming lab-3 and the step; repaired, the re-run finishes
    without restarting anything on the hosts already done."""
    target = TO if running(cluster)["lab-1"]["kube-apiserver"] == FROM else NEXT
    if not cached(target):
        pytest.skip(f"kubernetes {target} not cached")
    # A drop-in kubesmith does not manage gives kubelet a bad flag: its next start fails.
    cluster.ssh("lab-3", f"mkdir -p {os.path.dirname(DROP_IN)} && printf '[Service]\\n"
                f"ExecStartPre=/usr/local/bin/kubelet --no-such-flag\\n' > {DROP_IN} && "
                "systemctl daemon-reload")
    try:
        failed, watch = upgrade_leg(cluster, target)
        assert failed.returncode != 0
        assert "upgrade stopped at lab-3 (nodes)" in failed.stderr, failed.stderr[-3000:]
        assert "step 'restart kubelet (inputs changed)' failed" in failed.stderr
        assert_served(watch)
        done = started(cluster)
    finally:
        cluster.ssh("lab-3", f"rm -f {DROP_IN} && systemctl daemon-reload && "
                             "systemctl restart kubelet")
    cluster.kubectl("wait", "--for=condition=Ready", "node/lab-3", "--timeout=180s")
    resumed, watch = upgrade_leg(cluster, target)
    assert resumed.returncode == 0, resumed.stdout[-4000:] + resumed.stderr[-3000:]
    assert "[upgrade] step 1. etcd snapshot" in resumed.stdout
    assert "node lab-2" not in resumed.stdout and "master lab-1" not in resumed.stdout
    assert_served(watch)
    now = started(cluster)
    assert {h: now[h] for h in ("lab-1", "lab-2")} == {h: done[h] for h in ("lab-1", "lab-2")}
    assert_at(cluster, target)
