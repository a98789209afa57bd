"""Source (a): upstream release artifacts and the published sums they must match."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS, K8S_BINARIES
from kubesmith.errors import UserError

GH = "https://github.com"
DL = "https://dl.k8s.io"
# A mirror of upstream's URL layout: <base>/<host>/<path> for https://<host>/<path>.
BASE_ENV = "KUBESMITH_DOWNLOAD_BASE"
ALGORITHMS = {"sha256": 64, "sha512": 128}

# Artifact URL -> "<algorithm>:<hex>", only as upstream published it (never computed here).
# Every row cites where its sum was read; scripts/update-pins prints rows from the published
# files. A URL without a row is refused, never fetched unchecked.
PINNED: dict[str, str] = {
    # Kubernetes CHANGELOG/CHANGELOG-1.34.md, "Downloads for v1.34.4", as shipped in the Go module
    # k8s.io/kubernetes@v1.34.7 (h1:VuRpBjuhPkISy82gAaI2hHlvMomQkJ73GfTd3UZAB+k=), line 444.
    f"{DL}/v1.34.4/kubernetes-server-linux-amd64.tar.gz":
        "sha512:65c75e81e3ea488f6d42b493cad64d7577ddfa1e5372037a1c841ac069039997"
        "d359b5b2f2d44e7665bf04c48ed0065cf9d4c9801b1e63bb6a1b099ef00d4863",
    # Same file, line 445.
    f"{DL}/v1.34.4/kubernetes-server-linux-arm64.tar.gz":
        "sha512:a1fad7060ed67b5634f32f3256a295179dd887dab5c82b8550c2eb62c69df34c"
        "fbb311c8f93e7608d558eba32b9e2ddc23976db39e512fd747cc6bf9b4c1765f",
    # Same file, line 422 (the source tarball: pause.c for the pause image).
    f"{DL}/v1.34.4/kubernetes-src.tar.gz":
        "sha512:bb17785569083ad79d384994f960a4e2ceadfea8132ebfbd9cdf2251bdaff6d8"
        "f15f7708b6e3270bcfd68b35de190e66e0a4f692b3e9fdcb05ca9cea16437874",
    # Kubernetes cluster/gce/gci/configure.sh in the Go module k8s.io/kubernetes@v1.35.4
    # (h1:o/8dBC/pHVpYoGV4OAIytAlNPZbdYVTXJHoYvXC4qzM=), lines 33-34: DEFAULT_CRICTL_VERSION
    # v1.34.0, DEFAULT_CRICTL_AMD64_SHA512 (the URL: the same file, lines 394 and 407).
    f"{GH}/kubernetes-sigs/cri-tools/releases/download/v1.34.0/crictl-v1.34.0-linux-amd64.tar.gz":
        "sha512:6b5669fe6c0dbcb8d0e0910529a4559e22154ef7f524fa15f3e13dfced6bea2c"
        "90a531d99786ac8b24fb4cc9ead1ef294387b52a230ba6fdf83278ab9dbd6133",
    # Same file, line 35: DEFAULT_CRICTL_ARM64_SHA512.
    f"{GH}/kubernetes-sigs/cri-tools/releases/download/v1.34.0/crictl-v1.34.0-linux-arm64.tar.gz":
        "sha512:b2daa7f6b559cd32da6d3bcb82b356561c0bc2ffcf7dc5084547fbae6cb8570a"
        "96cf01c9bfaa6d868cf92d1c1fbbced2a32bf7e0328f62c420c180a86314278d",
    # Kubernetes cluster/gce/gci/configure.sh in the Go module k8s.io/kubernetes@v1.36.3
    # (h1:qDQdoMiluAE2Eab6Fa52YV+WjiGz9mZFFoagEA6cI+o=), lines 27-29: DEFAULT_CNI_VERSION v1.9.1,
    # "CNI HASH for amd64 sha512"; URL from cluster/gce/config-default.sh lines 303-304.
    f"{GH}/containernetworking/plugins/releases/download/v1.9.1/cni-plugins-linux-amd64-v1.9.1.tgz":
        "sha512:3ea8a76852b7ddc62c087a34cccca2cb29822ca24214928cd172b28bf9d14860"
        "00ba3eb71a156445af31ff6a92c1dc3e01e702546c6ee016ef13fae06ccfb8fc",
    # Kubernetes cluster/gce/gci/configure.sh in the Go module k8s.io/kubernetes@v1.23.17
    # (h1:nzPjHGp+Qbh44wHxPv4DJp4Znot26yuENYLMu4Av6ZU=), lines 27-28: DEFAULT_CNI_VERSION v0.9.1
    # (the flannel CNI plugin's release). Kubernetes fetched it from its copy of the release
    # (config-default.sh line 315: storage.googleapis.com/k8s-artifacts-cni/release); should
    # GitHub's file differ, the sum refuses it.
    f"{GH}/containernetworking/plugins/releases/download/v0.9.1/cni-plugins-linux-amd64-v0.9.1.tgz":
        "sha512:b5a59660053a5f1a33b5dd5624d9ed61864482d9dc8e5b79c9b3afc3d6f62c98"
        "30e1c30f9ccba6ee76f5fb1ff0504e58984420cc0680b26cb643f1cb07afbd1c",
}


@dataclass(frozen=True)
class Artifact:
    """One file to download: where from, its published sum, and what to take out of it."""

    url: str
    digest: str  # "<algorithm>:<hex>"
    members: dict[str, str] | None  # archive member -> cached file; None: the file itself
    output: str = ""

    @property
    def filename(self) -> str:
        """The artifact's file name (last URL segment)."""
        return self.url.rsplit("/", 1)[-1]


