"""testinfra verification of any kubesmith cluster: hosts and roles from the deploy's inventory.

Run through `python deploy.py verify [-i INVENTORY]`, which sets KUBESMITH_VERIFY_INVENTORY.
Hosts are reached with testinfra's ssh backend (OpenSSH, known_hosts enforced, connections reused).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import testinfra

from kubesmith import context, openssh, settings
from kubesmith import kubectl as control_kubectl
from kubesmith.binaries.images import image_ref
from kubesmith.context import DeployContext
from kubesmith.inventory import host_data
from kubesmith.model import Host

# Hosts under software emulation (QEMU without KVM) answer several times slower: every timeout of
# the checks (SSH connect, curl, kubectl wait) is multiplied by KUBESMITH_VERIFY_SLOWDOWN.
SLOWDOWN = float(os.environ.get("KUBESMITH_VERIFY_SLOWDOWN", "1"))


def timeout(seconds: float) -> int:
    """A check's timeout in whole seconds, scaled by KUBESMITH_VERIFY_SLOWDOWN."""
    return max(1, round(seconds * SLOWDOWN))


ROLE_FIXTURES = {"etcd_host": "etcd", "master_host": "masters", "node_host": "nodes",
                 "pod_host": "pod_hosts", "any_host": "hosts"}


def _inventory() -> Path:
    return Path(os.environ.get("KUBESMITH_VERIFY_INVENTORY",
                               settings.PROJECT / "inventories" / "lab.py"))


CTX = context.load(_inventory(), warn=lambda _warning: None)
_GROUPS = CTX.groups


def _ssh_config() -> Path:
    """An OpenSSH config for every inventory host, from its validated pyinfra ssh_* data (the
    inventory passed context.load's validation above; openssh.config refuses unsafe words)."""
    path = CTX.state / "verify_ssh_config"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(openssh.config(host_data(_GROUPS), timeout(5)))
    return path


SSH_CONFIG = _ssh_config()


# Remote commands run per host (this process; xdist workers report theirs to the controller).
COMMANDS: Counter[str] = Counter()


@functools.cache
def remote(name: str) -> testinfra.host.Host:
    """The testinfra host of that inventory name (root commands; sudo when the user is not),
    its commands counted in COMMANDS."""
    user = host_data(_GROUPS)[name].get("ssh_user", "root")
    # One multiplexed connection per host: `deploy.py verify` names a private directory for the
    # sockets and closes them at the end (testinfra %-formats the command: %%C is ssh's %C).
    control = os.environ.get("KUBESMITH_VERIFY_SSH_CONTROL")
    found = testinfra.get_host(f"ssh://{name}", ssh_config=str(SSH_CONFIG), sudo=user != "root",
                               controlpath=f"{control}/%%C" if control else None)
    run = found.backend.run

    def counted(command: str, *args: object, **kwargs: object):  # noqa: ANN202 (CommandResult)
        COMMANDS[name] += 1
        return run(command, *args, **kwargs)

    found.backend.run = counted
    return found


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its command counts to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["commands"] = dict(COMMANDS)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: object, error: object) -> None:
    """The controller adds up its workers' command counts."""
    COMMANDS.update(getattr(node, "workeroutput", {}).get("commands", {}))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize role fixtures over that role's hosts (test ids are host names)."""
    for fixture, role in ROLE_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            hosts: tuple[Host, ...] = getattr(CTX.cluster, role)
            metafunc.parametrize(fixture, hosts, ids=[h.name for h in hosts])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """One xdist group per host, so hosts are checked in parallel (pod probes share a group)."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        host = next((v.name for v in (callspec.params.values() if callspec else [])
                     if isinstance(v, Host)), "cluster")
        group = "pods" if "probes" in item.fixturenames else host
        item.add_marker(pytest.mark.xdist_group(group))


# One namespace per run: the previous run's may still be terminating.
PROBE_NAMESPACE = f"kubesmith-verify-{uuid.uuid4().hex[:8]}"
# A web server per node. No Service: one would make kube-proxy resync its rules during verify
# and hide a flushed KUBE-SERVICES chain from its check.
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


def _kubectl(*args: str, stdin: str | None = None,
             seconds: float = 90):  # noqa: ANN202 (CompletedProcess)
    return control_kubectl.kubectl(CTX, *args, stdin=stdin, timeout=timeout(seconds))


@pytest.fixture(scope="session")
def probes() -> Iterator[dict[str, str]]:
    """A short-lived pod per node: node name -> pod IP (removed afterwards). Checks that use it
    run in one xdist group, so it is made once."""
    image = image_ref("busybox", str(CTX.data["busybox_version"]))
    created = _kubectl("create", "namespace", PROBE_NAMESPACE)
    assert created.returncode == 0, created.stderr
    # Pods are refused until the controller-manager has made the namespace's default account; a
    # controller-manager restarted just before (a renewal) waits out its leader lease (60 s).
    _kubectl("-n", PROBE_NAMESPACE, "wait", "--for=create", "serviceaccount/default",
             f"--timeout={timeout(120)}s", seconds=150)
    manifests = [PROBE.format(node=n.name, ns=PROBE_NAMESPACE, image=image)
                 for n in CTX.cluster.nodes]
    applied = _kubectl("apply", "-f", "-", stdin="---\n".join(manifests))
    assert applied.returncode == 0, applied.stderr
    _kubectl("-n", PROBE_NAMESPACE, "wait", "--for=condition=Ready", "pod",
             "-l", "app=kubesmith-probe", f"--timeout={timeout(30)}s")
    out = _kubectl("-n", PROBE_NAMESPACE, "get", "pods", "-o",
                   "jsonpath={range .items[*]}{.spec.nodeName} {.status.podIP}{\"\\n\"}{end}")
    ips = dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)
    yield ips
    _kubectl("delete", "namespace", PROBE_NAMESPACE, "--wait=false")


@pytest.fixture
def ctx() -> DeployContext:
    """The cluster as the deploy sees it."""
    return CTX


_RESULTS: dict[str, dict[str, str]] = defaultdict(dict)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Collect one outcome per (host, check) for the summary table."""
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        name = report.nodeid.split("::")[-1]
        check, _, host = name.partition("[")
        outcome = "PASS" if report.passed else ("SKIP" if report.skipped else "FAIL")
        _RESULTS[host.rstrip("]") or "cluster"][check.removeprefix("test_")] = outcome


def pytest_terminal_summary(terminalreporter) -> None:  # noqa: ANN001 (pytest's reporter)
    """Print a per-host, per-check table, then the remote commands run per host."""
    write = terminalreporter.write_line
    write("")
    write(f"{'host':<10} {'check':<40} result")
    for host in sorted(_RESULTS):
        for check, outcome in _RESULTS[host].items():
            write(f"{host:<10} {check:<40} {outcome}")
    if COMMANDS:
        write("remote commands: " + ", ".join(f"{name} {count}"
                                              for name, count in sorted(COMMANDS.items())))
