"""The binary cache: <root>/<name>/<version>/<arch>/ with a SHA256SUMS manifest per directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
from pathlib import Path

from kubesmith.errors import UserError

MANIFEST = "SHA256SUMS"
SHA256 = re.compile(r"[0-9a-f]{64}")  # a sum as the manifests hold it


class ChecksumMismatch(UserError):
    """A file's sha256 differs from the one it must have."""

    def __init__(self, path: Path | str, expected: str, actual: str,
                 algorithm: str = "sha256") -> None:
        super().__init__(
            f"checksum mismatch for {path}: expected {algorithm} {expected}, got {actual}"
        )
        self.path, self.expected, self.actual = str(path), expected, actual


class CacheIncomplete(UserError):
    """A cache directory lacks a file or its manifest."""


def default_root() -> Path:
    """The cache root: $KUBESMITH_CACHE, else /var/cache/kubesmith for root, else ~/.cache."""
    if env := os.environ.get("KUBESMITH_CACHE"):
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/kubesmith")
    return Path.home() / ".cache" / "kubesmith"


def host_arch() -> str:
    """This machine's architecture in Go's naming (amd64, arm64)."""
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def component_dir(root: Path, name: str, version: str, arch: str) -> Path:
    """Where one component's files live in the cache."""
    return root / name / version / arch


def spec_key(spec: dict[str, object]) -> str:
    """A short cache key over everything a built artifact's spec holds (JSON, keys sorted)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, files: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Hash the files and write the directory's SHA256SUMS (sha256sum's format)."""
    sums = {name: sha256_file(directory / name) for name in sorted(files)}
    text = "".join(f"{digest}  {name}\n" for name, digest in sums.items())
    (directory / MANIFEST).write_text(text)
    return sums


def read_manifest(directory: Path) -> dict[str, str]:
    """Parse a directory's SHA256SUMS into {file: sha256}."""
    path = directory / MANIFEST
    if not path.exists():
        raise CacheIncomplete(f"{path} is missing")
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise CacheIncomplete(f"{path}: not text ({error.reason})") from None
    sums = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise CacheIncomplete(f"{path}:{number}: malformed line {line!r}")
        sums[name] = digest
    return sums


# Per cache directory: each file's sum with the inode, ctime (ns) and size it had when last read;
# while all three hold, so does the content (any write or rename changes the ctime), and a run
# does not read hundreds of MB again to verify what it verified before.
VERIFIED = ".verified"


def verify(directory: Path, files: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Check every expected file against the manifest; return the sums or raise."""
    sums = read_manifest(directory)
    try:
        known = json.loads((directory / VERIFIED).read_text())
    except (OSError, ValueError):
        known = {}
    if not isinstance(known, dict):  # (damaged: every file is read again)
        known = {}
    seen = {}
    for name in files:
        if name not in sums:
            raise CacheIncomplete(f"{directory / MANIFEST} has no entry for {name}")
        path = directory / name
        if not path.exists():
            raise CacheIncomplete(f"{path} is missing")
        status = path.stat()
        stamp = [status.st_ino, status.st_ctime_ns, status.st_size, sums[name]]
        if known.get(name) != stamp:
            actual = sha256_file(path)
            if actual != sums[name]:
                raise ChecksumMismatch(path, sums[name], actual)
        seen[name] = stamp
    if any(known.get(name) != stamp for name, stamp in seen.items()):
        with contextlib.suppress(OSError):  # a cache this user cannot write: read next time
            temp = directory / f"{VERIFIED}.{os.getpid()}"
            temp.write_text(json.dumps({**known, **seen}))
            os.replace(temp, directory / VERIFIED)
    return sums


def is_complete(directory: Path, files: tuple[str, ...] | list[str]) -> bool:
    """Whether the directory holds every file, each matching its manifest entry."""
    try:
        verify(directory, files)
    except (CacheIncomplete, ChecksumMismatch):
        return False
    return True


def publish(staging: Path, final: Path, files: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Write the manifest in a staging directory and move it into place atomically."""
    sums = write_manifest(staging, files)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return sums
