"""Host keys and --dry on one fresh lab host: an unknown key is refused naming the flag,
--trust-new-host-keys pins it, a changed key is refused even with the flag; --dry on a fresh
state writes nothing locally (no state, no PKI) yet prepares every phase."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubesmith import sshkeys
from tests.lab.conftest import Deployed, missing_binaries

pytestmark = pytest.mark.lab

INVENTORY = '''from kubesmith.lab.inventory import groups

_groups = groups()
for _name, _data in _groups["etcd"]:
    _data.pop("ssh_strict_host_key_checking")  # the default: group_data/all.py says "yes"
    _data["ssh_known_hosts_file"] = {known_hosts!r}
etcd, masters, nodes = _groups["etcd"], _groups["masters"], _groups["nodes"]
'''


@pytest.fixture(scope="module")
def host(lab_factory, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """One lab host reached through an inventory whose known_hosts file starts empty."""
    if missing := missing_binaries():
        pytest.skip(f"binary cache lacks {', '.join(missing)}: run `python deploy.py binaries`")
    lab_ = lab_factory(1)
    directory = Path(tmp_path_factory.mktemp("inventory"))
    known_hosts = directory / "known_hosts"
    known_hosts.write_text("")
    (directory / "hosts.py").write_text(INVENTORY.format(known_hosts=str(known_hosts)))
    state = directory / "state"  # never created: every run here is dry
    env = dict(os.environ, KUBESMITH_LAB_DIR=str(lab_.paths.root), KUBESMITH_STATE=str(state))
    deployed = Deployed(lab_, state, env, "")
    deployed.inventory = directory / "hosts.py"
    deployed.known_hosts = known_hosts
    return deployed


def _up(host: Deployed, *flags: str):
    return host.deploy("up", "--dry", "-i", str(host.inventory), *flags)


def test_unknown_host_key_is_refused_naming_the_flag(host: Deployed) -> None:
    result = _up(host)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (f"lab-1: host key unknown (not in {host.known_hosts}): check the host's key, then "
            "pin it with --trust-new-host-keys") in result.stderr
    assert host.known_hosts.read_text() == "" and not host.state.exists()


def test_the_flag_pins_the_key_and_dry_writes_nothing_else(host: Deployed) -> None:
    result = _up(host, "--trust-new-host-keys")
    assert result.returncode == 0, result.stdout + result.stderr
    pinned = host.known_hosts.read_text().splitlines()
    address = host.lab.state.host("lab-1").address
    assert len(pinned) == 1 and pinned[0].startswith(f"{address} ssh-")
    assert not host.state.exists(), "--dry wrote the state directory"
    assert "[pki] would make or renew" in result.stdout
    pending = [line for line in result.stdout.splitlines() if "would change: " in line]
    assert any("key kubesmith.key" in line for line in pending), result.stdout
    assert any("secrets encryption config" in line for line in pending), result.stdout


def test_a_pinned_key_is_accepted_without_the_flag(host: Deployed) -> None:
    result = _up(host)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(host.known_hosts.read_text().splitlines()) == 1 and not host.state.exists()


def test_a_changed_key_is_refused_even_with_the_flag(host: Deployed, tmp_path: Path) -> None:
    pinned = host.known_hosts.read_text()
    address = host.lab.state.host("lab-1").address
    fake = " ".join(sshkeys.generate(tmp_path / "other", "other").split()[:2])
    host.known_hosts.write_text(f"{address} {fake}\n")
    try:
        result = _up(host, "--trust-new-host-keys")
        assert result.returncode == 1
        assert "lab-1: host key CHANGED" in result.stderr
        assert host.known_hosts.read_text() == f"{address} {fake}\n"
    finally:
        host.known_hosts.write_text(pinned)


def test_reset_script_runs_on_the_host(host: Deployed) -> None:
    # Rendered by kubesmith (values quoted) and run by server.script: on a host with nothing
    # installed it still completes.
    result = host.deploy("reset", "--yes", "-i", str(host.inventory))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reset: lab-1" in result.stdout and not host.state.exists()
