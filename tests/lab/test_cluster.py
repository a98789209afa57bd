"""Bootstrap a real cluster on 3 lab hosts and check it the way an operator would (kube-bench
included: `deploy.py cis`)."""

from __future__ import annotations

import re
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kubesmith import cis, paths, pki, settings
from tests.lab.conftest import WEB_POD, missing_binaries

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(cluster_factory):
    return cluster_factory(3)


def _http_get(cluster, pod: str, address: str, port: int) -> str:
    """Fetch / from inside a pod (busybox nc; the test image has no DNS)."""
    return cluster.kubectl("exec", pod, "--", "sh", "-c",
                           f'printf "GET / HTTP/1.0\\r\\n\\r\\n" | nc -w 5 {address} {port}')


def test_first_up_reports_every_phase(cluster) -> None:
    for phase in ("[hosts]", "[etcd]", "[control plane]", "[network]", "[nodes]", "[add-ons]"):
        assert f"{phase} ok in" in cluster.first_up
    assert "BEGIN" not in cluster.first_up and "PRIVATE KEY" not in cluster.first_up


def test_binaries_cross_the_control_machine_once(cluster) -> None:
    """The first master's mirror got each artifact once; the nodes fetched theirs from it (one
    upload per host would have sent every node's binaries again), and it stopped afterwards."""
    def size(host: str, path: str) -> int:
        return int(cluster.ssh(host, f"du -sb {path} | cut -f1").stdout)

    mirror = size("lab-1", paths.MIRROR_DIR)
    node_binaries = size("lab-2", "/usr/local/bin") + size("lab-2", paths.IMAGE_DIR)
    assert node_binaries > 100 * 2**20  # what every added node would cost without the mirror
    assert mirror < cluster.first_up_sent < mirror + 32 * 2**20
    # Sent in the background over OpenSSH while the phases ran, not by the fill phases.
    assert "no background upload" not in cluster.first_up, cluster.first_up
    assert cluster.ssh("lab-1", f"systemctl is-active {paths.MIRROR_UNIT}").stdout.strip() \
        == "inactive"


def test_componentstatuses_healthy(cluster) -> None:
    out = cluster.kubectl("get", "componentstatuses", "--no-headers")
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines() if line.strip()}
    assert rows == {"scheduler": "Healthy", "controller-manager": "Healthy", "etcd-0": "Healthy"}


def test_nodes_ready_with_pinned_kubelet(cluster) -> None:
    out = cluster.kubectl("get", "nodes", "--no-headers")
    rows = {line.split()[0]: line.split() for line in out.splitlines()}
    assert set(rows) == {"lab-2", "lab-3"}
    version = settings.versions()["kubernetes_version"]
    for name, row in rows.items():
        assert row[1] == "Ready", f"{name}: {row}"
        assert row[4] == version


def test_pod_to_pod_across_vxlan_and_cluster_ip(cluster) -> None:
    busybox = settings.versions()["busybox_version"]
    for node in ("lab-2", "lab-3"):
        cluster.apply(WEB_POD.format(node=node, busybox=busybox))
    cluster.kubectl("wait", "--for=condition=Ready", "pod/web-lab-2", "pod/web-lab-3",
                    "--timeout=90s")
    target_ip = cluster.kubectl("get", "pod", "web-lab-3", "-o", "jsonpath={.status.podIP}")
    source_ip = cluster.kubectl("get", "pod", "web-lab-2", "-o", "jsonpath={.status.podIP}")
    assert target_ip.split(".")[2] != source_ip.split(".")[2], "pods must be on different subnets"
    assert "hello-from-lab-3" in _http_get(cluster, "web-lab-2", target_ip, 8080)
    cluster.kubectl("expose", "pod", "web-lab-3", "--name=web", "--port=80",
                    "--target-port=8080")
    vip = cluster.kubectl("get", "service", "web", "-o", "jsonpath={.spec.clusterIP}")
    deadline = time.monotonic() + 30
    while True:  # kube-proxy programs the new Service within its sync period
        try:
            answer = _http_get(cluster, "web-lab-2", vip, 80)
        except AssertionError as error:  # nc timed out: no rule yet
            answer = str(error)
        if "hello-from-lab-3" in answer:
            break
        assert time.monotonic() < deadline, f"service {vip} did not answer: {answer}"
        time.sleep(1)
    nat = cluster.ssh("lab-2", "iptables -t nat -S").stdout
    assert "-N KUBE-SERVICES" in nat
    assert re.search(rf"-A KUBE-SERVICES -d {re.escape(vip)}/32 .*default/web", nat)


