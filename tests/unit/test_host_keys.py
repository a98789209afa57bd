"""Strict SSH host key checking: unknown keys refused by default with a message naming the flag;
--trust-new-host-keys accepts and pins them for one run; verify's OpenSSH config is strict too."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyinfra.api import Inventory
from pyinfra.context import ctx_inventory

from kubesmith import cli, inventory, openssh, pyinfra_cli, settings
from kubesmith.context import DeployContext
from kubesmith.runner import Runner, connect_problem

GROUPS: inventory.Groups = {"etcd": [("m1", {"address": "192.0.2.10"})],
                            "masters": [("m1", {"address": "192.0.2.10"})],
                            "nodes": [("n1", {"address": "192.0.2.21"})]}


def test_group_data_checks_host_keys_strictly() -> None:
    assert settings.group_data()["ssh_strict_host_key_checking"] == "yes"
    data = settings.group_data()
    pyinfra_inventory = inventory.to_pyinfra(GROUPS, data)
    assert pyinfra_inventory.get_host("n1").data.get("ssh_strict_host_key_checking") == "yes"


@pytest.mark.parametrize("trust", [False, True])
def test_the_flag_accepts_new_keys_for_the_run(trust: bool, tmp_path: Path) -> None:
    data = settings.group_data()
    ctx = DeployContext(inventory.to_cluster(GROUPS, data), data, tmp_path, GROUPS)
    runner = Runner(ctx, trust_new_host_keys=trust)
    pyinfra_inventory = inventory.to_pyinfra(GROUPS, data, override=runner.ssh_override)
    wanted = "accept-new" if trust else "yes"
    assert pyinfra_inventory.get_host("m1").data.get("ssh_strict_host_key_checking") == wanted


@pytest.mark.parametrize("command", ["up", "add-node", "add-etcd", "add-master"])
def test_commands_that_meet_new_hosts_have_the_flag(command: str) -> None:
    argv = [command, *(["n1"] if command != "up" else []), "--trust-new-host-keys"]
    assert cli.parser().parse_args(argv).trust_new_host_keys


def test_unknown_key_message_names_the_flag() -> None:
    error = "SSH error (StrictPolicy: No host key for 10.0.0.5 found in known_hosts)"
    assert connect_problem("n1", error, {"ssh_known_hosts_file": "/lab/known_hosts"}) == (
        "n1: host key unknown (not in /lab/known_hosts): check the host's key, then pin it with "
        "--trust-new-host-keys (or add it to that file)")
    changed = "SSH host key error (Host key for 10.0.0.5 does not match.)"
    assert "host key CHANGED" in connect_problem("n1", changed, {})
    assert "~/.ssh/known_hosts" in connect_problem("n1", changed, {})
    assert connect_problem("n1", "Could not connect (\x1b[31mrefused)", {}) == (
        "n1: Could not connect (\\x1b[31mrefused) (check the address, SSH key and known_hosts "
        "in the inventory)")


def test_pyinfra_cli_refuses_hosts_connected_without_strict_checking() -> None:
    lax = Inventory((["a", ("b", {"ssh_strict_host_key_checking": "yes"})], {}))
    with ctx_inventory.use(lax):
        assert pyinfra_cli._unverified_hosts() == ["a"]
    strict = Inventory((["a"], {"ssh_strict_host_key_checking": "yes"}))
    with ctx_inventory.use(strict):
        assert pyinfra_cli._unverified_hosts() == []
    trusting = Inventory((["a"], {}), override_data={"ssh_strict_host_key_checking": "accept-new"})
    with ctx_inventory.use(trusting):
        assert pyinfra_cli._unverified_hosts() == []


def test_verify_ssh_config_is_strict_and_plain() -> None:
    text = openssh.config({"m1": {"ssh_hostname": "192.0.2.10", "ssh_user": "root",
                                  "ssh_port": 2222, "ssh_key": "/k/id",
                                  "ssh_known_hosts_file": "/k/known_hosts",
                                  "ssh_strict_host_key_checking": "yes"}}, 5)
    assert text == ("Host m1\n  HostName 192.0.2.10\n  BatchMode yes\n  ConnectTimeout 5\n"
                    "  LogLevel ERROR\n  StrictHostKeyChecking yes\n  User root\n  Port 2222\n"
                    "  IdentityFile /k/id\n  UserKnownHostsFile /k/known_hosts\n")


@pytest.mark.parametrize("data", [{"ssh_user": "root\n  ProxyCommand touch /tmp/x"},
                                  {"ssh_user": "root ProxyCommand=x"},
                                  {"ssh_key": '"/k/id" -oProxyCommand=x'},
                                  {"ssh_hostname": "-oProxyCommand=x"},
                                  {"ssh_known_hosts_file": "/k#x"}])
def test_verify_ssh_config_refuses_what_validation_would(data: dict) -> None:
    with pytest.raises(openssh.UnsafeOption, match="refused in the OpenSSH config"):
        openssh.config({"m1": data}, 5)
