"""A Vagrant box for libvirt built from the lab's root filesystem, cached by content key.

The lab rootfs (kubesmith/lab/rootfs.py) gets a Debian kernel and initramfs (apt-get in a chroot),
a network file for the management NIC, first-boot SSH host keys, the kernel modules a node needs,
and Vagrant's well-known public key for root. It is copied onto an ext4 partition of a raw disk,
made bootable with extlinux, converted to qcow2 and packed with metadata.json and a Vagrantfile
into a .box tar. Nothing in the box needs the internet at boot.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kubesmith.binaries import cache
from kubesmith.errors import UserError
from kubesmith.lab import rootfs

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "vagrant-box"
KERNEL_PACKAGES = ("linux-image-amd64", "initramfs-tools")
# Files written into the tree: path in the guest -> template file.
FILES = {
    "/etc/systemd/network/10-mgmt.network": "10-mgmt.network",
    "/etc/systemd/system/ssh-hostkeys.service": "ssh-hostkeys.service",
    "/etc/modules-load.d/kubesmith.conf": "modules-kubesmith.conf",
    "/root/.ssh/authorized_keys": "vagrant-insecure.pub",
}
ENABLE = ("ssh-hostkeys",)
BOX_VAGRANTFILE = "Vagrantfile"
DISK_GIB = 12
PARTITION_OFFSET = 1 << 20  # the root partition starts at 1 MiB, after the MBR
KERNEL_CMDLINE = "ro console=ttyS0,115200 console=tty0 net.ifnames=0 biosdevname=0"
MBR = Path("/usr/lib/EXTLINUX/mbr.bin")
BOX_FILE = "kubesmith.box"
BUILD_STEPS_VERSION = 2
TOOLS = {
    "extlinux": "extlinux", "qemu-img": "qemu-utils", "sfdisk": "fdisk", "losetup": "mount",
    "mkfs.ext4": "e2fsprogs", "chroot": "coreutils", "debootstrap": "debootstrap",
}


class BoxError(UserError):
    """The box cannot be built here; the message says what is missing or failed."""


def cache_key(rootfs_key: str | None = None) -> str:
    """A key over everything that shapes the box: the lab rootfs's key and every step here."""
    spec = {
        "rootfs": rootfs_key or rootfs.cache_key(),
        "kernel": KERNEL_PACKAGES,
        "files": {path: (TEMPLATES / name).read_text() for path, name in FILES.items()},
        "enable": ENABLE,
        "vagrantfile": (TEMPLATES / BOX_VAGRANTFILE).read_text(),
        "disk_gib": DISK_GIB,
        "cmdline": KERNEL_CMDLINE,
        "steps": BUILD_STEPS_VERSION,
    }
    return cache.spec_key(spec)


def box_name(key: str) -> str:
    """The box's name in Vagrant; the key in it keeps vagrant-libvirt off stale pool images."""
    return f"kubesmith/bookworm-{key}"


