"""No Go, no problem: without a Go toolchain new enough, the build source says in one line what to
install and why (no traceback), and long go commands say what they build and for how long."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kubesmith import settings
from kubesmith.binaries import gobuild, progress, toolchain


def _path_without_go() -> str:
    """This machine's PATH minus every directory holding a `go`."""
    kept = [d for d in os.environ["PATH"].split(os.pathsep)
            if d and not Path(d, "go").exists()]
    path = os.pathsep.join(kept)
    assert shutil.which("go", path=path) is None
    return path


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=_path_without_go(), KUBESMITH_CACHE=str(tmp_path / "cache"))
    return subprocess.run([sys.executable, *args], cwd=settings.PROJECT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_binaries_without_go_is_one_line(tmp_path: Path) -> None:
    result = _run([str(settings.PROJECT / "deploy.py"), "binaries"], tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("binaries: kubernetes v1.34.4")  # what it was about to do
    assert lines[1:] == [
        f"error: building the pinned versions from Go modules needs Go ≥ {toolchain.MIN_GO} "
        "(no go on PATH; Debian 12's golang is 1.19): install Go ≥ "
        f"{toolchain.MIN_GO} from https://go.dev/dl/ and put it on PATH, or use "
        "`deploy.py binaries --source download` (upstream release files)"]
    assert not list((tmp_path / "cache").rglob("SHA256SUMS"))


def test_setup_check_without_go(tmp_path: Path) -> None:
    """What scripts/setup.sh asks to choose its source."""
    result = _run(["-m", "kubesmith.binaries.toolchain"], tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "needs Go ≥" in result.stderr and "--source download" in result.stderr


def test_setup_check_with_this_machines_go() -> None:
    found = toolchain.go_version()
    if found is None or toolchain.version_key(found) < toolchain.version_key(toolchain.MIN_GO):
        pytest.skip(f"no go ≥ {toolchain.MIN_GO} on PATH ({found})")
    assert toolchain.main() == 0


def test_version_order() -> None:
    key = toolchain.version_key
    assert key("go1.19.8") < key("1.26.0") <= key("go1.26") < key("go1.26.8") < key("1.27rc1")
    assert key("go1.26.8") == (1, 26, 8)


def test_a_module_newer_than_the_local_go_is_named(tmp_path: Path) -> None:
    if toolchain.go_version() is None:
        pytest.skip("no go on PATH")
    gomod = tmp_path / "go.mod"
    gomod.write_text("module example.com/future\n\ngo 99.1.0\n\ntoolchain go99.1.2\n")
    with pytest.raises(toolchain.GoMissing, match=re.escape(
            "building example.com/future v9.9.9 (its go.mod says go 99.1.0) from Go modules "
            "needs Go ≥ 99.1.0 (go")):
        gobuild.require_go_line("example.com/future", "v9.9.9", str(gomod))
    gomod.write_text("module example.com/old\n\ngo 1.14\n")
    gobuild.require_go_line("example.com/old", "v0.9.1", str(gomod))


def test_long_go_commands_say_they_are_still_running(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.heartbeat("building kube-apiserver", every=0.1):
        time.sleep(0.35)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2
    assert all(re.fullmatch(r"  still building kube-apiserver, \d+ s", line) for line in lines)
    time.sleep(0.2)
    assert capsys.readouterr().err == ""  # stopped with the block


def test_setup_without_go_takes_the_download_path(tmp_path: Path) -> None:
    """scripts/setup.sh's cache step with a PATH that has no go: it says why it downloads, and the
    download path refuses the components without a pinned sum in one line naming what to
    install, before fetching anything (no internet is touched)."""
    env = dict(os.environ, PATH=_path_without_go(), KUBESMITH_CACHE=str(tmp_path / "cache"),
               KUBESMITH_PYTHON=sys.executable)
    env.pop("KUBESMITH_BINARIES_SOURCE", None)
    result = subprocess.run(["bash", str(settings.PROJECT / "scripts/fill-cache.sh")], env=env,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stdout.splitlines() == [
        f"setup: building the pinned versions from Go modules needs Go ≥ {toolchain.MIN_GO} (no "
        "go on PATH; Debian 12's golang is 1.19): install Go ≥ "
        f"{toolchain.MIN_GO} from https://go.dev/dl/ and put it on PATH, or use "
        "`deploy.py binaries --source download` (upstream release files)",
        "setup: taking the download path (binaries --source download)"]
    assert result.stderr.splitlines() == [
        "error: binaries --source download: no published sum is pinned for etcd, flannel, "
        "containerd, runc, kube-bench, coredns, metrics-server (amd64) in "
        "kubesmith/binaries/upstream.py, so the download path refuses them: build them with "
        f"--source build (needs Go ≥ {toolchain.MIN_GO}, https://go.dev/dl/), or pin the sums "
        "upstream publishes (scripts/update-pins)"]
    assert not (tmp_path / "cache").exists()
