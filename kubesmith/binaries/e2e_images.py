"""The conformance suite's test images, assembled here (no registry is reachable): agnhost and
nonewprivs from the kubernetes module, tools from Debian's packages (busybox-static, curl, dig,
netcat-openbsd, getent, bash), each tagged with the exact name e2e.test asks for (read from the
module's test/utils/image/manifest.go). docs/conformance.md says how each differs from upstream."""

from __future__ import annotations

import io
import json
import re
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kubesmith.binaries import gobuild, images, sources
from kubesmith.binaries.recipes import COMPONENTS, E2E_IMAGE_FILES

MANIFEST = "test/utils/image/manifest.go"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Tarball -> the manifest.go image ids it is tagged as (one tarball can carry two tags).
TAGS: dict[str, tuple[str, ...]] = {
    "agnhost.tar": ("Agnhost",),
    "busybox.tar": ("BusyBox",),
    "jessie-dnsutils.tar": ("JessieDnsutils",),
    "kitten.tar": ("Kitten",),
    "nautilus.tar": ("Nautilus",),
    "httpd.tar": ("Httpd", "HttpdNew"),
    "nginx.tar": ("Nginx", "NginxNew"),
    "nonewprivs.tar": ("Nonewprivs",),
    "sample-apiserver.tar": ("APIServer",),
    "etcd.tar": ("Etcd",),
}
# Debian's tools in agnhost (upstream: alpine's bind-tools, curl, netcat-openbsd, bash).
AGNHOST_TOOLS = ("/usr/bin/curl", "/usr/bin/dig", "/usr/bin/nc", "/usr/bin/getent")
DNSUTILS_TOOLS = ("/usr/bin/dig", "/usr/bin/getent")
PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
bin:x:2:2:bin:/bin:/bin/false
sys:x:3:3:sys:/dev:/bin/false
www-data:x:33:33:www-data:/var/www:/bin/false
user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh
nobody:x:65534:65534:nobody:/home:/bin/false
"""
GROUP = """root:x:0:
daemon:x:1:
bin:x:2:
sys:x:3:
www-data:x:33:
user-defined-in-image:x:1000:
group-defined-in-image:x:50000:user-defined-in-image
nogroup:x:65534:
"""


@dataclass
class Tree:
    """An image's file system: files (content, mode), symlinks and directories (mode)."""

    files: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, int] = field(default_factory=dict)

    def file(self, path: str, data: bytes, mode: int = 0o755) -> None:
        """Add a file (replacing a link of the same path)."""
        path = path.lstrip("/")
        self.links.pop(path, None)
        self.files[path] = (data, mode)

    def link(self, path: str, target: str) -> None:
        """Add a symlink unless a file already holds the path."""
        path = path.lstrip("/")
        if path not in self.files:
            self.links[path] = target

    def copy_elf(self, binary: str) -> None:
        """A dynamically linked binary of this machine plus every library ldd resolves."""
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for library in re.findall(r"(/\S+) \(0x", ldd):
            self.file(library, Path(library).read_bytes())
        self.file(binary, Path(binary).read_bytes())

    def layer(self) -> bytes:
        """A reproducible layer tar: directories, files, then links."""
        modes = {str(p): 0o755 for name in [*self.files, *self.links] for p in Path(name).parents}
        modes.pop(".", None)
        modes.update(self.dirs)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for directory, mode in sorted(modes.items()):
                tar.addfile(images.tarinfo(directory + "/", mode=mode, kind=tarfile.DIRTYPE))
            for path, (data, mode) in sorted(self.files.items()):
                tar.addfile(images.tarinfo(path, len(data), mode), io.BytesIO(data))
            for path, target in sorted(self.links.items()):
                tar.addfile(images.tarinfo(path, kind=tarfile.SYMTYPE, link=target, mode=0o777))
        return buf.getvalue()


def manifest_refs(text: str) -> dict[str, str]:
    """manifest.go's image ids -> full image names, with its default registries."""
    registries = dict(re.findall(r'^\s*(\w+):\s+"([^"]+)",', text, re.M))
    pattern = r'configs\[(\w+)\] = Config\{list\.(\w+), "([^"]+)", "([^"]+)"\}'
    return {image: f"{registries[registry]}/{name}:{tag}"
            for image, registry, name, tag in re.findall(pattern, text)}


def busybox_base() -> Tree:
    """Debian's busybox-static with every applet linked in /bin (as upstream's busybox image)
    and at its usual path; bash as /bin/sh; users, groups, /tmp.

    Debian's busybox sh runs its own applets before PATH (its nc lacks -u, -v, -z) and, being
    1.35, drops environment variables whose names are not shell names (`data-1` from a Secret):
    tests' `sh -c` commands need neither, so sh is Debian's bash."""
    if not images.BUSYBOX.exists():
        raise FileNotFoundError(f"{images.BUSYBOX} missing: apt-get install busybox-static")
    tree = Tree()
    tree.file("bin/busybox", images.BUSYBOX.read_bytes())
    applets = subprocess.run([str(images.BUSYBOX), "--list-full"], capture_output=True,
                             text=True, check=True).stdout.split()
    for applet in applets:
        for path in {applet, f"bin/{Path(applet).name}"} - {"bin/busybox"}:
            tree.link(path, "/bin/busybox")
    tree.copy_elf("/bin/bash")
    tree.link("bin/sh", "bash")
    tree.file("etc/passwd", PASSWD.encode(), 0o644)
    tree.file("etc/group", GROUP.encode(), 0o644)
    tree.file("etc/nsswitch.conf", b"passwd: files\ngroup: files\nhosts: files dns\n", 0o644)
    tree.dirs.update({"tmp": 0o1777, "root": 0o700})
    return tree


