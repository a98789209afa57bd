"""The HA endpoint: the node balancer's backends, the external endpoint setting and its SANs,
kubesmith's own kubectl failover order, and `deploy.py kubeconfig`."""

from __future__ import annotations

import stat
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kubesmith import balancer, certificates, context, kubectl, rules, settings
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.validate import check
from tasks import _ops, pki, preflight
from tasks import balancer as balancer_task

M1 = Host("m1", "10.0.0.1", frozenset({"etcd", "masters"}))
M2 = Host("m2", "10.0.0.2", frozenset({"masters"}))
N = Host("n1", "10.0.0.3", frozenset({"nodes"}))
CLUSTER = Cluster((M1, M2, N))
# The columns haproxy 2.6's `show stat` CSV starts with, up to status (the 18th).
HEADER = ("# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,"
          "wretr,wredis,status,weight\n")


def _row(proxy: str, server: str, status: str) -> str:
    return f"{proxy},{server},{',' * 15}{status},1\n"


def _stats(*servers: tuple[str, str]) -> str:
    rows = "".join(_row("apiservers", name, status) for name, status in servers)
    return (HEADER + _row("apiserver", "FRONTEND", "OPEN") + rows
            + _row("apiservers", "BACKEND", "UP") + _row("stats", "FRONTEND", "OPEN"))


def test_backends_must_be_exactly_the_masters_each_up() -> None:
    assert balancer.servers(_stats(("m1", "UP"), ("m2", "DOWN"))) == {"m1": "UP", "m2": "DOWN"}
    assert balancer.problem(_stats(("m1", "UP"), ("m2", "UP")), CLUSTER) is None
    assert "not up" in str(balancer.problem(_stats(("m1", "UP"), ("m2", "DOWN 1/2")), CLUSTER))
    assert "not the masters" in str(balancer.problem(_stats(("m1", "UP")), CLUSTER))
    assert "not the masters" in str(balancer.problem("", CLUSTER))


def test_a_backend_not_up_is_named_with_its_last_check() -> None:
    # Some of haproxy 2.6's CSV columns (read by name), with values a lab balancer gave.
    columns = ["pxname", "svname", "status", "check_status", "last_chk", "check_desc"]

    def row(*values: str) -> str:
        return ",".join(["apiservers", *values]) + "\n"
    stats = ("# " + ",".join(columns) + "\n"
             + row("m1", "UP", "L7OK", "", "Layer7 check passed")
             + row("m2", "DOWN", "L4CON", "Connection refused", "Layer4 connection problem"))
    assert balancer.problem(stats, CLUSTER) == (
        "backends not up: m2 DOWN (last check L4CON: Connection refused)")
    stats = stats.replace("Connection refused", "")
    assert balancer.problem(stats, CLUSTER) == (
        "backends not up: m2 DOWN (last check L4CON: Layer4 connection problem)")


def test_config_has_every_master_checked_over_tls_with_a_client_cert() -> None:
    ctx = DeployContext(CLUSTER, settings.group_data(), Path("/nonexistent"))
    text = _ops.render("apiserver-lb/haproxy.cfg.j2", **balancer_task.values(ctx, N))
    assert "bind 127.0.0.1:6444\n" in text
    assert "server m1 10.0.0.1:6443 verifyhost m1\n" in text
    assert "server m2 10.0.0.2:6443 verifyhost m2\n" in text
    assert "crt /etc/kubernetes/pki/apiserver-lb-healthcheck.crt" in text
    assert "on-marked-down shutdown-sessions" in text and "uri /readyz" in text


def test_node_kubeconfigs_use_the_local_balancer() -> None:
    kubelet = next(c for c in certificates.of_host(CLUSTER, N) if c.name == "kubelet-n1")
    assert kubelet.kubeconfig is not None and not kubelet.kubeconfig.local_apiserver
    assert CLUSTER.balancer_url == "https://127.0.0.1:6444"


def test_health_check_credential_is_groupless_and_on_nodes_only() -> None:
    found = next(c for c in certificates.table(CLUSTER) if c.name == "apiserver-lb-healthcheck")
    assert found.hosts == (N,) and found.readers == ("apiserver-lb",)
    assert found.spec is not None and found.spec.organizations == () and found.spec.client


