"""The upgrade plan and its refusals, from versions read on hosts (typed records, no host)."""

from __future__ import annotations

import json
from pathlib import Path

from kubesmith import upgrade, versions
from kubesmith.context import DeployContext
from kubesmith.inventory import to_cluster
from kubesmith.settings import group_data
from kubesmith.upgrade import HostVersions, NodeState
from kubesmith.versions import Version
from tasks import preflight

GROUPS = {
    "etcd": [("m1", {"address": "10.0.0.1"})],
    "masters": [("m1", {"address": "10.0.0.1"})],
    "nodes": [("n1", {"address": "10.0.0.2"}), ("n2", {"address": "10.0.0.3"})],
}
CLUSTER = to_cluster(GROUPS, group_data())
V = Version.parse
K8S = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")


def targets(k8s: str = "v1.34.4") -> dict[str, Version]:
    data = {**group_data(), "kubernetes_version": k8s}
    keys = {k: v for h in CLUSTER.hosts for k, v in versions.watched(CLUSTER, h).items()}
    return versions.targets(data, keys)


def read(m1: str = "v1.33.13", n1: str = "v1.33.13", n2: str = "v1.33.13",
         **override: str | None) -> list[HostVersions]:
    """What the three hosts run: the master's and each node's Kubernetes version, the rest at
    the pinned defaults; `override` sets one component on every host that runs it."""
    found = []
    for host, k8s in (("m1", m1), ("n1", n1), ("n2", n2)):
        me = CLUSTER.host(host)
        running = {}
        for name, key in versions.watched(CLUSTER, me).items():
            text = override.get(name.replace("-", "_"), k8s if name in K8S else
                                str(group_data()[key]))
            running[name] = V(text) if text else None
        found.append(HostVersions(host, running))
    return found


def ready(*cordoned: str) -> list[NodeState]:
    return [NodeState(n, True, n in cordoned, n in cordoned) for n in ("n1", "n2")]


def test_versions_are_read_from_each_tool_s_first_line() -> None:
    output = "\n".join(["version:kubelet=Kubernetes v1.34.4", "version:etcd=etcd Version: 3.6.16",
                        "version:containerd=containerd github.com/containerd/containerd/v2 "
                        "v2.2.9 0a1b2c", "version:runc=runc version 1.3.6",
                        "version:kube-proxy=", "arch=x86_64"])
    assert versions.parse(output) == {"kubelet": V("1.34.4"), "etcd": V("3.6.16"),
                                      "containerd": V("2.2.9"), "runc": V("1.3.6"),
                                      "kube-proxy": None}


def test_each_host_is_probed_for_what_its_roles_run() -> None:
    master = versions.watched(CLUSTER, CLUSTER.host("m1"))
    node = versions.watched(CLUSTER, CLUSTER.host("n1"))
    assert {"etcd", "kube-apiserver", "kube-scheduler", "flanneld"} <= set(master)
    assert "kubelet" not in master
    assert {"kubelet", "kube-proxy", "containerd", "runc"} <= set(node)
    assert "etcd" not in node
    probe = versions.probe(CLUSTER, CLUSTER.host("n1"), "/usr/local/bin")
    assert "MainPID" in probe and "/proc/$pid/exe --version" in probe


def test_a_running_executable_kubesmith_installed_and_recorded_is_not_run(tmp_path: Path,
                                                                          monkeypatch) -> None:
    """The probe run by sh with a stand-in systemctl naming a real process: a copy of sleep at
    bin_dir/kubelet, whose --version prints coreutils' version."""
    import os
    import shutil
    import subprocess

    bin_dir, sums = tmp_path / "bin", tmp_path / "sums"
    bin_dir.mkdir()
    kubelet = bin_dir / "kubelet"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", kubelet)
    process = subprocess.Popen([str(kubelet), "30"])
    systemctl = tmp_path / "systemctl"
    # As systemd's: each unit's MainPID (0: not running), a blank line between units.
    systemctl.write_text('#!/bin/sh\nfor u; do case "$u" in kubelet.service) echo '
                         f'{process.pid}; echo;; *.service) echo 0; echo;; esac; done\n')
    systemctl.chmod(0o755)
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setattr(versions.paths, "SUMS", str(sums))

    def kubelet_line(sha256: str) -> str:
        probe = versions.probe(CLUSTER, CLUSTER.host("n1"), str(bin_dir),
                               {"kubelet": (sha256, "v1.34.4")})
        out = subprocess.run(["sh", "-c", probe], env=env, capture_output=True, text=True,
                             check=True).stdout
        return next(line for line in out.splitlines() if line.startswith("version:kubelet="))

    try:
        identity = subprocess.run(["stat", "-c", "%i %z %s", str(kubelet)], capture_output=True,
                                  text=True, check=True).stdout.strip()
        sums.write_text(f"{'a' * 64} {identity} {kubelet}\n")
        assert kubelet_line("a" * 64) == "version:kubelet=v1.34.4"  # recorded: not run
        assert "coreutils" in kubelet_line("b" * 64)  # another sum than the pinned one: run
        # Not a sha256 (a command that would print the recorded one): never in the command.
        assert "coreutils" in kubelet_line(f"$(echo {'a' * 64})")
        shutil.copy(kubelet, tmp_path / "new")
        os.replace(tmp_path / "new", kubelet)  # the running file replaced (upgraded)
        assert "coreutils" in kubelet_line("a" * 64)
    finally:
        process.kill()
        process.wait()


