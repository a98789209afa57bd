"""Preflight decisions from host facts (no host needed)."""

from pathlib import Path

from kubesmith.context import DeployContext
from kubesmith.inventory import to_cluster
from kubesmith.settings import group_data
from tasks import preflight

GROUPS = {
    "etcd": [("m1", {"address": "10.0.0.1"})],
    "masters": [("m1", {"address": "10.0.0.1"})],
    "nodes": [("n1", {"address": "10.0.0.2"})],
}
CTX = DeployContext(to_cluster(GROUPS, group_data()), group_data(), Path("/nonexistent"))
GOOD = {"arch": ["x86_64"], "os": ["debian-12"], "swap": ["0"], "free_kib": ["9999999"],
        "bridge_nf": ["yes"], "forward_ok": ["yes"], "vxlan": ["yes"], "hostname": ["m1"],
        "limit": ["fs.inotify.max_user_instances 128", "fs.inotify.max_user_watches 65536",
                  "kernel.pid_max 4194304"]}


def test_good_host_passes() -> None:
    assert preflight.problems(CTX, CTX.cluster.host("m1"), GOOD) == []


def test_each_problem_is_named() -> None:
    bad = dict(GOOD, arch=["riscv64"], os=["centos-7"], swap=["1"], free_kib=["1024"],
               vxlan=[""])
    found = preflight.problems(CTX, CTX.cluster.host("m1"), bad)
    text = "\n".join(found)
    for word in ("riscv64", "centos-7", "swap is on", "1 MiB free", "vxlan"):
        assert word in text


def test_node_kernel_limits_below_kubelets_needs_are_named_with_what_to_set() -> None:
    low = dict(GOOD, limit=["fs.inotify.max_user_instances 100", "fs.inotify.max_user_watches",
                            "kernel.pid_max 4194304"])
    assert preflight.problems(CTX, CTX.cluster.host("n1"), low) == [
        "fs.inotify.max_user_instances is 100, kubelet needs >= 128: sysctl -w "
        "fs.inotify.max_user_instances=128 (and keep it in /etc/sysctl.d/)",
        "fs.inotify.max_user_watches is unreadable, kubelet needs >= 8192: sysctl -w "
        "fs.inotify.max_user_watches=8192 (and keep it in /etc/sysctl.d/)"]
    # A host without kubelet needs none of them.
    assert preflight.problems(CTX, CTX.cluster.host("m1"), low) == []


def test_the_probe_reads_the_kernel_limits_where_the_check_expects_them() -> None:
    """The probe's limit lines, run here, parse into values the check accepts or names."""
    import subprocess
    out = subprocess.run(["sh", "-c", preflight.PROBE.split("echo arch=")[0]],
                         capture_output=True, text=True, check=True).stdout
    lines = [line.partition("=")[2] for line in out.splitlines()]
    assert [line.split()[0] for line in lines] == list(preflight.NODE_LIMITS)
    assert all(line.split()[1].isdigit() for line in lines)


def test_port_held_by_a_foreign_process() -> None:
    facts = dict(GOOD, listen=['tcp/0.0.0.0:6443 users:(("nginx",pid=7,fd=3))'])
    found = preflight.problems(CTX, CTX.cluster.host("m1"), facts)
    assert any("port tcp/6443 is held by" in p and "nginx" in p for p in found)


def test_port_held_by_our_own_service_is_fine() -> None:
    facts = dict(GOOD, listen=['tcp/*:6443 users:(("kube-apiserver",pid=7,fd=3))',
                               "udp/0.0.0.0:8472 ?"])
    assert preflight.problems(CTX, CTX.cluster.host("m1"), facts) == []


def test_ports_only_for_the_hosts_roles() -> None:
    facts = dict(GOOD, listen=['tcp/*:6443 users:(("nginx",pid=7,fd=3))'])
    assert preflight.problems(CTX, CTX.cluster.host("n1"), facts) == []


def test_clock_skew_names_the_odd_host() -> None:
    assert preflight.clock_skew({"a": 0.1, "b": 0.2, "c": 3.0}) == [
        "c: clock +2.80 s from the other hosts (sync time: NTP)"]
    assert preflight.clock_skew({"a": 0.1, "b": 0.9}) == []


def test_duplicate_hostnames() -> None:
    assert preflight.duplicate_hostnames({"a": "x", "b": "x", "c": "y"}) == [
        "b: hostname 'x' is also a's"]


def test_unjoined_etcd_members_must_use_add_etcd() -> None:
    assert preflight.unjoined_members({"a": True, "b": False, "c": False}) == [
        "b, c: no etcd data while the others run a cluster; join with "
        "`python deploy.py add-etcd b c`"]
    assert preflight.unjoined_members({"a": False, "b": False}) == []  # a new cluster
    assert preflight.unjoined_members({"a": True, "b": True}) == []


def test_flanneld_s_device_is_named_after_the_vni_wherever_it_is_read() -> None:
    """flanneld names its vxlan device flannel.<VNI>: the probe, the service table (reset's
    manifest) and the unit's checksum fix all follow flannel_vni."""
    from kubesmith import paths
    from kubesmith.services import SERVICES
    from tasks import _ops

    data = {**group_data(), "flannel_vni": 42}
    ctx = DeployContext(CTX.cluster, data, Path("/nonexistent"))
    assert paths.flannel_device(data) == "flannel.42"
    assert "[ -e /sys/class/net/flannel.42 ]" in preflight.vxlan_probe(ctx)
    assert ("link", "flannel.42") in SERVICES["flanneld"].made(data)
    from tasks import flannel

    unit = _ops.render("flannel/flanneld.service.j2",
                       **flannel.unit_values(ctx, CTX.cluster.host("m1")))
    assert "ethtool -K flannel.42 " in unit and "flannel.1" not in unit