@pytest.mark.parametrize(("value", "why"), [
    ("", None), ("https://10.0.0.100:6443", None), ("https://api.example.com", None),
    ("http://10.0.0.100", "not an https URL"), ("https://10.0.0.100:99999", "port"),
    ("https://api example", "character ' '"), ("https://a:6443\n--x", "port"),
    ("https://a/b", "character '/'"),
])
def test_apiserver_endpoint_rule(value: str, why: str | None) -> None:
    found = rules.apiserver_endpoint(value)
    assert (found is None) if why is None else (why in str(found)), found


def test_bad_apiserver_endpoint_is_an_error_line() -> None:
    groups = {"etcd": [("m1", {"address": "10.0.0.1"})], "masters": [("m1", {})],
              "nodes": [("n1", {"address": "10.0.0.3"})]}
    data = {**settings.group_data(), "apiserver_endpoint": "https://vip;rm"}
    problems = [str(p) for p in check(groups, data)]
    assert any(p.startswith("error: apiserver_endpoint: 'https://vip;rm'") for p in problems)


@pytest.mark.parametrize(("endpoint", "dns", "ip"), [
    ("https://10.0.0.100:6443", None, "10.0.0.100"), ("https://api.example.com", "api.example.com",
                                                      None)])
def test_endpoint_joins_the_apiserver_sans(endpoint: str, dns: str | None, ip: str | None) -> None:
    cluster = replace(CLUSTER, apiserver_endpoint=endpoint)
    spec = next(s for s in certificates.cert_specs(cluster) if s.name == "kube-apiserver-m1")
    assert (dns in spec.dns_names) if dns else (ip in spec.ip_addresses)
    assert cluster.apiserver_url == endpoint
    assert cluster.apiserver_urls == (endpoint, "https://10.0.0.1:6443", "https://10.0.0.2:6443")


def test_kubectl_tries_the_last_live_master_first(tmp_path: Path, monkeypatch) -> None:
    ctx = DeployContext(CLUSTER, settings.group_data(), tmp_path)
    assert kubectl.servers(ctx) == ["https://10.0.0.1:6443", "https://10.0.0.2:6443"]
    monkeypatch.setitem(kubectl._live, str(tmp_path), "https://10.0.0.2:6443")
    assert kubectl.servers(ctx) == ["https://10.0.0.2:6443", "https://10.0.0.1:6443"]


@pytest.mark.parametrize("message", [
    "Unable to connect to the server: dial tcp 10.0.0.1:6443: connect: no route to host",
    "The connection to the server 10.0.0.1:6443 was refused - did you specify the right host?",
])
def test_unreachable_apiserver_messages(message: str) -> None:
    assert kubectl.UNREACHABLE.search(message)
    assert not kubectl.UNREACHABLE.search('Error from server (NotFound): nodes "x" not found')


def test_preflight_names_the_supported_os_for_nodes() -> None:
    ctx = DeployContext(CLUSTER, settings.group_data(), Path("/nonexistent"))
    found = {"arch": ["x86_64"], "os": ["ubuntu-24.04"], "swap": ["0"], "free_kib": ["9999999"],
             "bridge_nf": ["yes"], "forward_ok": ["yes"], "vxlan": ["yes"]}
    assert any("Debian 12 (bookworm)" in p for p in preflight.problems(ctx, N, found))
    assert not any("bookworm" in p for p in preflight.problems(ctx, M1, found))


def _inventory(tmp_path: Path) -> Path:
    inventory = tmp_path / "hosts.py"
    inventory.write_text('etcd = [("m1", {"address": "192.0.2.1"})]\nmasters = etcd\n'
                         'nodes = [("n1", {"address": "192.0.2.2"})]\n')
    return inventory


def _deploy(state: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"KUBESMITH_STATE": str(state), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def test_kubeconfig_command_writes_a_private_file_for_a_chosen_server(tmp_path: Path) -> None:
    inventory, state = _inventory(tmp_path), tmp_path / "state"
    missing = _deploy(state, "kubeconfig", "-i", str(inventory))
    assert missing.returncode == 1 and "run `python deploy.py up` first" in missing.stderr
    ctx = context.load(inventory, warn=lambda _w: None)
    ctx.state = state
    state.mkdir()
    pki.prepare(ctx)
    made = _deploy(state, "kubeconfig", "-i", str(inventory), "--server", "m1")
    assert made.returncode == 0, made.stderr
    path = state / "admin-192.0.2.1.kubeconfig"
    assert "server: https://192.0.2.1:6443\n" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and "PRIVATE KEY" not in made.stdout
    bad = _deploy(state, "kubeconfig", "-i", str(inventory), "--server", "http://x")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
