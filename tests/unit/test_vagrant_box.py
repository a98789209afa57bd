"""The Vagrant box's pure parts: cache key, names, metadata, boot files; libvirt chain parsing."""

import struct
import uuid

import pytest

from kubesmith import libvirt_host, vagrant_box


def test_metadata_is_what_vagrant_libvirt_reads() -> None:
    assert vagrant_box.metadata(12) == {"provider": "libvirt", "format": "qcow2",
                                        "virtual_size": 12}


def test_cache_key_is_stable_and_follows_the_rootfs() -> None:
    key = vagrant_box.cache_key("aaaa")
    assert key == vagrant_box.cache_key("aaaa")
    assert len(key) == 16 and int(key, 16) >= 0
    assert vagrant_box.cache_key("bbbb") != key


def test_cache_key_follows_build_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    key = vagrant_box.cache_key("aaaa")
    monkeypatch.setattr(vagrant_box, "KERNEL_CMDLINE", vagrant_box.KERNEL_CMDLINE + " quiet")
    assert vagrant_box.cache_key("aaaa") != key
    monkeypatch.undo()
    monkeypatch.setattr(vagrant_box, "DISK_GIB", vagrant_box.DISK_GIB + 1)
    assert vagrant_box.cache_key("aaaa") != key


def test_box_name_and_root_uuid_derive_from_the_key() -> None:
    assert vagrant_box.box_name("0123abcd") == "kubesmith/bookworm-0123abcd"
    first = vagrant_box.root_uuid("0123abcd")
    assert first == vagrant_box.root_uuid("0123abcd")
    assert first != vagrant_box.root_uuid("0123abce")
    assert uuid.UUID(first).version == 5


def test_boot_files_name_the_root_filesystem() -> None:
    conf = vagrant_box.extlinux_conf("vmlinuz-6.1.0-1-amd64", "initrd.img-6.1.0-1-amd64", "U-1")
    assert "LINUX /boot/vmlinuz-6.1.0-1-amd64" in conf
    assert "INITRD /boot/initrd.img-6.1.0-1-amd64" in conf
    assert "APPEND root=UUID=U-1 " in conf and "net.ifnames=0" in conf
    assert conf.startswith("DEFAULT debian\n")
    assert vagrant_box.fstab("U-1") == "UUID=U-1 / ext4 errors=remount-ro 0 1\n"


def test_hidden_sectors_patched_in_the_boot_sector() -> None:
    sector = bytes(range(256)) * 2
    sector = sector[:510] + b"\x55\xaa"
    patched = vagrant_box.patch_hidden_sectors(sector, 2048)
    assert len(patched) == 512
    assert struct.unpack_from("<I", patched, 0x1C)[0] == 2048
    assert patched[:0x1C] == sector[:0x1C] and patched[0x20:] == sector[0x20:]


def test_no_boot_sector_is_refused() -> None:
    with pytest.raises(vagrant_box.BoxError, match="no boot sector"):
        vagrant_box.patch_hidden_sectors(bytes(512), 2048)


def test_box_files_exist() -> None:
    for name in [*vagrant_box.FILES.values(), vagrant_box.BOX_VAGRANTFILE]:
        assert (vagrant_box.TEMPLATES / name).is_file(), name
    key = (vagrant_box.TEMPLATES / vagrant_box.FILES["/root/.ssh/authorized_keys"]).read_text()
    assert key.startswith("ssh-") and "PRIVATE" not in key


RULES = """-P INPUT ACCEPT
-P FORWARD ACCEPT
-N LIBVIRT_FWI
-N LIBVIRT_INP
-N MINE
-A INPUT -j LIBVIRT_INP
-A INPUT -i eth0 -j MINE
-A FORWARD -j LIBVIRT_FWI
-A LIBVIRT_INP -i virbr0 -p udp -m udp --dport 53 -j ACCEPT
"""


def test_libvirt_chains_and_the_jumps_to_them() -> None:
    assert libvirt_host.libvirt_chains(RULES) == ["LIBVIRT_FWI", "LIBVIRT_INP"]
    assert libvirt_host.jumps_to(RULES, {"LIBVIRT_INP"}) == [["-D", "INPUT", "-j", "LIBVIRT_INP"]]
    assert libvirt_host.jumps_to(RULES, set()) == []


def test_stop_without_start_does_nothing(tmp_path) -> None:
    assert libvirt_host.stop(tmp_path / "none.json") == []


def test_volume_names_from_virsh_table() -> None:
    table = " Name   Path\n------------------------\n v1     /tmp/p/v1\n box.img /x/box.img\n\n"
    assert libvirt_host.volume_names(table) == ["box.img", "v1"]
    assert libvirt_host.volume_names("") == []
