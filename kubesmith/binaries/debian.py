"""Debian packages as cached components: fetched once on the control machine with
`apt-get download` (apt checks each file's sha256 against the signed archive index), cached as
<package>.deb under the component's version, installed on the hosts from these local files."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from kubesmith.errors import UserError


class DebianError(UserError):
    """A package that apt on the control machine could not provide at the pinned version."""


def deb_file(package: str) -> str:
    """The cache file name of a package (one per package: versions live in the cache path)."""
    return f"{package}.deb"


def _field(path: Path, name: str) -> str:
    """One control field of a .deb file."""
    return subprocess.run(["dpkg-deb", "-f", str(path), name], capture_output=True, text=True,
                          check=True).stdout.strip()


def _download(wanted: list[str], directory: str) -> subprocess.CompletedProcess:
    """apt-get download into a directory."""
    return subprocess.run(["apt-get", "download", *wanted], cwd=directory, capture_output=True,
                          text=True, check=False)


def fetch(packages: tuple[str, ...], version: str, arch: str, out: Path) -> None:
    """Download the first package at `version` and its listed dependencies (the archive's
    current versions) into out/<package>.deb; refuse anything else apt hands back."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise DebianError(f"{packages[0]}: apt-get and dpkg-deb are needed on the control "
                          "machine to fetch Debian packages")
    wanted = [f"{packages[0]}:{arch}={version}", *(f"{p}:{arch}" for p in packages[1:])]
    with tempfile.TemporaryDirectory(prefix="kubesmith-deb-") as tmp:
        result = _download(wanted, tmp)
        if result.returncode != 0:  # package lists missing or stale: refresh them once
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            result = _download(wanted, tmp)
        if result.returncode != 0:
            raise DebianError(f"apt-get download {' '.join(wanted)} failed (a version the "
                              f"archive no longer serves? pin the current one): "
                              f"{result.stderr.strip()[-300:]}")
        for path in Path(tmp).glob("*.deb"):
            name = _field(path, "Package")
            if name not in packages:
                raise DebianError(f"apt-get download returned {path.name}, not one of {packages}")
            if name == packages[0] and _field(path, "Version") != version:
                raise DebianError(f"{path.name}: not version {version}")
            shutil.move(str(path), out / deb_file(name))
    missing = [p for p in packages if not (out / deb_file(p)).exists()]
    if missing:
        raise DebianError(f"apt-get download did not provide {', '.join(missing)}")
