"""The binary cache's manifest and checksum logic, and the mirror source (tests/unit/
test_download.py: the download source)."""

import hashlib
from pathlib import Path

import pytest

from kubesmith.binaries import cache, sources
from kubesmith.binaries.recipes import COMPONENTS


def _fill(directory: Path, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / name).write_bytes(data)


def test_manifest_round_trip(tmp_path: Path) -> None:
    _fill(tmp_path, {"a": b"alpha", "b": b"beta"})
    sums = cache.write_manifest(tmp_path, ["b", "a"])
    assert sums["a"] == hashlib.sha256(b"alpha").hexdigest()
    text = (tmp_path / "SHA256SUMS").read_text()
    assert text.splitlines()[0] == f"{sums['a']}  a"  # sha256sum -c compatible
    assert cache.read_manifest(tmp_path) == sums
    assert cache.verify(tmp_path, ["a", "b"]) == sums


def test_mismatch_names_file_and_both_sums(tmp_path: Path) -> None:
    _fill(tmp_path, {"kubelet": b"real"})
    sums = cache.write_manifest(tmp_path, ["kubelet"])
    (tmp_path / "kubelet").write_bytes(b"tampered")
    with pytest.raises(cache.ChecksumMismatch) as error:
        cache.verify(tmp_path, ["kubelet"])
    message = str(error.value)
    assert str(tmp_path / "kubelet") in message
    assert sums["kubelet"] in message
    assert hashlib.sha256(b"tampered").hexdigest() in message
    assert not cache.is_complete(tmp_path, ["kubelet"])


def test_a_verified_file_is_not_read_again_until_it_changes(tmp_path: Path, monkeypatch) -> None:
    _fill(tmp_path, {"kubelet": b"real"})
    cache.write_manifest(tmp_path, ["kubelet"])
    cache.verify(tmp_path, ["kubelet"])
    read: list[Path] = []
    monkeypatch.setattr(cache, "sha256_file", lambda p: read.append(p) or "0" * 64)
    cache.verify(tmp_path, ["kubelet"])  # verified before, unchanged: not read
    assert read == []
    (tmp_path / "kubelet").write_bytes(b"fake")  # same size, new content: read again
    with pytest.raises(cache.ChecksumMismatch):
        cache.verify(tmp_path, ["kubelet"])
    assert read == [tmp_path / "kubelet"]


def test_missing_file_or_entry_is_incomplete(tmp_path: Path) -> None:
    _fill(tmp_path, {"etcd": b"x"})
    with pytest.raises(cache.CacheIncomplete, match="SHA256SUMS is missing"):
        cache.verify(tmp_path, ["etcd"])
    cache.write_manifest(tmp_path, ["etcd"])
    with pytest.raises(cache.CacheIncomplete, match="no entry for etcdctl"):
        cache.verify(tmp_path, ["etcd", "etcdctl"])
    (tmp_path / "etcd").unlink()
    with pytest.raises(cache.CacheIncomplete, match="etcd is missing"):
        cache.verify(tmp_path, ["etcd"])


def test_malformed_manifest_line(tmp_path: Path) -> None:
    (tmp_path / "SHA256SUMS").write_text("nothex kubelet\n")
    with pytest.raises(cache.CacheIncomplete, match="malformed line"):
        cache.read_manifest(tmp_path)


def test_a_damaged_manifest_or_record_is_no_traceback(tmp_path: Path) -> None:
    _fill(tmp_path, {"etcd": b"x"})
    cache.write_manifest(tmp_path, ["etcd"])
    (tmp_path / cache.VERIFIED).write_text("[]")  # not the record's shape: read every file again
    assert cache.verify(tmp_path, ["etcd"]) == {"etcd": hashlib.sha256(b"x").hexdigest()}
    (tmp_path / "SHA256SUMS").write_bytes(b"\xff\xfe")
    with pytest.raises(cache.CacheIncomplete, match="SHA256SUMS: not text"):
        cache.verify(tmp_path, ["etcd"])


def test_publish_replaces_atomically(tmp_path: Path) -> None:
    staging = tmp_path / ".staging"
    _fill(staging, {"runc": b"v1"})
    final = cache.component_dir(tmp_path, "runc", "v1.3.6", "amd64")
    cache.publish(staging, final, ["runc"])
    assert not staging.exists()
    assert cache.is_complete(final, ["runc"])
    assert final == tmp_path / "runc" / "v1.3.6" / "amd64"


def _mirror(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    component = COMPONENTS["crictl"]
    versions = {"crictl_version": "v1.34.0"}
    src = cache.component_dir(tmp_path / "mirror", "crictl", "v1.34.0", "amd64")
    _fill(src, {"crictl": b"crictl binary"})
    cache.write_manifest(src, component.files)
    return tmp_path / "mirror", versions


def test_mirror_source_fills_cache(tmp_path: Path) -> None:
    mirror, versions = _mirror(tmp_path)
    final = sources.ensure("crictl", versions, "amd64", tmp_path / "cache", "mirror", mirror)
    assert (final / "crictl").read_bytes() == b"crictl binary"
    assert cache.is_complete(final, ["crictl"])


def test_mirror_with_bad_checksum_is_refused(tmp_path: Path) -> None:
    mirror, versions = _mirror(tmp_path)
    (mirror / "crictl/v1.34.0/amd64/crictl").write_bytes(b"evil")
    with pytest.raises(cache.ChecksumMismatch, match="crictl"):
        sources.ensure("crictl", versions, "amd64", tmp_path / "cache", "mirror", mirror)
    assert not (tmp_path / "cache/crictl/v1.34.0/amd64").exists()


def test_tampered_cache_is_a_hard_error(tmp_path: Path) -> None:
    mirror, versions = _mirror(tmp_path)
    final = sources.ensure("crictl", versions, "amd64", tmp_path / "cache", "mirror", mirror)
    (final / "crictl").write_bytes(b"swapped")
    with pytest.raises(cache.ChecksumMismatch):
        sources.ensure("crictl", versions, "amd64", tmp_path / "cache", "mirror", mirror)