class NotPinned(UserError):
    """No published sum pinned for an artifact: it is never fetched unchecked."""


def _layout(name: str, versions: dict[str, str],
            arch: str) -> list[tuple[str, dict[str, str] | None, str]]:
    """Upstream URLs of a component with the members to extract from each."""
    component = COMPONENTS[name]
    version = versions[component.version_key]
    bare = version.lstrip("v")
    k8s = versions.get("kubernetes_version", "")
    tables: dict[str, tuple[str, dict[str, str] | None, str]] = {
        # The server tarball carries every binary kubesmith installs (build/lib/release.sh
        # copies the server and client binaries into kubernetes/server/bin/).
        "kubernetes": (f"{DL}/{version}/kubernetes-server-linux-{arch}.tar.gz",
                       {f"kubernetes/server/bin/{b}": b for b in K8S_BINARIES}, ""),
        # The source tarball is a `git archive` of the release tag (build/lib/release.sh).
        "pause-image": (f"{DL}/{k8s}/kubernetes-src.tar.gz",
                        {"build/pause/linux/pause.c": "pause.c"}, ""),
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
        "coredns": (f"{GH}/coredns/coredns/releases/download/{version}/"
                    f"coredns_{bare}_linux_{arch}.tgz", {"coredns": "coredns"}, ""),
    }
    if name not in tables:
        raise NotPinned(f"{name} {version}: upstream publishes no release file kubesmith can "
                        "take it from: use --source build")
    return [tables[name]]


def artifacts(name: str, versions: dict[str, str], arch: str,
              pinned: dict[str, str] | None = None) -> list[Artifact]:
    """The artifacts of a component, each with its published sum (refused when unpinned)."""
    table = PINNED if pinned is None else pinned
    result = []
    for url, members, output in _layout(name, versions, arch):
        if url not in table:
            raise NotPinned(f"{name}: no published sum is pinned for {url} in "
                            "kubesmith/binaries/upstream.py: the download path refuses it "
                            "unchecked; use --source build (or pin the sum upstream publishes, "
                            "scripts/update-pins)")
        result.append(Artifact(url, table[url], members, output))
    return result


def unpinned(names: list[str], versions: dict[str, str], arch: str,
             pinned: dict[str, str] | None = None) -> list[str]:
    """The components of names that the download path cannot provide (no pinned sum)."""
    refused = []
    for name in names:
        if COMPONENTS[name].debs or COMPONENTS[name].image == "busybox":
            continue  # from Debian's archive, checked by apt: the same on every path
        try:
            artifacts(name, versions, arch, pinned)
        except NotPinned:
            refused.append(name)
    return refused


def mirror_url(url: str, base: str | None = None) -> str:
    """Where to fetch an upstream URL: itself, or under a mirror of the same layout."""
    base = base if base is not None else os.environ.get(BASE_ENV, "")
    if not base:
        return url
    return base.rstrip("/") + "/" + url.removeprefix("https://")


def digest_file(path: Path, algorithm: str) -> str:
    """The hex digest of a file, read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check(artifact: Artifact, path: Path) -> None:
    """Raise ChecksumMismatch, naming the file and both sums, unless the download matches."""
    algorithm, _, expected = artifact.digest.partition(":")
    actual = digest_file(path, algorithm)
    if actual != expected:
        raise cache.ChecksumMismatch(artifact.url, expected, actual, algorithm)


def unpack(artifact: Artifact, path: Path, out: Path) -> None:
    """Place the artifact (or the listed members of its archive) into out/, mode 0755."""
    if artifact.members is None:
        shutil.copyfile(path, out / artifact.output)
        (out / artifact.output).chmod(0o755)
        return
    with tarfile.open(path) as archive:
        for member, output in artifact.members.items():
            try:
                source = archive.extractfile(member)
            except KeyError:
                source = None
            if source is None:
                raise UserError(f"{member} is not a file in {artifact.filename}")
            with open(out / output, "wb") as dest:
                shutil.copyfileobj(source, dest)
            (out / output).chmod(0o755)
