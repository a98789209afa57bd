"""Lab fixtures: boot real systemd-nspawn hosts for a test module, tear them down after."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from kubesmith import encryption, settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.lab import hosts as lab
from kubesmith.lab.state import LabPaths, LabState

# Overridable so two lab test runs (e.g. two work trees) can share the machine; under
# pytest-xdist each worker (gw0, gw1, ...) gets its own bridge and subnet.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
TEST_SUBNET = os.environ.get("KUBESMITH_TEST_SUBNET", f"10.241.{_WORKER}.0/24")
TEST_BRIDGE = os.environ.get("KUBESMITH_TEST_BRIDGE", f"kstest{_WORKER}")


# Seconds each lab module took (setup, tests, teardown) in a CI run at fe99c92: two workers,
# warm cache. Modules start longest first so both workers finish together; xdist's default
# order (most tests first) started the 272-s test_upgrade last, ~170 s of one worker idle.
MODULE_SECONDS = {
    "test_upgrade.py": 272, "test_etcd_cluster.py": 263, "test_ha.py": 256,
    "test_cluster.py": 238, "test_addons.py": 237, "test_etcd_grow.py": 220,
    "test_certs.py": 182, "test_encryption.py": 177, "test_day2.py": 175, "test_backup.py": 170,
    "test_inventory_settings.py": 141, "test_faults.py": 104, "test_lab_hosts.py": 45,
    "test_host_keys.py": 12,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Lab modules longest first (an unlisted one as a middling one), then the unit tests,
    which fill the end; each module's tests stay together and in order (a stable sort). Needs
    `--no-loadscope-reorder` (scripts/test.sh), which keeps this order."""
    def cost(item: pytest.Item) -> float:
        path = item.path
        return -MODULE_SECONDS.get(path.name, 150) if path.parent.name == "lab" else 0

    items.sort(key=cost)


def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (systemd-nspawn, bridges, mounts)"
    for tool in ("systemd-nspawn", "debootstrap", "ssh"):
        if shutil.which(tool) is None:
            return f"lab tests need {tool} (apt-get install systemd-container debootstrap)"
    return None


def missing_binaries(names: Iterable[str] | None = None) -> list[str]:
    """Components (default: those `up` installs) not complete in the cache at pinned versions."""
    versions = settings.versions()
    root = cache.default_root()
    wanted = names or [n for n, c in COMPONENTS.items() if c.deployed]
    return [
        name for name, c in COMPONENTS.items()
        if name in wanted and not cache.is_complete(
            cache.component_dir(root, name, versions[c.version_key], cache.host_arch()), c.files)
    ]


class Lab:
    """A booted lab: its paths, state and an ssh helper."""

    def __init__(self, paths: LabPaths, state: LabState) -> None:
        self.paths, self.state = paths, state

    def ssh_args(self, host: str) -> list[str]:
        """argv prefix for running a command on a host with strict host key checking."""
        return ["ssh", "-F", str(self.paths.ssh_config), host]


@pytest.fixture(scope="module")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Boot `count` hosts once per module (in a private lab dir, bridge and subnet)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    paths = LabPaths(Path(tmp_path_factory.mktemp("lab")))
    booted: list[Lab] = []

    def boot(count: int) -> Lab:
        state = lab.up(count, TEST_SUBNET, paths, log=lambda _msg: None, bridge=TEST_BRIDGE)
        booted.append(Lab(paths, state))
        return booted[-1]

    yield boot
    lab.down(paths, log=lambda _msg: None)