ETCDCTL = ". /etc/kubernetes/etcdctl.env && etcdctl "


def test_etcd_holds_registry_and_flannel_leases(cluster) -> None:
    keys = cluster.ssh("lab-1", ETCDCTL + "get /registry/namespaces/ --prefix --keys-only")
    assert "/registry/namespaces/default" in keys.stdout.split()
    leases = cluster.ssh("lab-1", ETCDCTL + "get /coreos.com/network/subnets --prefix "
                         "--keys-only").stdout.split()
    # One per pod host, lab-1 (master), lab-2, lab-3: each the subnet it asked for first, its
    # place among them in pod_cidr (tasks/flannel.py subnet_seed), so none raced for another's.
    assert sorted(leases) == [f"/coreos.com/network/subnets/10.200.{i}.0-24" for i in (1, 2, 3)], \
        leases
    health = cluster.ssh("lab-1", ETCDCTL + "endpoint health")
    assert health.returncode == 0 and "is healthy" in health.stdout + health.stderr


def test_secrets_are_encrypted_at_rest(cluster) -> None:
    cluster.kubectl("create", "secret", "generic", "probe", "--from-literal=word=plaintextvalue")
    raw = cluster.ssh("lab-1", ETCDCTL + "get --print-value-only /registry/secrets/default/probe"
                      " > /tmp/probe && head -c 26 /tmp/probe && grep -c plaintextvalue /tmp/probe")
    assert raw.stdout.startswith("k8s:enc:secretbox:v1:key1:"), raw.stdout
    assert raw.stdout.rstrip().endswith("\n0") or raw.stdout.rstrip().endswith(":0"), raw.stdout


def test_etcd_refuses_a_client_without_certificate(cluster) -> None:
    etcd = cluster.lab.state.host("lab-1").address
    result = cluster.ssh("lab-2", "curl -sS --max-time 5 --cacert /etc/kubernetes/pki/etcd-ca.crt "
                         f"https://{etcd}:2379/health")
    assert result.returncode != 0, result.stdout
    with_cert = cluster.ssh("lab-1", "curl -sS --max-time 5"
                            " --cacert /etc/kubernetes/pki/etcd-ca.crt"
                            " --cert /etc/kubernetes/pki/etcd-healthcheck-client.crt"
                            " --key /etc/kubernetes/pki/etcd-healthcheck-client.key"
                            f" https://{etcd}:2379/health")
    assert '"health":"true"' in with_cert.stdout


def test_apiserver_refuses_anonymous(cluster) -> None:
    master = cluster.lab.state.host("lab-1").address
    result = cluster.ssh("lab-2", "curl -s -o /dev/null -w '%{http_code}' --max-time 5 "
                         "--cacert /etc/kubernetes/pki/kubernetes-ca.crt "
                         f"https://{master}:6443/api")
    assert result.stdout == "401"


def test_keys_are_private(cluster) -> None:
    # stat fails when the glob matches no key (it stats the literal name): exit 0 means it did.
    out = cluster.ssh_ok("lab-1", "stat -c '%a %n' /etc/kubernetes/pki/*.key /var/lib/etcd")
    modes = {path: mode for mode, path in (line.split() for line in out.splitlines())}
    assert modes.pop("/var/lib/etcd") == "700", out
    assert {"/etc/kubernetes/pki/kubesmith.key", "/etc/kubernetes/pki/sa.key"} <= set(modes), out
    # Keys are written 0600 (tasks/pki.py); a directory's 700 is no key's mode.
    assert {path: mode for path, mode in modes.items() if mode != "600"} == {}, out


def test_second_up_changes_nothing(cluster) -> None:
    # Every re-run reads each host's state in one command (the reads of the run before, the
    # clocks preflight compares included: a clock read live would count as asked live). The
    # first after the bootstrap too: the etcd peer certificate it reads to roll etcd, which the
    # bootstrap did not read, was recorded for it.
    for _run in ("second", "third"):
        again = cluster.deploy("up")
        assert again.returncode == 0, again.stderr
        assert "0 operations changed" in again.stdout, again.stdout
        answered = re.search(r"reads: (\d+) answered ahead, 0 asked live", again.stdout)
        assert answered and int(answered.group(1)) > 0, again.stdout


