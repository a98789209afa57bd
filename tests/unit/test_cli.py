"""deploy.py's command line: user errors are one line, commands that connect get gevent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kubesmith import cli, settings


def _deploy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), *args],
                          capture_output=True, text=True, timeout=60, check=False)


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
    result = subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), "up", "-i",
                             str(inventory)], capture_output=True, text=True, timeout=60,
                            check=False, env=env)
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: add-on coredns: image kubesmith.local/coredns:")
    assert "is not in the binary cache" in lines[0] and "nothing was changed" in lines[0]