def test_one_minor_up_is_planned_master_before_nodes() -> None:
    assert upgrade.version_refusals(read(), targets()) == []
    plan = upgrade.plan(CLUSTER, read(), targets(), ready())
    assert (plan.etcd, plan.masters, plan.nodes) == ((), ("m1",), ("n1", "n2"))
    assert "kube-apiserver v1.33.13 -> v1.34.4" in plan.lines[0]
    steps = upgrade.steps(plan)
    assert steps[0].startswith("etcd snapshot")
    assert [s.split(":")[0] for s in steps[1:4]] == ["master m1", "node n1", "node n2"]


def test_a_half_done_upgrade_resumes_with_the_hosts_left() -> None:
    half = read(m1="v1.34.4", n1="v1.34.4", n2="v1.33.13")
    assert upgrade.version_refusals(half, targets()) == []
    plan = upgrade.plan(CLUSTER, half, targets(), ready())
    assert (plan.masters, plan.nodes) == ((), ("n2",))


def test_a_node_left_cordoned_by_the_upgrade_goes_first_even_at_the_target() -> None:
    half = read(m1="v1.34.4", n1="v1.33.13", n2="v1.34.4")
    plan = upgrade.plan(CLUSTER, half, targets(), ready("n2"))
    assert plan.nodes == ("n2", "n1")


def test_nothing_to_do_at_the_target() -> None:
    done = read("v1.34.4", "v1.34.4", "v1.34.4")
    plan = upgrade.plan(CLUSTER, done, targets(), ready())
    assert plan.empty
    assert upgrade.steps(plan)[0].startswith("nothing to upgrade")


def test_skipping_a_minor_is_refused() -> None:
    found = upgrade.version_refusals(read("v1.34.4", "v1.34.4", "v1.34.4"), targets("v1.36.3"))
    assert found == ["m1 (kube-apiserver, kube-controller-manager, kube-scheduler): v1.34.4 -> "
                     "v1.36.3 skips a minor release: upgrade to v1.35 first"]


def test_a_downgrade_is_refused() -> None:
    found = upgrade.version_refusals(read("v1.34.4", "v1.34.4", "v1.34.4"), targets("v1.33.13"))
    assert found == ["m1 (kube-apiserver, kube-controller-manager, kube-scheduler), n1 (kubelet, "
                     "kube-proxy), n2 (kubelet, kube-proxy): runs v1.34.4, the inventory names "
                     "v1.33.13: downgrades are not supported"]


def test_a_component_not_running_is_refused_by_name() -> None:
    found = upgrade.version_refusals(read(kube_proxy=None), targets())
    assert found == ["n1 (kube-proxy), n2 (kube-proxy): not running: start it (or fix the host) "
                     "before upgrading"]


def test_forbidden_skews_are_refused() -> None:
    newer_kubelet = read("v1.34.4", "v1.35.4", "v1.34.4")
    assert any("n1: kubelet v1.35.4 is newer than kube-apiserver v1.34.4" in line
               for line in upgrade.skew_refusals(newer_kubelet, targets("v1.35.4")))
    old_kubelet = read("v1.34.4", "v1.31.0", "v1.34.4")
    assert any("n1: kubelet v1.31.0 would be 4 minors older" in line
               for line in upgrade.version_refusals(old_kubelet, targets("v1.35.4")))
    # Three minors older is within the policy.
    assert upgrade.skew_refusals(read("v1.34.4", "v1.32.0", "v1.34.4"), targets("v1.35.4")) == []


