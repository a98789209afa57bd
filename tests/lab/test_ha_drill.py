"""The HA drill of issue 16 on real lab hosts (opt-in: `pytest -m ha_drill`): three etcd
members and masters (lab-1..3), two nodes (lab-4, lab-5), readers on both nodes reading
through their local balancers. Master 1 powered off (clean and crashed), a master dropping packets
(half-open connections), two of three apiservers stopped, a fourth master added while a `kubectl
logs -f` streams through a node's balancer, master 1 removed, then a re-run of `up`. Each step
prints its figures; the module takes about 25 minutes."""

from __future__ import annotations

import calendar
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from kubesmith import balancer, inventory, settings
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.lab import hosts as lab
from tests.lab.conftest import TEST_BRIDGE, TEST_SUBNET
from tests.lab.test_ha import READER, longest_failure

pytestmark = [pytest.mark.lab, pytest.mark.ha_drill]

NODES = ("lab-4", "lab-5")
GAP_LIMIT = 10.0  # seconds of failed reads in a row through a node's balancer
READY_FOR = 180.0  # seconds every node must stay Ready after master 1 is gone
NODE_UNITS = ("apiserver-lb", "kubelet", "kube-proxy", "flanneld", "containerd")
MASTER_UNITS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
# The lab's hosts as inventory groups: masters and nodes named, etcd the first three.
INVENTORY = """from pathlib import Path
from kubesmith.lab.inventory import groups
from kubesmith.lab.state import LabPaths

_hosts = dict(h for group in groups(LabPaths(Path({root!r}))).values() for h in group)
etcd = [(n, _hosts[n]) for n in {etcd!r}]
masters = [(n, _hosts[n]) for n in {masters!r}]
nodes = [(n, _hosts[n]) for n in {nodes!r}]
"""
TICKER = """apiVersion: v1
kind: Pod
metadata: {{name: ticker}}
spec:
  nodeName: lab-5
  containers:
  - name: ticker
    image: kubesmith.local/busybox:{busybox}
    imagePullPolicy: Never
    command: ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"]
"""
DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: drill}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: drill}}}}
  template:
    metadata: {{labels: {{app: drill}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: sleep
        image: kubesmith.local/busybox:{busybox}
        imagePullPolicy: Never
        command: ["sleep", "100000"]
"""


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    deployed = cluster_factory(5, etcd=3, masters=3)
    deployed.apply(DEPLOYMENT.format(busybox=settings.versions()["busybox_version"]))
    deployed.kubectl("rollout", "status", "deployment/drill", "--timeout=120s")
    return deployed


def _inventory(cluster, path: Path, masters: tuple[str, ...], etcd: tuple[str, ...] = (
        "lab-1", "lab-2", "lab-3")) -> DeployContext:
    """Write an inventory of the lab with these masters (nodes: lab-4, lab-5); its context."""
    path.write_text(INVENTORY.format(root=str(cluster.lab.paths.root), etcd=etcd,
                                     masters=masters, nodes=NODES))
    groups = inventory.load_groups(path)
    data = settings.group_data()
    return DeployContext(inventory.to_cluster(groups, data), data, cluster.state, groups)


@pytest.fixture(scope="module")
def ctx(cluster, tmp_path_factory) -> DeployContext:
    return _inventory(cluster, tmp_path_factory.mktemp("inv") / "three.py",
                      ("lab-1", "lab-2", "lab-3"))


def _address(ctx: DeployContext, name: str) -> str:
    return ctx.cluster.host(name).address


def _api(cluster, ctx: DeployContext, master: str, *args: str, check: bool = True) -> str:
    """kubectl as the operator against one master's apiserver."""
    return cluster.kubectl(f"--server=https://{_address(ctx, master)}:6443",
                           "--request-timeout=10s", *args, check=check)


def _stats(cluster, node: str) -> str:
    return cluster.ssh(node, balancer.STATS_COMMAND).stdout


def _pids(cluster) -> dict[str, str]:
    """Each node's balancer master PID (unchanged means reloaded, never restarted)."""
    return {n: cluster.ssh(n, "systemctl show -p MainPID --value apiserver-lb").stdout.strip()
            for n in NODES}


def _started(cluster, ctx: DeployContext, hosts) -> dict[str, dict[str, str]]:
    """Each unit's last start time on these hosts (masters' and nodes' units)."""
    return {h: cluster.started(h, MASTER_UNITS if ctx.cluster.host(h).has("masters")
                               else NODE_UNITS) for h in hosts}


def _wait_backends(cluster, wanted: dict[str, str], seconds: float = 240) -> float:
    """Wait until every node's balancer shows these backend states; how long it took."""
    start = time.monotonic()
    for node in NODES:
        while balancer.servers(_stats(cluster, node)) != wanted:
            assert time.monotonic() - start < seconds, f"{node}: {_stats(cluster, node)}"
            time.sleep(1)
    return time.monotonic() - start


class Readers:
    """The reader script on every node for `seconds`, through the node's own balancer."""

    def __init__(self, cluster, seconds: int) -> None:
        command = f"sh -c {shlex.quote(READER)} reader {seconds}"
        self.procs = {n: subprocess.Popen([*cluster.lab.ssh_args(n), command],
                                          stdout=subprocess.PIPE, text=True) for n in NODES}

    def results(self, since: float) -> dict[str, tuple[int, int, float]]:
        """Per node: reads after `since` (epoch), failed ones, longest failure run (s)."""
        out = {}
        for node, proc in self.procs.items():
            text, _ = proc.communicate(timeout=600)
            lines = [ln for ln in text.splitlines() if ln.endswith((" ok", " fail"))
                     and float(ln.split()[0]) >= since - 5]
            after = [ln for ln in lines if float(ln.split()[0]) >= since]
            failed = [float(ln.split()[0]) - since for ln in lines if ln.endswith("fail")]
            if failed:
                print(f"{node}: failed reads at " + ", ".join(f"{t:+.1f}" for t in failed)
                      + f" s (last read {float(lines[-1].split()[0]) - since:+.1f} s)")
            # A run still failing at the readers' end (25 s or more after every event here)
            # counts up to that end.
            gap = longest_failure([*lines, f"{float(lines[-1].split()[0]) + 0.5} ok"])
            out[node] = (len(after), len(failed), gap)
        return out


def _assert_reads(results: dict[str, tuple[int, int, float]], what: str) -> None:
    for node, (reads, failed, gap) in results.items():
        print(f"{what}: {node}: {reads} reads after it, {failed} failed, "
              f"longest failure {gap:.1f} s")
        assert reads > 20, f"{node}: only {reads} reads"
        assert gap <= GAP_LIMIT, f"{node}: reads failed for {gap:.1f} s in a row ({what})"


def _holders(cluster, ctx: DeployContext, master: str) -> dict[str, str]:
    """The controller-manager's and scheduler's leader (host name) from their Leases."""
    out = _api(cluster, ctx, master, "-n", "kube-system", "get", "lease",
               "kube-controller-manager", "kube-scheduler", "-o",
               "jsonpath={range .items[*]}{.metadata.name} {.spec.holderIdentity}{'\\n'}{end}",
               check=False)
    return {ln.split()[0]: ln.split()[1].split("_")[0] for ln in out.splitlines()
            if len(ln.split()) == 2}


def _marked_down(cluster, node: str, master: str, since: float) -> float:
    """Seconds from `since` (epoch) to the node balancer's log of `master` marked down."""
    out = cluster.ssh(node, "journalctl -u apiserver-lb -o short-unix --no-pager "
                            f"| grep 'apiservers/{master} is DOWN' | tail -1").stdout.split()
    return float(out[0]) - since if out and float(out[0]) >= since else float("nan")


def _lead_from(cluster, ctx: DeployContext, master: str) -> None:
    """Make `master` the controller-manager's and scheduler's leader, so that powering it off
    shows a failover: the others' stop until it holds both Leases, then start again."""
    units = "kube-controller-manager kube-scheduler"
    others = [m for m in ("lab-1", "lab-2", "lab-3") if m != master]
    for other in others:
        cluster.ssh(other, f"systemctl stop {units}")
    try:
        deadline = time.monotonic() + 120
        while set(_holders(cluster, ctx, master).values()) != {master}:
            assert time.monotonic() < deadline, _holders(cluster, ctx, master)
            time.sleep(2)
    finally:
        for other in others:
            cluster.ssh(other, f"systemctl start {units}")


@pytest.mark.parametrize("kill", [False, True], ids=["lab-stop", "crash"])
def test_master_one_powered_off(cluster, ctx, kill: bool) -> None:
    """Reads through both nodes' balancers keep working, nodes stay Ready for 3 minutes, a scale
    from 2 to 4 gets its pods Running; master 1 back: it rejoins, nothing restarts elsewhere."""
    assert _wait_backends(cluster, dict.fromkeys(("lab-1", "lab-2", "lab-3"), "UP")) < 240
    pids = _pids(cluster)
    _lead_from(cluster, ctx, "lab-1")
    leaders = _holders(cluster, ctx, "lab-2")
    readers = Readers(cluster, int(READY_FOR) + 40)
    time.sleep(8)
    stopped = time.time()
    lab.stop("lab-1", kill=kill, paths=cluster.lab.paths, log=lambda _m: None)
    try:
        _while_master_one_is_off(cluster, ctx, kill, readers, stopped, leaders)
    except BaseException:
        lab.start("lab-1", paths=cluster.lab.paths, log=lambda _m: None)  # for the next tests
        raise
    before = _started(cluster, ctx, ("lab-2", "lab-3", *NODES))
    lab.start("lab-1", paths=cluster.lab.paths, log=lambda _m: None)
    back = _wait_backends(cluster, dict.fromkeys(("lab-1", "lab-2", "lab-3"), "UP"))
    print(f"{'crash' if kill else 'lab stop'}: lab-1 back in every balancer {back:.0f} s after "
          "`lab start` returned")
    assert _started(cluster, ctx, ("lab-2", "lab-3", *NODES)) == before
    assert _pids(cluster) == pids
    _api(cluster, ctx, "lab-2", "scale", "deployment/drill", "--replicas=2")


def _while_master_one_is_off(cluster, ctx: DeployContext, kill: bool, readers: Readers,
                             stopped: float, leaders: dict[str, str]) -> None:
    """Leader failover, the scale to 4, nodes Ready for READY_FOR, reads, backends."""
    took_over: dict[str, float] = {}
    scaled = None
    while time.time() - stopped < READY_FOR:
        now = _holders(cluster, ctx, "lab-2")
        for lease, holder in now.items():
            if lease not in took_over and holder != "lab-1":
                took_over[lease] = time.time() - stopped
        if scaled is None:
            _api(cluster, ctx, "lab-2", "scale", "deployment/drill", "--replicas=4")
            scaled = time.time()
        running = _api(cluster, ctx, "lab-3", "get", "pods", "-l", "app=drill", "-o",
                       "jsonpath={.items[?(@.status.phase==\"Running\")].metadata.name}").split()
        if len(running) == 4 and "four" not in took_over:
            took_over["four"] = time.time() - stopped
        ready = _api(cluster, ctx, "lab-3", "get", "nodes", *NODES, "-o",
                     "jsonpath={.items[*].status.conditions[?(@.type==\"Ready\")].status}")
        assert ready.split() == ["True", "True"], f"nodes Ready: {ready}"
        time.sleep(2)
    how = "crash (--kill)" if kill else "lab stop"
    down = {n: _marked_down(cluster, n, "lab-1", stopped) for n in NODES}
    print(f"{how}: leaders before {leaders}; lab-1 marked down after "
          + ", ".join(f"{n} {s:.1f} s" for n, s in down.items())
          + "; after the stop: " + ", ".join(f"{k} {v:.1f} s" for k, v in took_over.items()))
    _assert_reads(readers.results(stopped), how)
    assert "four" in took_over, "the Deployment scaled to 4 has not 4 pods Running"
    assert {"kube-controller-manager", "kube-scheduler"} <= set(took_over), leaders
    for node in NODES:
        assert balancer.servers(_stats(cluster, node)) == {
            "lab-1": "DOWN", "lab-2": "UP", "lab-3": "UP"}


def _connections_from_nodes(cluster, ctx: DeployContext, master: str) -> int:
    """Established connections from the nodes to this master's apiserver port."""
    out = cluster.ssh(master, "ss -Htn state established '( sport = :6443 )'").stdout
    nodes = {_address(ctx, n) for n in NODES}
    peers = (ln.split()[-1].rsplit(":", 1)[0].strip("[]") for ln in out.splitlines())
    return sum(1 for peer in peers if peer.removeprefix("::ffff:") in nodes)


def _lease_renewals(cluster, ctx: DeployContext, via: str, since: float, seconds: float
                    ) -> dict[str, float]:
    """Per node: the longest time its kubelet went without renewing its Lease, from `since`
    (epoch) over the next `seconds` (kubelet renews every 10 s)."""
    renewals: dict[str, set[float]] = {n: set() for n in NODES}
    while time.time() - since < seconds:
        for node in NODES:
            renewed = _api(cluster, ctx, via, "-n", "kube-node-lease", "get", "lease", node,
                           "-o", "jsonpath={.spec.renewTime}", check=False).strip()
            if renewed:
                at = calendar.timegm(time.strptime(renewed[:19], "%Y-%m-%dT%H:%M:%S"))
                renewals[node].add(at + float("0." + (renewed[20:26] or "0")))
        time.sleep(1)
    longest = {}
    for node, times in renewals.items():
        points = [since, *sorted(t for t in times if t > since), time.time()]
        longest[node] = max(b - a for a, b in zip(points, points[1:], strict=False))
    return longest


def test_master_dropping_packets(cluster, ctx) -> None:
    """A master that drops its apiserver traffic (half-open connections, kubernetes #48638): it
    is marked down and its sessions closed, kubelets renew their Leases through another one."""
    _wait_backends(cluster, dict.fromkeys(("lab-1", "lab-2", "lab-3"), "UP"))
    counts = {m: _connections_from_nodes(cluster, ctx, m) for m in ("lab-1", "lab-2", "lab-3")}
    victim = max(counts, key=lambda m: counts[m])
    via = next(m for m in ("lab-2", "lab-3", "lab-1") if m != victim)
    rule = "INPUT -p tcp --dport 6443 ! -i lo -j DROP"
    readers = Readers(cluster, 70)
    time.sleep(8)
    dropped = time.time()
    assert cluster.ssh(victim, f"iptables -I {rule}").returncode == 0
    try:
        renewed = _lease_renewals(cluster, ctx, via, dropped, 60)
        down = {n: _marked_down(cluster, n, victim, dropped) for n in NODES}
        results = readers.results(dropped)
    finally:
        cluster.ssh(victim, f"iptables -D {rule}")
    print(f"half-open: {victim} had {counts[victim]} connections from the nodes "
          f"({counts}); marked down after "
          + ", ".join(f"{n} {s:.1f} s" for n, s in down.items())
          + "; longest time without a kubelet Lease renewal: "
          + ", ".join(f"{n} {s:.1f} s" for n, s in renewed.items()))
    _assert_reads(results, f"half-open {victim}")
    assert all(s <= 10 for s in down.values()), down
    # The node lifecycle controller marks a node NotReady after 40 s or more without one.
    assert all(s <= 25 for s in renewed.values()), renewed
    _wait_backends(cluster, dict.fromkeys(("lab-1", "lab-2", "lab-3"), "UP"))


def test_two_of_three_apiservers_stopped(cluster, ctx) -> None:
    """With lab-1's and lab-2's apiservers stopped, clients work through lab-3's."""
    readers = Readers(cluster, 50)
    time.sleep(8)
    stopped = time.time()
    for master in ("lab-1", "lab-2"):
        cluster.ssh(master, "systemctl stop kube-apiserver")
    try:
        time.sleep(15)
        nodes = kubectl(ctx, "get", "nodes", "-o", "name")  # kubesmith's own, failing over
        assert nodes.returncode == 0 and "node/lab-4" in nodes.stdout, nodes.stderr
        for node in NODES:
            assert balancer.servers(_stats(cluster, node)) == {
                "lab-1": "DOWN", "lab-2": "DOWN", "lab-3": "UP"}
        _assert_reads(readers.results(stopped), "two apiservers stopped")
    finally:
        for master in ("lab-1", "lab-2"):
            cluster.ssh(master, "systemctl start kube-apiserver")
    _wait_backends(cluster, dict.fromkeys(("lab-1", "lab-2", "lab-3"), "UP"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_streams(cluster, ctx: DeployContext, master: str) -> float:
    """Long-running pods/log requests (kubectl logs -f) being served by this master now."""
    total = 0.0
    for line in _api(cluster, ctx, master, "get", "--raw", "/metrics").splitlines():
        if (line.startswith("apiserver_longrunning_requests{") and 'resource="pods"' in line
                and 'subresource="log"' in line):
            total += float(line.split()[-1])
    return total


class Stream(threading.Thread):
    """`kubectl logs -f ticker` through a node's balancer (an ssh tunnel to its 127.0.0.1:6444);
    records when each line arrived."""

    def __init__(self, cluster, node: str) -> None:
        super().__init__(daemon=True)
        port = _free_port()
        self.tunnel = subprocess.Popen([*cluster.lab.ssh_args(node), "-N", "-L",
                                        f"127.0.0.1:{port}:127.0.0.1:6444"])
        time.sleep(2)
        self.proc = subprocess.Popen(
            [str(cluster.kubectl_binary()), f"--kubeconfig={cluster.state / 'admin.kubeconfig'}",
             f"--server=https://127.0.0.1:{port}", "logs", "-f", "ticker"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        self.start()

    def run(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.strip()))

    def close(self) -> None:
        self.proc.terminate()
        self.tunnel.terminate()
        self.proc.wait(10)
        self.tunnel.wait(10)


def test_add_master_keeps_a_log_stream_then_remove_master_one(cluster, ctx, tmp_path) -> None:
    """add-master lab-6 reloads every node's balancer (PID kept) while a `kubectl logs -f`
    served by lab-2 through lab-4's balancer keeps streaming; remove-node lab-1 leaves every
    balancer with the inventory's masters; a re-run of `up` changes and restarts nothing."""
    cluster.apply(TICKER.format(busybox=settings.versions()["busybox_version"]))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/ticker", "--timeout=120s")
    lab.up(6, TEST_SUBNET, cluster.lab.paths, log=lambda _m: None, bridge=TEST_BRIDGE)
    four = tmp_path / "four.py"
    _inventory(cluster, four, ("lab-1", "lab-2", "lab-3", "lab-6"))
    pids = _pids(cluster)
    stream = None
    for _ in range(12):  # round robin: start streams until one is served by lab-2
        time.sleep(2)
        served = _log_streams(cluster, ctx, "lab-2")
        stream = Stream(cluster, "lab-4")
        time.sleep(4)
        if stream.lines and _log_streams(cluster, ctx, "lab-2") > served:
            break
        stream.close()
        stream = None
    assert stream is not None, "no `kubectl logs -f` through lab-4's balancer landed on lab-2"
    try:
        added_at = time.time()
        added = cluster.deploy("add-master", "lab-6", "-i", str(four))
        done = time.time()
        assert added.returncode == 0, added.stdout[-3000:] + added.stderr[-3000:]
        time.sleep(5)
        reloads = {n: cluster.ssh(n, "journalctl -u apiserver-lb -o short-unix --no-pager "
                                     "| grep -c 'Reloading\\|Reloaded'").stdout.strip()
                   for n in NODES}
        during = [t for t, _ in stream.lines if added_at <= t]
        longest = max((b - a for a, b in zip(during, during[1:], strict=False)),
                      default=float("inf"))
        print(f"add-master lab-6 in {done - added_at:.0f} s; the logs -f stream (served by "
              f"lab-2) got {len(during)} lines during and after it, longest pause "
              f"{longest:.1f} s, last line {stream.lines[-1][1]!r}; reload log lines {reloads}")
        assert stream.proc.poll() is None, f"the stream ended: {stream.lines[-3:]}"
        assert [t for t in during if t > done + 2], "no line after add-master finished"
        assert longest < 5, f"the stream paused {longest:.1f} s"
        assert _log_streams(cluster, ctx, "lab-2") > 0
    finally:
        stream.close()
    four_up = dict.fromkeys(("lab-1", "lab-2", "lab-3", "lab-6"), "UP")
    _wait_backends(cluster, four_up, 120)
    assert _pids(cluster) == pids, "a balancer was restarted, not reloaded"

    removed = cluster.deploy("remove-node", "lab-1", "--yes", "-i", str(four))
    assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-3000:]
    three = tmp_path / "three.py"
    after = _inventory(cluster, three, ("lab-2", "lab-3", "lab-6"), etcd=("lab-2", "lab-3"))
    for node in NODES:
        stats = _stats(cluster, node)
        print(f"{node} backends after remove-node lab-1: {balancer.servers(stats)}")
        assert balancer.problem(stats, after.cluster) is None, stats
    assert _pids(cluster) == pids, "a balancer was restarted, not reloaded"

    hosts = ("lab-2", "lab-3", "lab-6", *NODES)
    before = _started(cluster, after, hosts)
    rerun = cluster.deploy("up", "-i", str(three))
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "0 operations changed" in rerun.stdout, rerun.stdout[-3000:]
    assert _started(cluster, after, hosts) == before
    verified = cluster.deploy("verify", "-i", str(three))
    assert verified.returncode == 0, verified.stdout[-3000:]
