"""The Vagrant inventory: ssh-config parsing, the machine list, host data and the Vagrantfile."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from kubesmith.inventory import load_groups
from kubesmith.vagrant import (
    Machine,
    VagrantError,
    dotfile_dir,
    groups,
    machines,
    parse_ssh_config,
    ssh_config_from_vagrant,
)

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "vagrant" / "settings.json"
SSH_CONFIG = (Path(__file__).parent / "data" / "vagrant-ssh-config.txt").read_text()
KEY = "/home/dev/kubesmith/.vagrant/machines/{}/libvirt/private_key"


def _fake_vagrant(tmp_path: Path, script: str) -> str:
    """PATH with a fake `vagrant` first: a shell script with that body."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    vagrant = bin_dir / "vagrant"
    vagrant.write_text(f"#!/bin/sh\n{script}\n")
    vagrant.chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ['PATH']}"


def test_parse_ssh_config_sample() -> None:
    hosts = parse_ssh_config(SSH_CONFIG)
    assert list(hosts) == ["master-1", "node-1", "node-2"]
    master = hosts["master-1"]
    assert master["hostname"] == "192.168.121.143"
    assert master["user"] == "vagrant"
    assert master["port"] == "22"
    assert master["identityfile"] == KEY.format("master-1")
    assert master["stricthostkeychecking"] == "no"
    assert master["userknownhostsfile"] == "/dev/null"
    assert master["pubkeyacceptedkeytypes"] == "+ssh-rsa"


def test_parse_ssh_config_quotes_comments_and_first_value_wins() -> None:
    text = '# comment\nHost a\n\tIdentityFile "/my keys/one"\n  IdentityFile /two\n  Port 2222\n'
    assert parse_ssh_config(text) == {"a": {"identityfile": "/my keys/one", "port": "2222"}}


def test_default_machines() -> None:
    assert machines(SETTINGS, {}) == [
        Machine("master-1", "masters", "192.168.56.11", "eth1"),
        Machine("node-1", "nodes", "192.168.56.21", "eth1"),
        Machine("node-2", "nodes", "192.168.56.22", "eth1"),
    ]


def test_env_overrides_counts_network_and_iface() -> None:
    env = {
        "KUBESMITH_MASTERS": "3",
        "KUBESMITH_NODES": "1",
        "KUBESMITH_NETWORK": "10.9.8",
        "KUBESMITH_PRIVATE_IFACE": "enp0s8",
    }
    found = machines(SETTINGS, env)
    assert [(m.name, m.role, m.address) for m in found] == [
        ("master-1", "masters", "10.9.8.11"),
        ("master-2", "masters", "10.9.8.12"),
        ("master-3", "masters", "10.9.8.13"),
        ("node-1", "nodes", "10.9.8.21"),
    ]
    assert {m.iface for m in found} == {"enp0s8"}


def test_iface_from_settings(tmp_path: Path) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(SETTINGS.read_text().replace('"eth1"', '"ens6"'))
    assert {m.iface for m in machines(settings, {})} == {"ens6"}


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KUBESMITH_MASTERS", "10", "KUBESMITH_MASTERS must be in 1..9"),
        ("KUBESMITH_MASTERS", "0", "KUBESMITH_MASTERS must be in 1..9"),
        ("KUBESMITH_NODES", "x", "KUBESMITH_NODES must be an integer"),
        ("KUBESMITH_NETWORK", "192.168", "KUBESMITH_NETWORK must be three octets"),
        ("KUBESMITH_NETWORK", "192.168.300", "KUBESMITH_NETWORK must be three octets"),
    ],
)
def test_bad_settings_are_refused(variable: str, value: str, message: str) -> None:
    with pytest.raises(VagrantError, match=message):
        machines(SETTINGS, {variable: value})