def agnhost_tree(e2e: Path, module: Path) -> Tree:
    """agnhost at /agnhost (and /agnhost-2), porter's certificates, /uploads, the tools."""
    tree = busybox_base()
    for tool in AGNHOST_TOOLS:
        tree.copy_elf(tool)
    tree.file("agnhost", (e2e / "agnhost").read_bytes())
    tree.link("agnhost-2", "agnhost")
    for name in ("localhost.crt", "localhost.key"):
        tree.file(name, (module / "test/images/agnhost/porter" / name).read_bytes(), 0o644)
    tree.dirs["uploads"] = 0o755
    return tree


def _web_page(tree: Tree, root: str, page: bytes) -> tuple[Tree, dict]:
    """busybox httpd serving root on port 80 in the foreground (for httpd and nginx)."""
    tree.file(f"{root}/index.html", page, 0o644)
    return tree, {"Cmd": ["httpd", "-f", "-p", "80", "-h", root]}


def _trees(e2e: Path, module: Path, etcd: Path) -> dict[str, Callable[[], tuple[Tree, dict]]]:
    """Per tarball: its file system and its config (besides PATH)."""
    images_dir = module / "test/images"

    def agnhost_site(name: str) -> tuple[Tree, dict]:
        tree = agnhost_tree(e2e, module)
        for page in (f"{name}.jpg", "data.json"):
            tree.file(page, (images_dir / name / "html" / page).read_bytes(), 0o644)
        return tree, {"Entrypoint": ["/agnhost"], "Cmd": ["test-webserver"]}

    def dnsutils() -> tuple[Tree, dict]:
        tree = busybox_base()
        for tool in DNSUTILS_TOOLS:
            tree.copy_elf(tool)
        return tree, {"Cmd": ["sh"]}

    def nonewprivs() -> tuple[Tree, dict]:
        tree = busybox_base()
        tree.file("usr/local/bin/nnp", (e2e / "nnp").read_bytes(), 0o4755)
        return tree, {"Cmd": ["nnp"]}

    def single(binary: Path, path: str) -> tuple[Tree, dict]:
        tree = busybox_base()
        tree.file(path, binary.read_bytes())
        return tree, {"Entrypoint": [f"/{path}"]} if path == "sample-apiserver" else {}

    return {
        "sample-apiserver.tar": lambda: single(e2e / "sample-apiserver", "sample-apiserver"),
        "etcd.tar": lambda: single(etcd / "etcd", "usr/local/bin/etcd"),
        "agnhost.tar": lambda: (agnhost_tree(e2e, module),
                                {"Entrypoint": ["/agnhost"], "Cmd": ["pause"]}),
        "busybox.tar": lambda: (busybox_base(), {"Cmd": ["sh"]}),
        "jessie-dnsutils.tar": dnsutils,
        "kitten.tar": lambda: agnhost_site("kitten"),
        "nautilus.tar": lambda: agnhost_site("nautilus"),
        "httpd.tar": lambda: _web_page(busybox_base(), "usr/local/apache2/htdocs",
                                       (images_dir / "httpd/index.html").read_bytes()),
        "nginx.tar": lambda: _web_page(busybox_base(), "usr/share/nginx/html",
                                       b"<html><body><h1>Welcome to nginx!</h1></body></html>\n"),
        "nonewprivs.tar": nonewprivs,
    }


def build_all(version: str, out: Path, arch: str = "amd64") -> None:
    """Every test image tarball for this kubernetes version into out/."""
    e2e = sources.ensure("e2e", {"kubernetes_version": version}, arch)
    env = gobuild.go_env(COMPONENTS["kubernetes"].go, arch)
    with tempfile.TemporaryDirectory() as tmp:
        module = Path(gobuild.module_info("k8s.io/kubernetes", version, Path(tmp), env)["Dir"])
    refs = manifest_refs((module / MANIFEST).read_text())
    # etcd from its module at the image's own tag (3.6.4-0 -> v3.6.4), cached like the daemons.
    etcd_version = "v" + refs["Etcd"].rsplit(":", 1)[1].split("-")[0]
    etcd = sources.ensure("etcd", {"etcd_version": etcd_version}, arch)
    trees = _trees(e2e, module, etcd)
    for tarball in E2E_IMAGE_FILES:
        tree, config = trees[tarball]()
        config = {**config, "Env": [f"PATH={PATH}"]}
        images.write_archive([refs[i] for i in TAGS[tarball]], tree.layer(), config,
                             out / tarball, arch)
        print(f"  image {tarball}: {', '.join(refs[i] for i in TAGS[tarball])}", flush=True)


def archive_refs(tarball: Path) -> list[str]:
    """The names a docker-archive tarball is tagged with (its manifest.json)."""
    with tarfile.open(tarball) as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ValueError(f"{tarball}: manifest.json is not a file")
        return [ref for entry in json.load(member) for ref in entry["RepoTags"]]
