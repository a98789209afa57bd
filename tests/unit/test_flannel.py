"""flanneld's first subnet per host (no host needed)."""

import subprocess
from dataclasses import replace
from pathlib import Path

from kubesmith.context import DeployContext
from kubesmith.inventory import to_cluster
from kubesmith.settings import group_data
from tasks import _ops, flannel

GROUPS = {
    "etcd": [("m1", {"address": "10.0.0.1"})],
    "masters": [("m1", {"address": "10.0.0.1"})],
    "nodes": [("n1", {"address": "10.0.0.2"}), ("n2", {"address": "10.0.0.3"}),
              ("n3", {"address": "10.0.0.4"})],
}
CLUSTER = to_cluster(GROUPS, {**group_data(), "pod_cidr": "10.200.0.0/16"})


def test_each_pod_host_asks_first_for_its_own_subnet_from_the_second_on() -> None:
    seeds = [flannel.subnet_seed(CLUSTER, h) for h in CLUSTER.pod_hosts]
    assert seeds == ["10.200.1.0/24", "10.200.2.0/24", "10.200.3.0/24", "10.200.4.0/24"]


def test_no_seed_past_the_pod_network_s_last_subnet() -> None:
    small = replace(CLUSTER, pod_cidr="10.200.0.0/23")
    assert [flannel.subnet_seed(small, h) for h in small.pod_hosts] == [
        "10.200.1.0/24", None, None, None]
    tiny = replace(CLUSTER, pod_cidr="10.200.0.0/25")
    assert flannel.subnet_seed(tiny, tiny.pod_hosts[0]) is None


def test_the_unit_seeds_the_subnet_file_only_where_flanneld_has_none(tmp_path: Path) -> None:
    ctx = DeployContext(CLUSTER, group_data(), Path("/nonexistent"))
    unit = _ops.render("flannel/flanneld.service.j2",
                       **flannel.unit_values(ctx, CLUSTER.host("n2")))
    pre = next(line for line in unit.splitlines() if line.startswith("ExecStartPre="))
    assert "FLANNEL_SUBNET=10.200.3.0/24" in pre and "FLANNEL_NETWORK=10.200.0.0/16" in pre
    # The command as systemd passes it to sh (one single-quoted word), on a scratch path.
    script = pre.split("'")[1].replace("/run/flannel", str(tmp_path / "run"))
    subprocess.run(["sh", "-c", script], check=True)
    env = tmp_path / "run" / "subnet.env"
    assert env.read_text() == "FLANNEL_NETWORK=10.200.0.0/16\nFLANNEL_SUBNET=10.200.3.0/24\n"
    env.write_text("FLANNEL_SUBNET=10.200.77.0/24\n")
    subprocess.run(["sh", "-c", script], check=True)
    assert env.read_text() == "FLANNEL_SUBNET=10.200.77.0/24\n"


def test_the_network_config_gives_the_subnet_length_the_seeds_use() -> None:
    conf = _ops.render("flannel/net-conf.json.j2", pod_cidr="10.200.0.0/16", flannel_vni=1,
                       subnet_len=flannel.SUBNET_LEN)
    assert '"SubnetLen": 24' in conf