def _kube_bench(cluster) -> None:
    """Skip a CIS check when kube-bench is not in the binary cache."""
    if missing_binaries(["kube-bench"]):
        pytest.skip("kube-bench is not in the binary cache: run `python deploy.py binaries "
                    "kube-bench`")


def test_cis_has_no_fail_outside_the_documented_exceptions(cluster) -> None:
    """`deploy.py cis`: kube-bench finds no FAIL outside the documented exceptions."""
    _kube_bench(cluster)
    result = cluster.deploy("cis")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    counts = {}
    for line in result.stdout.splitlines():
        match = re.match(r"(lab-\d+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if match:
            host, host_targets, *numbers = match.groups()
            counts[host] = (host_targets, *map(int, numbers))
    assert set(counts) == {"lab-1", "lab-2", "lab-3"}, output
    assert counts["lab-1"][0] == "master,controlplane,etcd,policies"
    assert counts["lab-2"][0] == counts["lab-3"][0] == "node"
    assert all(c[1] > 0 for c in counts.values()), output  # PASS: kube-bench found the daemons
    exceptions = cis.load_exceptions()
    fails = re.findall(r"^FAIL (\S+) (\S+) ", result.stdout, re.MULTILINE)
    assert sum(c[2] for c in counts.values()) == len(fails)
    assert {check for _host, check in fails} <= set(exceptions), output
    assert "PRIVATE KEY" not in output


def test_cis_rerun_uploads_nothing_and_changes_no_service(cluster) -> None:
    """A second run reuses the installed kube-bench; the cluster's daemons keep running."""
    _kube_bench(cluster)
    before = cluster.ssh("lab-1", "stat -c %Y /var/lib/kubesmith/cis/kube-bench").stdout
    again = cluster.deploy("cis")
    assert again.returncode == 0, again.stdout + again.stderr
    assert cluster.ssh("lab-1", "stat -c %Y /var/lib/kubesmith/cis/kube-bench").stdout == before
    assert "0 operations changed" in cluster.deploy("up").stdout


def test_dry_run_changes_nothing_and_prints_no_keys(cluster) -> None:
    cluster.ssh("lab-3", "sed -i 's/^eventRecordQPS: 5/eventRecordQPS: 6/' "
                "/var/lib/kubelet/config.yaml")
    dry = cluster.deploy("up", "--dry")
    assert dry.returncode == 0, dry.stderr
    assert "lab-3: would change: kubelet configuration" in dry.stdout
    assert "PRIVATE KEY" not in dry.stdout + dry.stderr
    still = cluster.ssh("lab-3", "grep eventRecordQPS /var/lib/kubelet/config.yaml").stdout
    assert "6" in still, "dry run must not change the host"


def test_changed_config_restarts_only_that_service(cluster) -> None:
    def started(host: str, unit: str) -> str:
        return cluster.ssh(host, f"systemctl show -p ActiveEnterTimestampMonotonic {unit}").stdout

    before = {(h, u): started(h, u) for h in ("lab-2", "lab-3")
              for u in ("kubelet", "kube-proxy", "containerd")}
    cluster.ssh("lab-3", "sed -i 's/^eventRecordQPS: .*/eventRecordQPS: 7/' "
                "/var/lib/kubelet/config.yaml")
    rerun = cluster.deploy("up")
    assert rerun.returncode == 0, rerun.stderr
    assert "[nodes] lab-3: restart kubelet (inputs changed)" in rerun.stdout
    after = {key: started(*key) for key in before}
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {("lab-3", "kubelet")}


# --- deploy.py verify: passes on the healthy cluster, names each injected fault, passes again
# after `up` repairs it.

def _rows(output: str) -> set[tuple[str, str, str]]:
    """(host, check, result) rows of verify's table."""
    rows = set()
    for line in output.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("PASS", "FAIL", "SKIP"):
            rows.add((parts[0], parts[1], parts[2]))
    return rows


def _apiserver_cert_without_vip(cluster) -> bytes:
    """kube-apiserver's certificate re-signed for the same key, minus the service VIP SAN."""

    store = pki.PKI(cluster.state / "pki")
    load_key = serialization.load_pem_private_key
    key = load_key(store.key_pem("kube-apiserver-lab-1"), None)
    ca_key = load_key(store.key_pem("kubernetes-ca"), None)
    ca_cert = x509.load_pem_x509_certificate(store.ca_pem("kubernetes-ca"))
    current = x509.load_pem_x509_certificate(store.cert_pem("kube-apiserver-lab-1"))
    ext = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = tuple(str(ip) for ip in ext.get_values_for_type(x509.IPAddress)
                if str(ip) != "10.32.0.1")
    spec = pki.CertSpec("kube-apiserver-lab-1", "kubernetes-ca", "kube-apiserver",
                        dns_names=tuple(ext.get_values_for_type(x509.DNSName)),
                        ip_addresses=ips, server=True)
    cert = pki.sign_leaf(spec, key, ca_cert, ca_key)
    return cert.public_bytes(serialization.Encoding.PEM)


def test_verify_passes_on_a_healthy_cluster(cluster, tmp_path) -> None:
    junit = tmp_path / "verify.xml"
    result = cluster.deploy("verify", "--junit", str(junit))
    assert result.returncode == 0, result.stdout[-3000:]
    rows = _rows(result.stdout)
    assert {r for r in rows if r[2] != "PASS"} == set()
    hosts = {r[0] for r in rows}
    assert hosts == {"cluster", "lab-1", "lab-2", "lab-3"}
    assert junit.exists() and "testsuite" in junit.read_text()


def test_verify_names_a_deleted_vxlan_device(cluster) -> None:
    """With flanneld stopped (a running flanneld exits on losing flannel.1 and systemd restarts
    it, which would race the check), the missing device stays missing until `up` repairs it."""
    gone = cluster.ssh("lab-3", "systemctl stop flanneld && ip link delete flannel.1")
    assert gone.returncode == 0, gone.stderr
    failing = cluster.deploy("verify", "-k", "vxlan_device")
    assert failing.returncode != 0
    assert ("lab-3", "vxlan_device", "FAIL") in _rows(failing.stdout), failing.stdout
    assert ("lab-2", "vxlan_device", "PASS") in _rows(failing.stdout)
    repaired = cluster.deploy("up")
    assert repaired.returncode == 0, repaired.stderr
    assert cluster.deploy("verify", "-k", "vxlan_device").returncode == 0


def test_verify_names_each_fault_and_up_repairs_them(cluster) -> None:
    cluster.ssh("lab-2", "systemctl stop kubelet")
    cluster.ssh("lab-2", "iptables -t nat -F KUBE-SERVICES")
    cluster.ssh("lab-3", "chmod 644 /etc/kubernetes/pki/kube-proxy.key")
    bad_cert = _apiserver_cert_without_vip(cluster)
    subprocess.run([*cluster.lab.ssh_args("lab-1"),
                    "cat > /etc/kubernetes/pki/kube-apiserver-lab-1.crt"], input=bad_cert,
                   check=True)
    # Only the checks of these faults, done well within the 50 s before lab-2 (kubelet stopped)
    # turns NotReady: that takes its CoreDNS replica out of the endpoints, and kube-proxy's
    # resync would rewrite the flushed KUBE-SERVICES before its check ran.
    failing = cluster.deploy("verify", "-k", "node_daemons or kube_proxy_chains or "
                             "private_keys_0600 or apiserver_cert_sans")
    assert failing.returncode != 0
    rows = _rows(failing.stdout)
    for expected in (("lab-2", "node_daemons"), ("lab-2", "kube_proxy_chains"),
                     ("lab-3", "private_keys_0600"), ("lab-1", "apiserver_cert_sans")):
        assert (*expected, "FAIL") in rows, f"{expected} not reported failing:\n{failing.stdout}"
    assert "lacks SANs: 10.32.0.1" in failing.stdout
    repaired = cluster.deploy("up")
    assert repaired.returncode == 0, repaired.stderr
    passing = cluster.deploy("verify")
    assert passing.returncode == 0, passing.stdout[-3000:]
