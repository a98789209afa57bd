"""deploy.py's command line: user errors are one line, commands that connect get gevent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesmith import cli, settings


def _deploy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """deploy.py run with these arguments (and environment), its output captured."""
    return subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False, env=env)


def test_every_workflow_command_connects() -> None:
    parser = cli.parser()
    for command in ("up", "add-node", "add-etcd", "add-master", "remove-node", "reset", "cis"):
        argv = [command, "x"] if command in ("add-node", "add-etcd", "add-master",
                                             "remove-node") else [command]
        assert parser.parse_args(argv).connects, command
    assert not getattr(parser.parse_args(["lab", "status"]), "connects", False)


def test_a_missing_inventory_is_one_line(tmp_path: Path) -> None:
    result = _deploy("up", "-i", str(tmp_path / "nope.py"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"error: inventory {tmp_path / 'nope.py'} not found"


def test_an_invalid_inventory_is_refused_before_any_host(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts.py"
    inventory.write_text('etcd = [("m1", {"address": "10.0.0.1"})]\nmasters = etcd\n')
    result = _deploy("up", "-i", str(inventory))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "error: nodes: no hosts" in result.stderr
    assert "nothing was changed" in result.stderr


def _inventory(tmp_path: Path, settings_text: str) -> Path:
    """A valid inventory of unreachable hosts (TEST-NET) with its own group data."""
    (tmp_path / "group_data").mkdir()
    (tmp_path / "group_data" / "all.py").write_text(settings_text)
    inventory = tmp_path / "hosts.py"
    inventory.write_text('etcd = [("m1", {"address": "192.0.2.1"})]\nmasters = etcd\n'
                         'nodes = [("n1", {"address": "192.0.2.2"})]\n')
    return inventory


@pytest.mark.parametrize(("settings_text", "error"), [
    ('cluster_domain = "Cluster_Local"\n',
     "error: cluster_domain: 'Cluster_Local' is not a DNS name"),
    ('addons = ["coredns", "dashboard"]\n', "error: addons: unknown add-on 'dashboard'"),
])
def test_bad_addon_settings_are_refused_before_any_host(tmp_path: Path, settings_text: str,
                                                        error: str) -> None:
    result = _deploy("up", "-i", str(_inventory(tmp_path, settings_text)))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(error) and "nothing was changed" in result.stderr
    assert "connect" not in result.stderr + result.stdout


def test_an_addon_image_missing_from_the_cache_is_one_line_before_any_host(
        tmp_path: Path) -> None:
    inventory = _inventory(tmp_path, "")
    env = dict(os.environ, KUBESMITH_CACHE=str(tmp_path / "empty-cache"),
               KUBESMITH_STATE=str(tmp_path / "state"))
    result = _deploy("up", "-i", str(inventory), env=env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: add-on coredns: image kubesmith.local/coredns:")
    assert "is not in the binary cache" in lines[0] and "nothing was changed" in lines[0]


@pytest.mark.parametrize("argv", [["add-node", "node-1"], ["add-etcd", "master-1"],
                                  ["add-master", "master-1"]])
def test_extending_a_cluster_this_machine_has_no_state_for_is_refused(
        tmp_path: Path, argv: list[str]) -> None:
    # Without the cluster's CAs, add-node used to make a new CA and issue the new node
    # certificates the running cluster does not trust (then fail to connect).
    env = dict(os.environ, KUBESMITH_STATE=str(tmp_path / "state"))
    result = _deploy(*argv, "-i", str(settings.PROJECT / "inventories" / "example.py"), env=env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{argv[0]}: no kubernetes-ca in {tmp_path / 'state' / 'pki'}: bootstrap the " \
           "cluster with `python deploy.py up` first" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "state").exists()


def test_kubeconfig_refuses_a_path_it_cannot_write_and_a_damaged_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kubesmith import context
    from tasks import pki

    monkeypatch.setenv("KUBESMITH_STATE", str(tmp_path / "state"))
    example = str(settings.PROJECT / "inventories" / "example.py")
    ctx = context.load(Path(example), warn=lambda _w: None)
    context.claim(ctx)
    pki.prepare(ctx)
    env = dict(os.environ, KUBESMITH_STATE=str(tmp_path / "state"))

    def kubeconfig(*argv: str) -> subprocess.CompletedProcess:
        return _deploy("kubeconfig", "-i", example, *argv, env=env)

    (tmp_path / "a-directory").mkdir()
    (tmp_path / "a-file").write_text("")
    for target, why in ((tmp_path / "a-directory", "Is a directory"),
                        (tmp_path / "a-file" / "config", "File exists")):
        result = kubeconfig("-o", str(target))
        assert result.returncode == 1 and result.stderr == \
            f"kubeconfig: cannot write {target}: {why}\n", result.stderr
    assert kubeconfig().returncode == 0
    crt = tmp_path / "state" / "pki" / "admin.crt"
    crt.write_bytes(crt.read_bytes()[:100])  # cut short
    result = kubeconfig()
    assert result.returncode == 1, result.stdout
    assert result.stderr == f"error: {crt}: unreadable: run `python deploy.py up` to issue it " \
                            "again\n", result.stderr


def test_a_missing_ssh_key_is_named_in_one_line(tmp_path: Path) -> None:
    key = tmp_path / "no-such-key"
    inventory = tmp_path / "hosts.py"
    inventory.write_text(f'_ssh = {{"ssh_key": "{key}"}}\n'
                         'etcd = [("m1", {"address": "192.0.2.10", **_ssh})]\nmasters = etcd\n'
                         'nodes = [("n1", {"address": "192.0.2.21", **_ssh})]\n')
    env = dict(os.environ, KUBESMITH_STATE=str(tmp_path / "state"))
    result = _deploy("backup", "-i", str(inventory), env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: backup: no healthy etcd member: backup: cannot connect to m1: ssh_key {key} "
        "does not exist on this machine: point ssh_key at the private key that logs in to the "
        "host"]