def test_etcd_rules() -> None:
    assert upgrade.version_refusals(read(etcd="3.5.21"), targets()) == [
        "m1 (etcd): v3.5.21 -> v3.6.16: every etcd member must run v3.5.26 or newer first"]
    assert upgrade.version_refusals(read(etcd="3.5.26"), targets()) == []
    assert any("m1 (etcd): v3.4.30 -> v3.6.16 skips a minor" in line for line in
               upgrade.version_refusals(read(etcd="3.4.30"), targets()))


def test_unhealthy_cluster_is_refused() -> None:
    nodes = [NodeState("n1", True, False, False), NodeState("n2", False, False, False)]
    assert upgrade.health_refusals(CLUSTER, nodes, None) == [
        "n2: node NotReady: make it Ready (or remove it) before upgrading"]
    assert upgrade.health_refusals(CLUSTER, nodes[:1], None) == [
        "n2: no Node object: bring it up (`python deploy.py up`) before upgrading"]
    assert upgrade.health_refusals(CLUSTER, ready(), "https://10.0.0.1:2379 is unhealthy") == [
        "etcd unhealthy: https://10.0.0.1:2379 is unhealthy"]


def test_uncached_binaries_name_the_build_command() -> None:
    line = upgrade.cache_refusal({"kubernetes": "v1.35.4"}, "inv dir/hosts.py")
    assert line == ("not in the binary cache: kubernetes v1.35.4: build them first "
                    "(`python deploy.py binaries -i 'inv dir/hosts.py' kubernetes`)")
    assert upgrade.cache_refusal({"kubernetes": "v1.35.4"}, "hosts.py", "v1.35.4") == (
        "not in the binary cache: kubernetes v1.35.4: build them first (set kubernetes_version "
        "= 'v1.35.4' in the inventory's settings, then `python deploy.py binaries -i hosts.py "
        "kubernetes`)")
    assert upgrade.cache_refusal({}, "x") is None


def test_node_records_from_kubectl_json() -> None:
    listing = json.dumps({"items": [
        {"metadata": {"name": "n1", "annotations": {"kubesmith.io/upgrading": "v1.34.4"}},
         "spec": {"unschedulable": True},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "n2"}, "spec": {},
         "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}]})
    assert upgrade.node_states(listing, "kubesmith.io/upgrading") == [
        NodeState("n1", True, True, True), NodeState("n2", False, False, False)]


def test_apis_the_target_removes_are_listed() -> None:
    metrics = "\n".join([
        '# TYPE apiserver_requested_deprecated_apis gauge',
        'apiserver_requested_deprecated_apis{group="flowcontrol.apiserver.k8s.io",'
        'removed_release="1.35",resource="flowschemas",subresource="",version="v1beta3"} 1',
        'apiserver_requested_deprecated_apis{group="",removed_release="1.40",'
        'resource="things",subresource="",version="v1beta1"} 1'])
    assert upgrade.removed_apis(metrics, V("v1.35.4")) == [
        "flowschemas flowcontrol.apiserver.k8s.io/v1beta3 is still requested and removed in "
        "1.35: move its clients and manifests to a served version"]
    assert upgrade.removed_apis(metrics, V("v1.34.4")) == []


def test_up_refuses_a_host_running_newer_than_the_inventory() -> None:
    ctx = DeployContext(CLUSTER, group_data(), Path("/nonexistent"))
    good = {"arch": ["x86_64"], "os": ["debian-12"], "swap": ["0"], "free_kib": ["9999999"],
            "bridge_nf": ["yes"], "forward_ok": ["yes"], "vxlan": ["yes"], "hostname": ["n1"],
            "limit": [f"{name} {minimum}" for name, minimum in preflight.NODE_LIMITS.items()]}
    pinned = str(group_data()["kubernetes_version"])
    at_pin = dict(good, **{"version:kubelet": [f"Kubernetes {pinned}"]})
    assert preflight.problems(ctx, CLUSTER.host("n1"), at_pin) == []
    newer = dict(good, **{"version:kubelet": ["Kubernetes v1.99.0"],
                          "version:kube-proxy": ["Kubernetes v1.99.0"]})
    assert preflight.problems(ctx, CLUSTER.host("n1"), newer) == [
        f"kubelet, kube-proxy run v1.99.0, newer than kubernetes_version {V(pinned)} in the "
        "inventory: `up` never downgrades (to move versions: `python deploy.py upgrade`)"]
