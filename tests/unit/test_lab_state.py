"""Lab state on disk, the subnet check and the lab inventory's topology."""

from pathlib import Path

import pytest

from kubesmith.lab import inventory, network
from kubesmith.lab.state import LabHost, LabPaths, LabState, load, save


def _lab(tmp_path: Path, count: int) -> LabPaths:
    paths = LabPaths(tmp_path)
    hosts = [LabHost(f"lab-{i}", f"10.240.0.{10 + i}", pid=100 + i) for i in range(1, count + 1)]
    save(paths, LabState(gateway="10.240.0.1", hosts=hosts))
    return paths


def test_state_round_trip(tmp_path: Path) -> None:
    paths = _lab(tmp_path, 2)
    state = load(paths)
    assert state is not None
    assert [h.name for h in state.hosts] == ["lab-1", "lab-2"]
    assert state.host("lab-2").address == "10.240.0.12"
    assert state.prefix_len == 24
    with pytest.raises(KeyError):
        state.host("lab-9")


def test_no_state_is_none(tmp_path: Path) -> None:
    assert load(LabPaths(tmp_path)) is None


def test_overlapping_route_is_refused() -> None:
    routes = [{"dst": "default", "dev": "eth0"}, {"dst": "10.240.0.0/16", "dev": "eth1"}]
    with pytest.raises(network.SubnetInUse, match="10.240.0.0/16 on dev eth1"):
        network.check_routes("10.240.0.0/24", "kslab0", routes)


def test_own_bridge_and_other_subnets_pass() -> None:
    routes = [{"dst": "10.240.0.0/24", "dev": "kslab0"}, {"dst": "192.0.2.0/24", "dev": "eth0"},
              {"dst": "default", "dev": "eth0"}, {"dst": "fd00::/64", "dev": "eth0"}]
    network.check_routes("10.240.0.0/24", "kslab0", routes)


def test_inventory_default_topology(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBESMITH_LAB_ETCD", raising=False)
    monkeypatch.delenv("KUBESMITH_LAB_MASTERS", raising=False)
    groups = inventory.groups(_lab(tmp_path, 3))
    assert [n for n, _ in groups["etcd"]] == ["lab-1"]
    assert [n for n, _ in groups["masters"]] == ["lab-1"]
    assert [n for n, _ in groups["nodes"]] == ["lab-2", "lab-3"]
    data = dict(groups["nodes"])["lab-2"]
    assert data["ssh_hostname"] == "10.240.0.12"
    assert data["ssh_known_hosts_file"] == str(tmp_path / "known_hosts")
    assert data["ssh_strict_host_key_checking"] == "yes"


def test_inventory_three_etcd_members(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBESMITH_LAB_ETCD", "3")
    groups = inventory.groups(_lab(tmp_path, 3))
    assert [n for n, _ in groups["etcd"]] == ["lab-1", "lab-2", "lab-3"]


def test_single_host_lab_has_every_role(tmp_path: Path) -> None:
    groups = inventory.groups(_lab(tmp_path, 1))
    assert all([n for n, _ in groups[g]] == ["lab-1"] for g in ("etcd", "masters", "nodes"))


def test_inventory_without_lab(tmp_path: Path) -> None:
    with pytest.raises(inventory.NoLab, match="lab up"):
        inventory.groups(LabPaths(tmp_path))