def test_groups_host_data(tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    found = groups(SSH_CONFIG, machines(SETTINGS, {}), known_hosts)
    assert [n for n, _ in found["masters"]] == ["master-1"]
    assert [n for n, _ in found["nodes"]] == ["node-1", "node-2"]
    assert found["etcd"] == found["masters"]
    name, data = found["nodes"][1]
    assert data == {
        "ssh_hostname": "192.168.121.209",
        "ssh_port": 22,
        "ssh_user": "vagrant",
        "ssh_key": KEY.format(name),
        "address": "192.168.56.22",
        "iface": "eth1",
        "_sudo": True,
        "ssh_known_hosts_file": str(known_hosts),
    }


def test_groups_without_known_hosts_leave_host_keys_to_pyinfra() -> None:
    found = groups(SSH_CONFIG, machines(SETTINGS, {}), None)
    data = found["masters"][0][1]
    assert "ssh_known_hosts_file" not in data
    assert "ssh_strict_host_key_checking" not in data


def test_groups_root_user_needs_no_sudo() -> None:
    text = "Host master-1\n  HostName 127.0.0.1\n  User root\n  Port 2222\n  IdentityFile /k\n"
    found = groups(text, [Machine("master-1", "masters", "192.168.56.11")], None)
    data = found["masters"][0][1]
    assert data["ssh_port"] == 2222
    assert "_sudo" not in data


def test_missing_machine_says_run_vagrant_up() -> None:
    three_nodes = machines(SETTINGS, {"KUBESMITH_NODES": "3"})
    with pytest.raises(VagrantError, match=r"node-3 .*run `vagrant up`"):
        groups(SSH_CONFIG, three_nodes, None)


def test_ssh_config_without_vagrant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(VagrantError, match="vagrant is not installed"):
        ssh_config_from_vagrant(tmp_path)


def test_ssh_config_vagrant_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_vagrant(tmp_path, "echo 'machine not created' >&2; exit 1"))
    with pytest.raises(VagrantError, match=r"exit 1.*vagrant up.*machine not created"):
        ssh_config_from_vagrant(tmp_path)


def test_inventory_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sample = Path(__file__).parent / "data" / "vagrant-ssh-config.txt"
    monkeypatch.setenv("PATH", _fake_vagrant(tmp_path, f"cat '{sample}'"))
    for variable in [v for v in os.environ if v.startswith("KUBESMITH_")]:
        monkeypatch.delenv(variable)
    found = load_groups(ROOT / "inventories" / "vagrant.py")
    assert set(found) == {"etcd", "masters", "nodes"}
    data = found["masters"][0][1]
    assert data["address"] == "192.168.56.11"
    assert data["ssh_known_hosts_file"] == str(ROOT / ".vagrant" / "kubesmith_known_hosts")


def _vagrant_validate(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`vagrant validate` of the project's Vagrantfile, its state kept out of the work tree."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KUBESMITH_")}
    return subprocess.run(
        ["vagrant", "validate"],
        cwd=ROOT,
        env={**clean, "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot"), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


needs_vagrant = pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant not installed")


@needs_vagrant
@pytest.mark.parametrize(
    "env",
    [{}, {"KUBESMITH_MASTERS": "3", "KUBESMITH_NODES": "0", "KUBESMITH_SSH_NO_SUDO": "1"}],
)
def test_vagrant_validate(tmp_path: Path, env: dict[str, str]) -> None:
    result = _vagrant_validate(tmp_path, env)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_vagrant
@pytest.mark.parametrize(
    ("variable", "value"), [("KUBESMITH_MASTERS", "10"), ("KUBESMITH_NETWORK", "192.168")]
)
def test_vagrantfile_refuses_what_python_refuses(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(VagrantError):
        machines(SETTINGS, {variable: value})
    result = _vagrant_validate(tmp_path, {variable: value})
    assert result.returncode != 0
    assert variable in result.stdout + result.stderr


def test_one_machine_is_etcd_master_and_node() -> None:
    one = machines(SETTINGS, {"KUBESMITH_NODES": "0"})
    found = groups(SSH_CONFIG, one, None)
    assert [n for n, _ in found["etcd"]] == ["master-1"]
    assert found["etcd"] == found["masters"] == found["nodes"]


def test_known_hosts_follow_vagrant_dotfile_path(tmp_path: Path) -> None:
    assert dotfile_dir(ROOT, {}) == ROOT / ".vagrant"
    assert dotfile_dir(ROOT, {"VAGRANT_DOTFILE_PATH": "x/dot"}) == ROOT / "x" / "dot"
    assert dotfile_dir(ROOT, {"VAGRANT_DOTFILE_PATH": str(tmp_path)}) == tmp_path
