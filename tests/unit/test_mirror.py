"""The binary mirror's decisions: where artifacts come from, the sum check before a file is
installed (run for real with curl on file:// URLs), and what preflight asks for."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from kubesmith import inventory, openssh, settings
from kubesmith.binaries import cache
from kubesmith.context import DeployContext
from kubesmith.errors import UserError
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Phase, Runner
from tasks import _ops, artifacts, mirror, preflight

GROUPS: inventory.Groups = {
    "etcd": [("m1", {"address": "192.0.2.10"})],
    "masters": [("m1", {"address": "192.0.2.10"})],
    "nodes": [("n1", {"address": "192.0.2.21"})],
}


def _ctx(tmp_path: Path) -> DeployContext:
    data = {**settings.group_data(), "addons": []}
    return DeployContext(inventory.to_cluster(GROUPS, data), data, tmp_path, GROUPS, dry=True)


def _without(tmp_path: Path, tool: str) -> dict[str, str]:
    """An environment whose PATH has every command of this machine but one."""
    directory = tmp_path / f"path-without-{tool}"
    directory.mkdir()
    for place in ("/usr/local/bin", "/usr/bin", "/bin"):
        for program in Path(place).iterdir():
            if program.name != tool and not (directory / program.name).exists():
                (directory / program.name).symlink_to(program)
    return {"PATH": str(directory)}


def _fetch(tmp_path: Path, *sums: str,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Fetch files 'kubelet', 'kube-proxy'... (content: their name) with these sums."""
    items = []
    for name, sha256 in zip(("kubelet", "kube-proxy"), sums, strict=False):
        source = tmp_path / "source" / name
        source.parent.mkdir(exist_ok=True)
        source.write_bytes(name.encode())
        items.append(_ops.Item(f"install {name}", str(tmp_path / name), "755", sha256=sha256,
                               url=f"file://{source}", cacert="/nonexistent-ca.crt"))
    command = _ops.fetch_command("n1", items, str(tmp_path / "source" / "sums"))
    return subprocess.run(["sh", "-c", command], capture_output=True, text=True, check=False,
                          env=env)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
@pytest.mark.parametrize("hasher", ["openssl", "sha256sum"])
def test_fetched_files_are_installed_only_when_every_sum_matches(tmp_path: Path,
                                                                 hasher: str) -> None:
    if hasher == "openssl" and shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    env = _without(tmp_path, "openssl") if hasher == "sha256sum" else None
    kubelet, proxy = (hashlib.sha256(n).hexdigest() for n in (b"kubelet", b"kube-proxy"))
    wrong = "0" * 64
    failed = _fetch(tmp_path, kubelet, wrong, env=env)
    assert failed.returncode != 0
    assert failed.stderr.strip() == (f"n1: {tmp_path}/kube-proxy: sha256 from the mirror is "
                                     f"{proxy}, expected {wrong}: not installed")
    files = set(tmp_path.iterdir())
    assert files <= {tmp_path / "source", tmp_path / "path-without-openssl"}  # none installed
    assert _fetch(tmp_path, wrong, env=env).returncode != 0  # a single file too
    assert set(tmp_path.iterdir()) == files
    done = _fetch(tmp_path, kubelet, proxy, env=env)
    assert done.returncode == 0, done.stderr
    for name in ("kubelet", "kube-proxy"):
        assert (tmp_path / name).read_bytes() == name.encode()
        assert oct((tmp_path / name).stat().st_mode & 0o777) == "0o755"
    recorded = (tmp_path / "source" / "sums").read_text().splitlines()
    assert [line.split()[0] for line in recorded] == [kubelet, proxy]  # re-runs skip hashing
    assert recorded[0].endswith(f" {tmp_path}/kubelet")