PROJECT = Path(__file__).resolve().parents[2]
READER_STOP = "/run/kubesmith-test-reader.stop"
# A pod pinned to a node, answering its name over HTTP on 8080 (pod-to-pod checks).
WEB_POD = """apiVersion: v1
kind: Pod
metadata:
  name: web-{node}
  labels: {{app: web-{node}}}
spec:
  nodeName: {node}
  containers:
  - name: web
    image: kubesmith.local/busybox:{busybox}
    imagePullPolicy: Never
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-{node} > /www/index.html &&
              exec httpd -f -p 8080 -h /www"]
"""
# On a node, one read of its own Node object with its kubelet credential through the node's
# apiserver balancer (127.0.0.1:6444), as the kubelet makes it (nodes have no kubectl).
NODE_READ = ("timeout 4 curl -sf --max-time 3 -o /dev/null --cacert /etc/kubernetes/pki/"
             "kubernetes-ca.crt --cert /etc/kubernetes/pki/kubelet-$(hostname).crt --key "
             "/etc/kubernetes/pki/kubelet-$(hostname).key "
             "https://127.0.0.1:6444/api/v1/nodes/$(hostname)")
# NODE_READ twice a second, until READER_STOP exists: "<epoch> ok|fail" lines.
NODE_READER = (
    f"rm -f {READER_STOP}; while [ ! -e {READER_STOP} ]; do t=$(date +%s.%N); "
    f'if {NODE_READ}; then echo "$t ok"; else echo "$t fail"; fi; sleep 0.5; done'
)


def longest_failure(lines: list[str]) -> float:
    """The longest run of failed reads: from the first failure to the next success."""
    longest, since = 0.0, None
    for line in lines:
        at, outcome = float(line.split()[0]), line.split()[1]
        if outcome == "fail" and since is None:
            since = at
        elif outcome == "ok" and since is not None:
            longest, since = max(longest, at - since), None
    return float("inf") if since is not None else longest


class NodeReader:
    """NODE_READER running on a lab node while a command runs; stop() returns its lines."""

    def __init__(self, lab_: Lab, node: str) -> None:
        self.lab, self.node = lab_, node
        self.process = subprocess.Popen([*lab_.ssh_args(node), NODE_READER],
                                        stdout=subprocess.PIPE, text=True)

    def stop(self) -> list[str]:
        """Let the reader finish its last read; its "<epoch> ok|fail" lines."""
        subprocess.run([*self.lab.ssh_args(self.node), f"touch {READER_STOP}"], check=False,
                       timeout=60)
        out, _ = self.process.communicate(timeout=60)
        return [line for line in out.splitlines() if line.endswith((" ok", " fail"))]


def deploy_while_reading(cluster: Deployed, node: str,
                         *args: str) -> tuple[subprocess.CompletedProcess, list[str], float]:
    """`deploy.py ARGS` while NodeReader reads on node: its result, the reader's lines and the
    wall time; the command must succeed."""
    reader = NodeReader(cluster.lab, node)
    started = time.monotonic()
    try:
        result = cluster.deploy(*args)
    finally:
        lines = reader.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    return result, lines, time.monotonic() - started


def assert_no_key_material(output: str, state: Path) -> None:
    """A command printed no private key and no encryption-at-rest secret (retired ones too)."""
    assert "PRIVATE KEY" not in output
    ring = encryption.load(state / "pki") if (state / "pki").exists() else None
    for key in ring.keys if ring else ():
        assert key.secret not in output, f"encryption key {key.name} printed"


