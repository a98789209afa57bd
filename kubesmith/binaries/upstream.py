"""Source (a): upstream release artifacts and the pinned sha256 sums they must match."""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS, K8S_BINARIES
from kubesmith.errors import UserError

GH = "https://github.com"


@dataclass(frozen=True)
class Artifact:
    """One file to download: where from, its pinned sha256, and what to take out of it."""

    url: str
    sha256: str
    members: dict[str, str] | None  # archive member -> cached file; None: the file itself
    output: str = ""

    @property
    def filename(self) -> str:
        """The artifact's file name (last URL segment)."""
        return self.url.rsplit("/", 1)[-1]


# (component, version, arch, artifact file name) -> sha256, as published upstream.
# Add a row per version you pin; a missing row refuses the download rather than trust it.
PINNED: dict[tuple[str, str, str, str], str] = {}


class NotPinned(UserError):
    """No pinned sha256 for an artifact: it is never fetched unchecked."""


def _layout(name: str, version: str, arch: str) -> list[tuple[str, dict[str, str] | None, str]]:
    """Upstream URLs of a component with the members to extract from each."""
    bare = version.lstrip("v")
    if name == "kubernetes":
        return [(f"https://dl.k8s.io/release/{version}/bin/linux/{arch}/{b}", None, b)
                for b in K8S_BINARIES]
    tables: dict[str, tuple[str, dict[str, str] | None, str]] = {
        "etcd": (f"{GH}/etcd-io/etcd/releases/download/{version}/"
                 f"etcd-{version}-linux-{arch}.tar.gz",
                 {f"etcd-{version}-linux-{arch}/{b}": b for b in ("etcd", "etcdctl", "etcdutl")},
                 ""),
        "flannel": (f"{GH}/flannel-io/flannel/releases/download/{version}/"
                    f"flannel-{version}-linux-{arch}.tar.gz", {"flanneld": "flanneld"}, ""),
        "flannel-cni": (f"{GH}/containernetworking/plugins/releases/download/{version}/"
                        f"cni-plugins-linux-{arch}-{version}.tgz", {"./flannel": "flannel"}, ""),
        "cni-plugins": (f"{GH}/containernetworking/plugins/releases/download/{version}/"
                        f"cni-plugins-linux-{arch}-{version}.tgz",
                        {f"./{b}": b for b in COMPONENTS["cni-plugins"].files}, ""),
        "containerd": (f"{GH}/containerd/containerd/releases/download/{version}/"
                       f"containerd-{bare}-linux-{arch}.tar.gz",
                       {f"bin/{b}": b for b in COMPONENTS["containerd"].files}, ""),
        "runc": (f"{GH}/opencontainers/runc/releases/download/{version}/runc.{arch}", None,
                 "runc"),
        "crictl": (f"{GH}/kubernetes-sigs/cri-tools/releases/download/{version}/"
                   f"crictl-{version}-linux-{arch}.tar.gz", {"crictl": "crictl"}, ""),
    }
    if name not in tables:
        raise NotPinned(f"{name} has no upstream release artifact: it is built locally "
                        "(use source 'build')")
    return [tables[name]]


def artifacts(name: str, version: str, arch: str,
              pinned: dict[tuple[str, str, str, str], str] | None = None) -> list[Artifact]:
    """The artifacts of a component, each with its pinned sha256 (refused when unpinned)."""
    table = PINNED if pinned is None else pinned
    result = []
    for url, members, output in _layout(name, version, arch):
        filename = url.rsplit("/", 1)[-1]
        key = (name, version, arch, filename)
        if key not in table:
            raise NotPinned(f"no pinned sha256 for {filename} ({name} {version} {arch}): add it "
                            "to kubesmith/binaries/upstream.py PINNED before downloading")
        result.append(Artifact(url, table[key], members, output))
    return result


def check(artifact: Artifact, path: Path) -> None:
    """Raise ChecksumMismatch, naming the file and both sums, unless the download matches."""
    actual = cache.sha256_file(path)
    if actual != artifact.sha256:
        raise cache.ChecksumMismatch(path, artifact.sha256, actual)


def unpack(artifact: Artifact, path: Path, out: Path) -> None:
    """Place the artifact (or the listed members of its archive) into out/, mode 0755."""
    if artifact.members is None:
        shutil.copyfile(path, out / artifact.output)
        (out / artifact.output).chmod(0o755)
        return
    with tarfile.open(path) as archive:
        for member, output in artifact.members.items():
            source = archive.extractfile(member)
            if source is None:
                raise FileNotFoundError(f"{member} is not a file in {artifact.filename}")
            with open(out / output, "wb") as dest:
                shutil.copyfileobj(source, dest)
            (out / output).chmod(0o755)
