"""The lab hosts' root filesystem: built once with debootstrap, cached by content key."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from kubesmith.binaries import cache

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = (
    "systemd", "systemd-sysv", "dbus", "openssh-server", "iproute2", "iptables", "python3",
    "udev", "kmod", "procps", "iputils-ping", "ca-certificates", "conntrack", "socat",
    "ethtool", "curl", "util-linux", "sudo",
)

TEMPLATES = Path(__file__).resolve().parent.parent.parent / "templates" / "lab"
# Files written into the root filesystem after debootstrap: path -> template file.
FILES = {
    "/etc/systemd/system/cgroup-rw.service": "cgroup-rw.service",
    "/etc/ssh/sshd_config.d/kubesmith-lab.conf": "sshd-kubesmith-lab.conf",
    "/etc/systemd/journald.conf.d/kubesmith-lab.conf": "journald-kubesmith-lab.conf",
}
ENABLE = ("systemd-networkd", "ssh", "cgroup-rw")
MASK = ("systemd-networkd-wait-online", "getty@tty1", "console-getty", "apt-daily.timer",
        "apt-daily-upgrade.timer", "e2scrub_all.timer", "fstrim.timer")
BUILD_STEPS_VERSION = 1


def cache_key() -> str:
    """A key over everything that shapes the root filesystem."""
    contents = {path: (TEMPLATES / name).read_text() for path, name in FILES.items()}
    spec = {
        "suite": SUITE, "packages": PACKAGES, "files": contents, "enable": ENABLE, "mask": MASK,
        "steps": BUILD_STEPS_VERSION,
    }
    return cache.spec_key(spec)


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, stdout=sys.stderr)


def build_tree(target: Path, mirror: str = MIRROR) -> None:
    """debootstrap the tree and apply the lab's customisations."""
    _run(["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE,
          str(target), mirror])
    for path, name in FILES.items():
        dest = target / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATES / name, dest)
    for key in target.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    (target / "etc/machine-id").write_text("")
    (target / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    _run(["chroot", str(target), "systemctl", "enable", *ENABLE])
    _run(["chroot", str(target), "systemctl", "mask", *MASK])
    shutil.rmtree(target / "var/cache/apt/archives", ignore_errors=True)
    for lists in (target / "var/lib/apt/lists").glob("*_Packages"):
        lists.unlink()


def ensure_tarball(root: Path | None = None, mirror: str = MIRROR) -> Path:
    """The cached rootfs tarball, built first if absent; checked against its manifest."""
    directory = cache.component_dir(root or cache.default_root(), "lab-rootfs", cache_key(),
                                    cache.host_arch())
    files = ("rootfs.tar.gz",)
    if cache.is_complete(directory, files):
        return directory / files[0]
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".staging-"))
    tree = staging / "tree"
    try:
        print(f"building lab root filesystem ({SUITE}, key {cache_key()})", file=sys.stderr)
        build_tree(tree, mirror)
        _run(["tar", "-C", str(tree), "--numeric-owner", "-czf", str(staging / files[0]), "."])
        shutil.rmtree(tree)
        cache.publish(staging, directory, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / files[0]


def ensure_extracted(tarball: Path) -> Path:
    """The tarball extracted once beside itself (the read-only lower layer of every host)."""
    tree = tarball.parent / "tree"
    done = tarball.parent / ".extracted"
    if not done.exists():
        shutil.rmtree(tree, ignore_errors=True)
        tree.mkdir()
        _run(["tar", "-C", str(tree), "--numeric-owner", "-xzf", str(tarball)])
        done.write_text(cache.sha256_file(tarball))
    return tree