def root_uuid(key: str) -> str:
    """The root filesystem's UUID, derived from the key: the same inputs make the same box."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"kubesmith-vagrant-box:{key}"))


def metadata(disk_gib: int = DISK_GIB) -> dict[str, object]:
    """metadata.json of a vagrant-libvirt box."""
    return {"provider": "libvirt", "format": "qcow2", "virtual_size": disk_gib}


def extlinux_conf(kernel: str, initrd: str, fs_uuid: str) -> str:
    """extlinux.conf booting this kernel and initramfs from the root filesystem at once."""
    return (
        "DEFAULT debian\nPROMPT 0\nTIMEOUT 0\n\n"
        f"LABEL debian\n  LINUX /boot/{kernel}\n  INITRD /boot/{initrd}\n"
        f"  APPEND root=UUID={fs_uuid} {KERNEL_CMDLINE}\n"
    )


def fstab(fs_uuid: str) -> str:
    """/etc/fstab of the box: the root filesystem only."""
    return f"UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n"


def patch_hidden_sectors(boot_sector: bytes, start_sector: int) -> bytes:
    """The extlinux boot sector with its partition offset (BPB "hidden sectors") set.

    extlinux takes the offset from the block device; on a loop device over the partition
    (no partition scanning on this kernel) it finds none and writes 0, so it is set here.
    """
    if len(boot_sector) != 512 or boot_sector[510:] != b"\x55\xaa":
        raise BoxError("no boot sector at the start of the root partition")
    return boot_sector[:0x1C] + struct.pack("<I", start_sector) + boot_sector[0x20:]


def missing_tools() -> list[str]:
    """Debian packages to install before a box can be built here (empty when none)."""
    missing = {package for tool, package in TOOLS.items() if shutil.which(tool) is None}
    if not MBR.exists():
        missing.add("extlinux")
    return sorted(missing)


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
    """Run a build step, its output to stderr; a failure names the command."""
    try:
        return subprocess.run(args, check=True, stdout=sys.stderr, **kwargs)  # type: ignore
    except subprocess.CalledProcessError as error:
        command = " ".join(args)
        raise BoxError(f"box build step failed (exit {error.returncode}): {command}") from error


@contextmanager
def _chroot_mounts(tree: Path) -> Iterator[None]:
    """/proc, /sys, /dev and /dev/pts mounted in the tree for the time of a chroot."""
    mounted: list[Path] = []
    try:
        for source, target, options in (
            ("proc", "proc", ["-t", "proc"]),
            ("sysfs", "sys", ["-t", "sysfs"]),
            ("/dev", "dev", ["--bind"]),
            ("devpts", "dev/pts", ["-t", "devpts"]),
        ):
            path = tree / target
            path.mkdir(exist_ok=True)
            _run(["mount", *options, source, str(path)])
            mounted.append(path)
        yield
    finally:
        for path in reversed(mounted):
            subprocess.run(["umount", "-l", str(path)], check=False)


def install_kernel(tree: Path) -> tuple[str, str]:
    """apt-get the kernel and initramfs into the tree; their file names under /boot."""
    resolv = tree / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    shutil.copyfile("/etc/resolv.conf", resolv)
    policy = tree / "usr/sbin/policy-rc.d"  # no service may start inside the chroot
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    try:
        with _chroot_mounts(tree):
            _run(["chroot", str(tree), "apt-get", "update", "-q"], env=env)
            _run(["chroot", str(tree), "apt-get", "install", "-y", "-q",
                  "--no-install-recommends", *KERNEL_PACKAGES], env=env)
            _run(["chroot", str(tree), "apt-get", "clean"], env=env)
    finally:
        policy.unlink(missing_ok=True)
        resolv.unlink(missing_ok=True)
        resolv.write_text("")
    for lists in (tree / "var/lib/apt/lists").glob("*_Packages"):
        lists.unlink()
    kernels = sorted(p.name for p in (tree / "boot").glob("vmlinuz-*"))
    initrds = sorted(p.name for p in (tree / "boot").glob("initrd.img-*"))
    if len(kernels) != 1 or len(initrds) != 1:
        raise BoxError(f"expected one kernel and one initramfs in /boot, found {kernels} {initrds}")
    return kernels[0], initrds[0]


def customise(tree: Path, kernel: str, initrd: str, fs_uuid: str) -> None:
    """Write the box's files into the tree and enable its units."""
    for path, name in FILES.items():
        dest = tree / path.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(TEMPLATES / name, dest)
    (tree / "root/.ssh").chmod(0o700)
    (tree / "root/.ssh/authorized_keys").chmod(0o600)
    (tree / "etc/fstab").write_text(fstab(fs_uuid))
    (tree / "etc/hostname").write_text("kubesmith\n")
    (tree / "etc/hosts").write_text("127.0.0.1\tlocalhost\n127.0.1.1\tkubesmith\n")
    (tree / "boot/extlinux").mkdir(exist_ok=True)
    (tree / "boot/extlinux/extlinux.conf").write_text(extlinux_conf(kernel, initrd, fs_uuid))
    _run(["chroot", str(tree), "systemctl", "enable", *ENABLE])
    for key in tree.glob("etc/ssh/ssh_host_*"):
        key.unlink()
    (tree / "etc/machine-id").write_text("")


@contextmanager
def _loop_partition(image: Path, size: int) -> Iterator[str]:
    """A loop device over the image's root partition."""
    result = subprocess.run(
        ["losetup", "--find", "--show", "--offset", str(PARTITION_OFFSET),
         "--sizelimit", str(size - PARTITION_OFFSET), str(image)],
        check=True, capture_output=True, text=True)
    device = result.stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


