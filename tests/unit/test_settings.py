"""Per-inventory settings: a group_data/all.py beside the inventory overrides the defaults."""

from __future__ import annotations

from pathlib import Path

from kubesmith import settings


def test_defaults_without_an_inventory_directory_of_its_own() -> None:
    lab = settings.PROJECT / "inventories" / "lab.py"
    assert settings.group_data(lab) == settings.group_data()


def test_group_data_beside_the_inventory_overrides_key_by_key(tmp_path: Path) -> None:
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(
        'service_cidr = "10.33.0.0/24"\ncluster_dns = "10.33.0.10"\n_private = 1\n')
    data = settings.group_data(tmp_path / "hosts.py")
    assert data["service_cidr"] == "10.33.0.0/24" and data["cluster_dns"] == "10.33.0.10"
    assert data["pod_cidr"] == settings.group_data()["pod_cidr"]
    assert "_private" not in data
    assert settings.versions(data) == settings.versions()
