"""deploy.py's command line: user errors are one line, commands that connect get gevent."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
