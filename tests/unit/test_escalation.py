"""A host logged in to as a user with sudo: a workflow's own commands run through sudo as
operations do, and transfers pass through a private directory, never pyinfra's /tmp copy."""

from __future__ import annotations

import io

import pytest
from pyinfra.api import Config, Inventory, State
from pyinfra.connectors.util import CommandOutput, OutputLine

from kubesmith.errors import UserError
from kubesmith.runner import _Commands, run_on

TEMP = "/tmp/tmp.Xy12ab"


def _host(data: dict[str, object], temp: str = TEMP):
    """A pyinfra host over SSH (never connected) whose connector records every command and
    SFTP transfer; `mktemp -d` answers temp, a `cp` fails when fail_copy is set."""
    inventory = Inventory(([("n1", data)], {}))
    state = State(inventory, Config())
    remote = inventory.get_host("n1")
    remote.ran, remote.sftp, remote.fail_copy = [], [], False

    def run_shell_command(command: object, **kwargs: object) -> tuple[bool, CommandOutput]:
        text = str(command)
        remote.ran.append((text, bool(kwargs.get("_sudo"))))
        out = temp if text.endswith("mktemp -d") else ""
        ok = not (remote.fail_copy and text.startswith("cp "))
        return ok, CommandOutput([OutputLine("stdout", out)] if out else [])

    remote.connector.run_shell_command = run_shell_command
    remote.connector._put_file = lambda src, dest: remote.sftp.append(("put", dest))
    remote.connector._get_file = lambda src, dest: remote.sftp.append(("get", src))
    _Commands(state, None)
    return remote


def test_a_workflows_own_command_runs_through_sudo() -> None:
    remote = _host({"ssh_user": "kube", "_sudo": True})
    run_on(remote, "systemctl stop kubelet.service")
    assert remote.ran == [("systemctl stop kubelet.service", True)]


def test_root_logins_run_as_they_are() -> None:
    remote = _host({"ssh_user": "root"})
    run_on(remote, "true")
    assert remote.put_file(io.BytesIO(b"x"), "/etc/kubernetes/pki/a.key")
    assert remote.ran == [("true", False)]
    assert remote.sftp == [("put", "/etc/kubernetes/pki/a.key")]


def test_an_upload_through_sudo_passes_through_a_private_directory() -> None:
    remote = _host({"ssh_user": "kube", "_sudo": True})
    assert remote.put_file(io.BytesIO(b"-----BEGIN PRIVATE KEY-----"),
                           "/etc/kubernetes/pki/a.key")
    assert remote.sftp == [("put", f"{TEMP}/transfer")]
    assert remote.ran == [
        ("umask 077 && mktemp -d", False),  # as kube: its 0700 directory
        (f"cp {TEMP}/transfer /etc/kubernetes/pki/a.key", True),
        (f"rm -f {TEMP}/transfer", True),
        (f"rm -rf {TEMP}", False)]


def test_a_failed_copy_still_removes_the_private_directory() -> None:
    remote = _host({"ssh_user": "kube", "_sudo": True})
    remote.fail_copy = True
    assert not remote.put_file(io.BytesIO(b"key"), "/etc/kubernetes/pki/a.key")
    assert remote.ran[-1] == (f"rm -rf {TEMP}", False)


def test_a_download_through_sudo_passes_through_a_private_directory() -> None:
    remote = _host({"ssh_user": "kube", "_sudo": True})
    assert remote.get_file("/var/lib/kubesmith/backup/snapshot.db", io.BytesIO())
    assert remote.sftp == [("get", f"{TEMP}/transfer")]
    assert remote.ran[0] == ("umask 077 && mktemp -d", False)
    assert remote.ran[1] == (f"cp /var/lib/kubesmith/backup/snapshot.db {TEMP}/transfer && "
                             f"chmod +r {TEMP}/transfer", True)
    assert remote.ran[-1] == (f"rm -rf {TEMP}", False)


def test_no_private_directory_no_transfer() -> None:
    remote = _host({"ssh_user": "kube", "_sudo": True}, temp="/tmp/x; reboot")
    with pytest.raises(UserError, match="n1: could not make a private temporary directory"):
        remote.put_file(io.BytesIO(b"key"), "/etc/kubernetes/pki/a.key")
    assert remote.sftp == [] and len(remote.ran) == 1
