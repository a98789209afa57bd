"""Locally assembled images: docker-archive layout that `ctr images import` reads."""

import json
import tarfile
from pathlib import Path

from kubesmith.binaries import images


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
