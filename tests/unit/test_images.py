"""Locally assembled images: docker-archive layout that `ctr images import` reads."""

import json
import tarfile
from pathlib import Path

import pytest

from kubesmith.binaries import images
from kubesmith.binaries.recipes import Component


def test_docker_archive_layout(tmp_path: Path) -> None:
    out = tmp_path / "img.tar"
    images.docker_archive("registry.k8s.io/pause:3.10.1", {"pause": b"\x7fELF"}, {},
                          {"Entrypoint": ["/pause"]}, out)
    with tarfile.open(out) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == ["registry.k8s.io/pause:3.10.1"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))
        assert config["config"]["Entrypoint"] == ["/pause"]
        layer = tar.extractfile(manifest[0]["Layers"][0])
        with tarfile.open(fileobj=layer) as inner:
            member = inner.getmember("pause")
            assert member.mode == 0o755


def test_archive_is_reproducible(tmp_path: Path) -> None:
    for name in ("a.tar", "b.tar"):
        images.docker_archive("kubesmith.local/busybox:1", {"bin/busybox": b"bb"},
                              {"bin/sh": "busybox"}, {"Cmd": ["sh"]}, tmp_path / name)
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_image_refs() -> None:
    assert images.image_ref("pause", "3.10.1") == "registry.k8s.io/pause:3.10.1"
    assert images.image_ref("busybox", "1.35.0") == "kubesmith.local/busybox:1.35.0"
    assert images.image_ref("coredns", "v1.14.7") == "kubesmith.local/coredns:v1.14.7"
    assert images.image_ref("metrics-server", "v0.8.0") == "kubesmith.local/metrics-server:v0.8.0"


def _fake_gobuild(component: Component, version: str, arch: str, out_dir: Path) -> None:
    """Stand-in for the Go build: a tiny fake binary per package of the recipe."""
    assert component.go is not None
    for name in component.go.packages:
        (out_dir / name).write_bytes(b"\x7fELF fake " + name.encode())


def _layer_members(tar: tarfile.TarFile, manifest: list[dict]) -> dict[str, tarfile.TarInfo]:
    """The members of an archive's single layer, by name."""
    assert len(manifest[0]["Layers"]) == 1
    with tarfile.open(fileobj=tar.extractfile(manifest[0]["Layers"][0])) as inner:
        return {m.name.rstrip("/"): m for m in inner.getmembers()}


@pytest.mark.parametrize(("image", "version", "entrypoint", "user", "layout"), [
    ("coredns", "v1.14.7", ["/coredns"], None, {"coredns": 0o755}),
    ("metrics-server", "v0.8.0", ["/metrics-server"], "65534:65534",
     {"metrics-server": 0o755, "tmp": 0o1777}),
])
def test_addon_image_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: str,
                            version: str, entrypoint: list[str], user: str | None,
                            layout: dict[str, int]) -> None:
    monkeypatch.setattr(images.gobuild, "build", _fake_gobuild)
    images.build(image, version, tmp_path, {}, "amd64")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{image}.tar"]
    with tarfile.open(tmp_path / f"{image}.tar") as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        assert manifest[0]["RepoTags"] == [f"kubesmith.local/{image}:{version}"]
        config = json.load(tar.extractfile(manifest[0]["Config"]))
        members = _layer_members(tar, manifest)
    # The same docker-archive shape as pause: one layer dir, its layer.tar, config, manifest.
    layer_dir = manifest[0]["Layers"][0].split("/")[0]
    assert names == [layer_dir, manifest[0]["Layers"][0], manifest[0]["Config"], "manifest.json"]
    assert config["config"]["Entrypoint"] == entrypoint
    assert config["config"].get("User") == user
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["rootfs"]["diff_ids"] == [f"sha256:{layer_dir}"]
    assert {name: m.mode for name, m in members.items()} == layout
    binary = members[image]
    assert binary.isfile() and (binary.uid, binary.gid, binary.mtime) == (0, 0, 0)
    if "tmp" in members:
        assert members["tmp"].isdir()


def test_addon_image_is_reproducible(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images.gobuild, "build", _fake_gobuild)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        images.build("metrics-server", "v0.8.0", tmp_path / name, {})
    first, second = (tmp_path / n / "metrics-server.tar" for n in ("a", "b"))
    assert first.read_bytes() == second.read_bytes()


def test_unknown_image_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown image"):
        images.build("nginx", "1", tmp_path, {})
