"""deploy.py cis: targets per role, kube-bench's JSON report, the table and the exceptions."""

from kubesmith import cis, settings
from kubesmith.model import Cluster, Host
from tasks import _ops

MASTER = Host("m1", "10.0.0.1", frozenset({"etcd", "masters"}))
MASTER2 = Host("m2", "10.0.0.2", frozenset({"masters"}))
NODE = Host("n1", "10.0.0.3", frozenset({"nodes"}))
CLUSTER = Cluster(hosts=(MASTER, MASTER2, NODE), pod_cidr="10.200.0.0/16",
                  service_cidr="10.32.0.0/24", cluster_domain="cluster.local",
                  cluster_dns="10.32.0.10")

REPORT = {
    "Controls": [{
        "id": "4",
        "tests": [{"section": "4.1", "results": [
            {"test_number": "4.1.1", "test_desc": "kubelet service file 600", "status": "PASS"},
            {"test_number": "4.1.9", "test_desc": "kubelet config 600", "status": "FAIL"},
            {"test_number": "4.1.7", "test_desc": "CA file 600", "status": "WARN"},
        ]}],
    }],
    "Totals": {"total_pass": 1, "total_fail": 1, "total_warn": 1, "total_info": 0},
}


def test_targets_follow_roles_and_policies_run_once() -> None:
    assert cis.targets(CLUSTER, MASTER) == ["master", "controlplane", "etcd", "policies"]
    assert cis.targets(CLUSTER, MASTER2) == ["master", "controlplane"]
    assert cis.targets(CLUSTER, NODE) == ["node"]


def test_parse_counts_and_fails() -> None:
    result = cis.parse("n1", ["node"], REPORT)
    assert result.counts == {"PASS": 1, "FAIL": 1, "WARN": 1, "INFO": 0}
    assert result.fails == [("4.1.9", "kubelet config 600")]


def test_table_marks_documented_exceptions() -> None:
    result = cis.parse("n1", ["node"], REPORT)
    lines = cis.table([result], {"4.1.9": "why"})
    assert lines[1].split() == ["n1", "node", "1", "1", "1", "0"]
    assert lines[2] == "FAIL n1 4.1.9 kubelet config 600  [documented exception]"
    assert cis.table([result], {})[2] == "FAIL n1 4.1.9 kubelet config 600"


def test_every_exception_has_a_reason_and_is_in_the_doc() -> None:
    exceptions = cis.load_exceptions()
    doc = (settings.PROJECT / "docs" / "cis.md").read_text()
    assert exceptions
    for check_id, reason in exceptions.items():
        assert reason.strip(), check_id
        assert f"| {check_id} |" in doc, f"{check_id} not explained in docs/cis.md"


def test_config_override_points_at_kubesmith_paths() -> None:
    text = _ops.render("cis/config.yaml.j2", benchmark=cis.BENCHMARK, **settings.group_data())
    assert "/etc/systemd/system/kube-apiserver.service" in text
    assert "/etc/kubernetes/kubelet.kubeconfig" in text
    assert "datadirs: [/var/lib/etcd]" in text
