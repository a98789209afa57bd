"""Container images assembled locally as docker-archive tarballs (no registry is reachable)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

from kubesmith.binaries import gobuild
from kubesmith.binaries.recipes import COMPONENTS

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = ("sh", "ping", "wget", "nc", "httpd", "sleep", "ip", "cat", "echo", "hostname",
                   "ls", "nslookup", "timeout", "true")
# Images of one Go binary (built from the component of the same image name): config, and empty
# directories with their modes. No CA bundle: CoreDNS forwards plain DNS, and metrics-server
# trusts the cluster CA it is given. CoreDNS runs as root by default (it binds :53 and carries no
# file capability); metrics-server runs as nobody, as upstream's image does, and writes its
# self-signed serving certificate to /tmp (--cert-dir=/tmp).
GO_IMAGES: dict[str, tuple[dict, dict[str, int]]] = {
    "coredns": ({"Entrypoint": ["/coredns"], "ExposedPorts": {"53/tcp": {}, "53/udp": {}}}, {}),
    "metrics-server": ({"Entrypoint": ["/metrics-server"], "User": "65534:65534"},
                       {"tmp": 0o1777}),
}


def image_ref(image: str, version: str) -> str:
    """The name an image is imported under (containerd must find it without pulling)."""
    if image == "pause":
        return f"registry.k8s.io/pause:{version}"
    return f"kubesmith.local/{image}:{version}"


def tarinfo(name: str, size: int = 0, mode: int = 0o755, kind: bytes = tarfile.REGTYPE,
            link: str = "") -> tarfile.TarInfo:
    """A root-owned tar entry with a zero mtime (reproducible archives)."""
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.type, info.linkname = size, mode, kind, link
    info.mtime = info.uid = info.gid = 0
    return info


def _layer(files: dict[str, bytes], links: dict[str, str],
           dirs: dict[str, int] | None = None) -> bytes:
    """A reproducible layer tar: directories (given modes, else 0755), files (0755), symlinks."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        modes = {str(Path(p).parent): 0o755 for p in [*files, *links]}
        modes.pop(".", None)
        modes.update(dirs or {})
        for directory, mode in sorted(modes.items()):
            tar.addfile(tarinfo(directory + "/", mode=mode, kind=tarfile.DIRTYPE))
        for path, data in sorted(files.items()):
            tar.addfile(tarinfo(path, len(data)), io.BytesIO(data))
        for path, target in sorted(links.items()):
            tar.addfile(tarinfo(path, kind=tarfile.SYMTYPE, link=target, mode=0o777))
    return buf.getvalue()


def docker_archive(ref: str, files: dict[str, bytes], links: dict[str, str],
                   config: dict, out: Path, dirs: dict[str, int] | None = None,
                   arch: str = "amd64") -> None:
    """Write a one-layer docker-archive (what `ctr images import` reads)."""
    write_archive([ref], _layer(files, links, dirs), config, out, arch)


def write_archive(refs: list[str], layer: bytes, config: dict, out: Path,
                  arch: str = "amd64") -> None:
    """Write a docker-archive of one layer tar, tagged with every ref."""
    layer_id = hashlib.sha256(layer).hexdigest()
    image_config = {
        "architecture": arch, "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "created": "1970-01-01T00:00:00Z",
    }
    config_bytes = json.dumps(image_config, sort_keys=True).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": refs,
                            "Layers": [f"{layer_id}/layer.tar"]}]).encode()
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(tarinfo(f"{layer_id}/", kind=tarfile.DIRTYPE))
        for name, data in ((f"{layer_id}/layer.tar", layer), (config_name, config_bytes),
                           ("manifest.json", manifest)):
            tar.addfile(tarinfo(name, len(data), 0o644), io.BytesIO(data))


def build_pause(version: str, out: Path, kubernetes_version: str) -> None:
    """The sandbox image: Kubernetes' own pause.c (from its module) compiled statically."""
    env = gobuild.go_env(COMPONENTS["kubernetes"].go, "amd64")
    with tempfile.TemporaryDirectory() as tmp:
        info = gobuild.module_info("k8s.io/kubernetes", kubernetes_version, Path(tmp), env)
        pause_image(Path(info["Dir"]) / "build/pause/linux/pause.c", version, out)


def pause_image(source: Path, version: str, out: Path) -> None:
    """Compile pause.c statically (gcc, no Go) and pack it as out/pause.tar."""
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "pause"
        subprocess.run(["gcc", "-Os", "-static", "-Wall", "-Werror", f"-DVERSION=v{version}",
                        "-o", str(binary), str(source)], check=True)
        subprocess.run(["strip", str(binary)], check=True)
        docker_archive(image_ref("pause", version), {"pause": binary.read_bytes()}, {},
                       {"Entrypoint": ["/pause"], "User": "65535:65535"}, out / "pause.tar")


def build_busybox(version: str, out: Path) -> None:
    """The test workload image: Debian's busybox-static, with applet links."""
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} missing: apt-get install busybox-static")
    have = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "busybox-static"],
                          capture_output=True, text=True, check=True).stdout
    if f":{version}-" not in have and not have.startswith(f"{version}-"):
        raise RuntimeError(f"busybox-static {have} installed, group_data pins {version}")
    links = {f"bin/{applet}": "busybox" for applet in BUSYBOX_APPLETS}
    docker_archive(image_ref("busybox", version), {"bin/busybox": BUSYBOX.read_bytes()}, links,
                   {"Cmd": ["sh"], "Env": ["PATH=/bin"]}, out / "busybox.tar")


def build_go_image(image: str, version: str, out: Path, arch: str = "amd64") -> None:
    """An add-on image: its component's static Go binary at / plus the image's layout."""
    component = next(c for c in COMPONENTS.values() if c.image == image)
    if component.go is None:
        raise ValueError(f"{component.name} has no Go recipe for image {image!r}")
    with tempfile.TemporaryDirectory(prefix=f"kubesmith-image-{image}-") as tmp:
        gobuild.build(component, version, arch, Path(tmp))
        go_image(image, version, Path(tmp), out, arch)


def go_image(image: str, version: str, binaries: Path, out: Path, arch: str = "amd64") -> None:
    """Pack an add-on image from its binary in binaries/ (built here or a release file)."""
    config, dirs = GO_IMAGES[image]
    files = {image: (binaries / image).read_bytes()}
    docker_archive(image_ref(image, version), files, {}, config, out / f"{image}.tar", dirs, arch)


def build(image: str, version: str, out: Path, versions: dict[str, str],
          arch: str = "amd64") -> None:
    """Assemble the named image into out/."""
    if image == "pause":
        build_pause(version, out, versions["kubernetes_version"])
    elif image == "busybox":
        build_busybox(version, out)
    elif image in GO_IMAGES:
        build_go_image(image, version, out, arch)
    elif image == "e2e":
        from kubesmith.binaries import e2e_images

        e2e_images.build_all(version, out, arch)
    else:
        raise ValueError(f"unknown image {image!r}")