class Deployed:
    """A lab with a cluster deployed by `deploy.py up`, and helpers to look at it."""

    def __init__(self, lab: Lab, state: Path, env: dict[str, str], first_up: str) -> None:
        self.lab, self.state, self.env, self.first_up = lab, state, env, first_up
        # Bytes this machine (the control machine) sent to the lab's hosts during the first up.
        self.first_up_sent = 0

    def deploy(self, *args: str) -> subprocess.CompletedProcess:
        """Run `python deploy.py ARGS` against this lab, as a user would; whatever it prints
        holds no key material."""
        result = subprocess.run([sys.executable, str(PROJECT / "deploy.py"), *args],
                                capture_output=True, text=True, env=self.env, cwd=PROJECT,
                                timeout=900, check=False)
        assert_no_key_material(result.stdout + result.stderr, self.state)
        return result

    def kubectl(self, *args: str, check: bool = True) -> str:
        """The cached kubectl with the operator's admin kubeconfig written by the deploy."""
        kubeconfig = f"--kubeconfig={self.state / 'admin.kubeconfig'}"
        result = subprocess.run([str(self.kubectl_binary()), kubeconfig, *args],
                                capture_output=True, text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout + (result.stderr if not check else "")

    def apply(self, manifest: str) -> None:
        """kubectl apply a manifest given as text."""
        kubeconfig = f"--kubeconfig={self.state / 'admin.kubeconfig'}"
        subprocess.run([str(self.kubectl_binary()), kubeconfig, "apply", "-f", "-"],
                       input=manifest, text=True, check=True, capture_output=True)

    @staticmethod
    def kubectl_binary() -> Path:
        """The cached kubectl of the pinned version."""
        versions = settings.versions()
        return cache.component_dir(cache.default_root(), "kubernetes",
                                   versions["kubernetes_version"], cache.host_arch()) / "kubectl"

    def started(self, host: str, units: tuple[str, ...]) -> dict[str, str]:
        """Each unit's last start time (monotonic) on a host: unchanged means not restarted."""
        return self._unit_property(host, units, "ActiveEnterTimestampMonotonic")

    def restarts(self, host: str, units: tuple[str, ...]) -> dict[str, str]:
        """How often systemd itself restarted each unit on a host (Restart=, not a command)."""
        return self._unit_property(host, units, "NRestarts")

    def _unit_property(self, host: str, units: tuple[str, ...], name: str) -> dict[str, str]:
        """One `systemctl show` property of each unit on a host."""
        out = self.ssh(host, "; ".join(
            f"echo {u} $(systemctl show -p {name} --value {u})" for u in units)).stdout
        return dict(line.split() for line in out.splitlines() if len(line.split()) == 2)

    def ssh(self, host: str, command: str) -> subprocess.CompletedProcess:
        """Run a command on a lab host."""
        return subprocess.run([*self.lab.ssh_args(host), command], capture_output=True,
                              text=True, timeout=120, check=False)

    def ssh_ok(self, host: str, command: str) -> str:
        """Run a command on a lab host; its stdout. Fails the test unless the command exits 0
        (ssh's own failure is 255): output read for what is absent must come from the host.
        Write a search finding nothing (grep, pgrep, test) so that it still exits 0."""
        result = self.ssh(host, command)
        assert result.returncode == 0, \
            f"{host}: {command}: exit {result.returncode}: {result.stdout}{result.stderr}"
        return result.stdout


@pytest.fixture(scope="module")
def cluster_factory(lab_factory, tmp_path_factory: pytest.TempPathFactory):
    """Boot `count` hosts and bootstrap a cluster on them with `etcd` members."""
    missing = missing_binaries()
    if missing:
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")

    def make(count: int, etcd: int = 1, via_pyinfra_cli: bool = False,
             masters: int = 1) -> Deployed:
        lab_ = lab_factory(count)
        state = Path(tmp_path_factory.mktemp("state"))
        env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root),
                   KUBESMITH_STATE=str(state), KUBESMITH_LAB_ETCD=str(etcd),
                   KUBESMITH_LAB_MASTERS=str(masters))
        deployed = Deployed(lab_, state, env, "")
        sent = Path(f"/sys/class/net/{lab_.state.bridge}/statistics/tx_bytes")
        before = int(sent.read_text())
        if via_pyinfra_cli:
            # --diff prints what files.put uploads: keys must not go that way.
            first = subprocess.run(
                [str(Path(sys.executable).parent / "pyinfra"), "-y", "--diff",
                 "inventories/lab.py", "deploy.py"], capture_output=True, text=True, env=env,
                cwd=PROJECT, timeout=900, check=False)
        else:
            first = deployed.deploy("up")
        assert first.returncode == 0, f"bootstrap failed:\n{first.stdout}\n{first.stderr}"
        deployed.first_up_sent = int(sent.read_text()) - before
        deployed.first_up = first.stdout + first.stderr
        assert_no_key_material(deployed.first_up, state)
        return deployed

    return make