def make_disk(tree: Path, image: Path, fs_uuid: str) -> None:
    """A raw disk: MBR + one bootable ext4 partition holding the tree, extlinux installed."""
    size = DISK_GIB << 30
    with open(image, "wb") as handle:
        handle.truncate(size)
    _run(["sfdisk", "--quiet", str(image)],
         input=f"label: dos\nstart={PARTITION_OFFSET // 512}, type=83, bootable\n".encode())
    with _loop_partition(image, size) as device:
        # 64bit and metadata_csum_seed are left out: syslinux 6.04 cannot read them.
        _run(["mkfs.ext4", "-q", "-F", "-U", fs_uuid, "-L", "kubesmith-root",
              "-O", "^64bit,^metadata_csum_seed,^orphan_file", device])
        mount = image.parent / "mnt"
        mount.mkdir()
        _run(["mount", device, str(mount)])
        try:
            _run(["cp", "-a", f"{tree}/.", str(mount)])
            _run(["extlinux", "--install", str(mount / "boot/extlinux")])
        finally:
            subprocess.run(["umount", str(mount)], check=False)
            mount.rmdir()
    with open(image, "r+b") as handle:
        handle.write(MBR.read_bytes()[:440])
        handle.seek(PARTITION_OFFSET)
        sector = handle.read(512)
        handle.seek(PARTITION_OFFSET)
        handle.write(patch_hidden_sectors(sector, PARTITION_OFFSET // 512))


def pack(image: Path, box: Path) -> None:
    """qcow2 of the raw image + metadata.json + the box's Vagrantfile, as a .box tar."""
    staging = box.parent
    _run(["qemu-img", "convert", "-O", "qcow2", str(image), str(staging / "box.img")])
    image.unlink()
    (staging / "metadata.json").write_text(json.dumps(metadata()) + "\n")
    shutil.copyfile(TEMPLATES / BOX_VAGRANTFILE, staging / "Vagrantfile")
    with tarfile.open(box, "w") as tar:
        for name in ("metadata.json", "Vagrantfile", "box.img"):
            tar.add(staging / name, arcname=name)
            (staging / name).unlink()


def ensure_box(root: Path | None = None, log=None) -> Path:
    """The cached .box file, built first if absent; checked against its manifest."""
    root = root or cache.default_root()
    key = cache_key()
    directory = cache.component_dir(root, "vagrant-box", key, cache.host_arch())
    if cache.is_complete(directory, (BOX_FILE,)):
        return directory / BOX_FILE
    if os.geteuid() != 0:
        raise BoxError("building the box needs root (chroot, loop devices, mounts)")
    missing = missing_tools()
    if missing:
        raise BoxError(f"building the box needs: apt-get install {' '.join(missing)}")
    tarball = rootfs.ensure_tarball(root)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=".staging-"))
    tree = staging / "tree"
    fs_uuid = root_uuid(key)
    try:
        print(f"building Vagrant box {box_name(key)} from {tarball}", file=sys.stderr)
        tree.mkdir()
        _run(["tar", "-C", str(tree), "--numeric-owner", "-xzf", str(tarball)])
        kernel, initrd = install_kernel(tree)
        customise(tree, kernel, initrd, fs_uuid)
        make_disk(tree, staging / "disk.raw", fs_uuid)
        shutil.rmtree(tree)
        pack(staging / "disk.raw", staging / BOX_FILE)
        cache.publish(staging, directory, (BOX_FILE,))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory / BOX_FILE


def added_boxes(env: dict[str, str] | None = None) -> set[str]:
    """Names of the libvirt boxes Vagrant has (`vagrant box list`)."""
    result = subprocess.run(["vagrant", "box", "list", "--machine-readable"], env=env,
                            capture_output=True, text=True, check=False)
    names, current = set(), None
    for line in result.stdout.splitlines():
        fields = line.split(",")
        if len(fields) >= 4 and fields[2] == "box-name":
            current = fields[3]
        elif len(fields) >= 4 and fields[2] == "box-provider" and fields[3] == "libvirt":
            names.add(current)
    return {n for n in names if n}


def ensure_added(box: Path, env: dict[str, str] | None = None) -> str:
    """Add the box to Vagrant under its keyed name unless it is there; return the name."""
    name = box_name(box.parent.parent.name)
    if name not in added_boxes(env):
        _run(["vagrant", "box", "add", "--name", name, str(box)], env=env)
    return name