def test_artifacts_come_from_the_first_master_over_https(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    item = artifacts.artifact(ctx, "etcd", "etcd", "/usr/local/bin/etcd")
    assert item.url == f"https://192.0.2.10:6445/{item.sha256}"
    assert item.cacert == "/etc/kubernetes/pki/kubernetes-ca.crt"
    ctx.mirror = False  # pyinfra's CLI: uploaded from the control machine
    assert artifacts.artifact(ctx, "etcd", "etcd", "/usr/local/bin/etcd").url == ""


def test_preflight_names_the_missing_tools_in_one_line(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    master, node = ctx.cluster.host("m1"), ctx.cluster.host("n1")
    assert preflight.tools_missing(ctx, node, ["python3"]) == ""  # only the seed serves
    assert preflight.tools_missing(ctx, master, []) == ""
    line = preflight.tools_missing(ctx, master, ["curl", "python3"])
    assert line.startswith("curl and python3 not found:") and "\n" not in line
    assert "m1" in line and "apt-get install curl python3" in line


def test_the_mirror_serves_from_the_seed_with_its_own_certificate(tmp_path: Path) -> None:
    values = mirror.values(_ctx(tmp_path))
    assert values["address"] == "192.0.2.10" and values["port"] == 6445
    assert values["cert"] == "/etc/kubernetes/pki/kubesmith-mirror.crt"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_a_wrong_sum_fails_the_phase_naming_host_file_and_sums(tmp_path: Path) -> None:
    """The real fetch op through the real runner, on this machine (pyinfra's @local)."""
    source, dest = tmp_path / "source", tmp_path / "kubelet"
    source.write_bytes(b"kubelet binary")
    local = Host("@local", "127.0.0.1", frozenset({"nodes"}))
    ctx = DeployContext(Cluster((local,)), {}, tmp_path, groups={"nodes": [("@local", {})]})
    item = _ops.Item("install kubelet", str(dest), "755", sha256="0" * 64,
                     url=f"file://{source}", cacert="/nonexistent-ca.crt")
    task = lambda _ctx: _ops.fetch(name="install kubelet", files=[item])  # noqa: E731
    phase = Phase("nodes", lambda c: c.hosts, (task,))
    with pytest.raises(DeployError) as failed:
        Runner(ctx, lambda _line: None).run(phase, phase.on(ctx.cluster))
    right = hashlib.sha256(b"kubelet binary").hexdigest()
    assert str(failed.value) == (
        f"phase nodes: host @local: step 'install kubelet' failed: @local: {dest}: sha256 from "
        f"the mirror is {right}, expected {'0' * 64}: not installed")
    assert not dest.exists()


def test_a_pushed_file_is_installed_only_whole(tmp_path: Path) -> None:
    data = b"kube-apiserver" * 1000
    sha256, sums = hashlib.sha256(data).hexdigest(), str(tmp_path / "sums")

    def push(sent: bytes) -> subprocess.CompletedProcess[bytes]:
        command = mirror.put_command(sha256, len(data), str(tmp_path), sums)
        return subprocess.run(["sh", "-c", command], input=sent, capture_output=True,
                              check=False)

    assert push(data[:-1]).returncode != 0  # a cut connection
    assert list(tmp_path.iterdir()) == []  # nothing installed, no temporary file left
    assert push(data).returncode == 0
    assert (tmp_path / sha256).read_bytes() == data
    assert oct((tmp_path / sha256).stat().st_mode & 0o777) == "0o644"
    assert Path(sums).read_text().split()[0] == sha256  # the fill's fact reads it back
    with pytest.raises(UserError, match="is not a sha256"):
        mirror.put_command("../etc/passwd", 1)


def test_every_artifact_of_the_cluster_is_pushed(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    ctx.data = {**ctx.data, "addons": ["coredns"]}
    try:
        every = artifacts.every(ctx)
    except cache.CacheIncomplete as missing:
        pytest.skip(f"binary cache incomplete ({missing}): run `deploy.py binaries`")
    item = artifacts.artifact(ctx, "etcd", "etcd", "/usr/local/bin/etcd")
    assert every[item.sha256] == item.src
    files = {Path(p).name for p in every.values()}
    assert {"kube-apiserver", "kubelet", "coredns.tar", "pause.tar"} <= files
    assert "metrics-server.tar" not in files  # an add-on turned off
    assert "kube-bench" not in files  # an operator tool, not deployed


def test_the_push_prefers_aes_gcm_where_the_cpu_has_aes_instructions() -> None:
    x86 = "processor\t: 0\nflags\t\t: fpu sse2 aes avx2\n"
    arm = "processor\t: 0\nFeatures\t: fp asimd aes pmull sha1\n"
    assert openssh.bulk_options(x86) == ["-o", "Ciphers=^aes128-gcm@openssh.com"]
    assert openssh.bulk_options(arm) == ["-o", "Ciphers=^aes128-gcm@openssh.com"]
    assert openssh.bulk_options("flags\t\t: fpu sse2 avx2 aesx\n") == []  # OpenSSH's own order
    assert openssh.bulk_options("") == []


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_the_mirror_host_copies_from_its_directory_and_checks_the_sum(tmp_path: Path) -> None:
    """On the first master the files are in the mirror's directory: copied, not downloaded
    over TLS from itself (the URL here serves nothing), and checked like a download."""
    mirror_dir = tmp_path / "mirror"
    mirror_dir.mkdir()
    kubelet = hashlib.sha256(b"kubelet").hexdigest()
    (mirror_dir / kubelet).write_bytes(b"kubelet")
    item = _ops.Item("install kubelet", str(tmp_path / "kubelet"), "755", sha256=kubelet,
                     url=f"file://{tmp_path}/nothing", cacert="/nonexistent-ca.crt")

    def fetch(*items: _ops.Item) -> subprocess.CompletedProcess[str]:
        command = _ops.fetch_command("m1", items, str(tmp_path / "sums"), str(mirror_dir))
        return subprocess.run(["sh", "-c", command], capture_output=True, text=True,
                              check=False)

    done = fetch(item)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kubelet").read_bytes() == b"kubelet"
    assert (mirror_dir / kubelet).read_bytes() == b"kubelet"  # copied: the mirror keeps it
    (mirror_dir / kubelet).write_bytes(b"not kubelet")  # a damaged mirror file
    failed = fetch(replace(item, dest=str(tmp_path / "kubelet2")))
    assert failed.returncode == 1 and "sha256 from the mirror is" in failed.stderr
    assert not (tmp_path / "kubelet2").exists()
    # A value that is not a sha256 never names a file there: downloaded (nothing is served).
    (mirror_dir / "x").write_bytes(b"kubelet")
    odd = fetch(replace(item, dest=str(tmp_path / "k3"), sha256="x"))
    assert odd.returncode != 0 and "sha256 from the mirror is" not in odd.stderr
