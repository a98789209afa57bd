"""Lab fixtures: boot real systemd-nspawn hosts for a test module, tear them down after."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesmith import settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.lab import hosts as lab
from kubesmith.lab.state import LabPaths, LabState

TEST_SUBNET = "10.241.0.0/24"
TEST_BRIDGE = "kstest0"


def lab_skip_reason() -> str | None:
    """Why lab tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "lab tests need root (systemd-nspawn, bridges, mounts)"
    for tool in ("systemd-nspawn", "debootstrap", "ssh"):
        if shutil.which(tool) is None:
            return f"lab tests need {tool} (apt-get install systemd-container debootstrap)"
    return None


def missing_binaries() -> list[str]:
    """Components whose cache directory is not complete for the pinned versions."""
    versions = settings.versions()
    root = cache.default_root()
    return [
        name for name, c in COMPONENTS.items()
        if not cache.is_complete(
            cache.component_dir(root, name, versions[c.version_key], cache.host_arch()), c.files)
    ]


class Lab:
    """A booted lab: its paths, state and an ssh helper."""

    def __init__(self, paths: LabPaths, state: LabState) -> None:
        self.paths, self.state = paths, state

    def ssh_args(self, host: str) -> list[str]:
        """argv prefix for running a command on a host with strict host key checking."""
        return ["ssh", "-F", str(self.paths.ssh_config), host]


@pytest.fixture(scope="module")
def lab_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """Boot `count` hosts once per module (in a private lab dir, bridge and subnet)."""
    reason = lab_skip_reason()
    if reason:
        pytest.skip(reason)
    paths = LabPaths(Path(tmp_path_factory.mktemp("lab")))
    booted: list[Lab] = []

    def boot(count: int) -> Lab:
        state = lab.up(count, TEST_SUBNET, paths, log=lambda _msg: None, bridge=TEST_BRIDGE)
        booted.append(Lab(paths, state))
        return booted[-1]

    yield boot
    lab.down(paths, log=lambda _msg: None)
