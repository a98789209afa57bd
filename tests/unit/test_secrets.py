"""Key material never reaches an output: every file (keys, kubeconfigs, the encryption config
and the rest) is written by kubesmith's own operation, which never prints content (pyinfra's
files.put does under --diff), through an archive or file that is 0600 before its first byte."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kubesmith import encryption, inventory, paths, settings
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import Phase, Runner
from kubesmith.sshkeys import write_private
from tasks import _ops, pki

GROUPS: inventory.Groups = {"etcd": [("m1", {"address": "192.0.2.10"})],
                            "masters": [("m1", {"address": "192.0.2.10"})],
                            "nodes": [("n1", {"address": "192.0.2.21"})]}


def test_every_file_goes_through_kubesmiths_own_write(tmp_path: Path, empty_cache: Path,
                                                     run_tasks) -> None:
    data = settings.group_data()
    ctx = DeployContext(inventory.to_cluster(GROUPS, data), data, tmp_path / "state", GROUPS)
    pki.prepare(ctx)
    ctx.dry = True  # the binary cache is empty here; the PKI is real
    recording = run_tasks(ctx)
    names = {name for ops in recording.ops.values() for name, _kw in ops}
    assert "files.put" not in names and "files.template" not in names
    written = [i for ops in recording.ops.values() for name, kw in ops if name == "write"
               for i in kw["files"]]
    assert {"/etc/kubernetes/pki/kubernetes-ca.key", "/etc/kubernetes/pki/sa.key",
            "/etc/kubernetes/kubesmith.kubeconfig",
            "/etc/kubernetes/encryption-config.yaml"} <= {i.dest for i in written}
    secret = encryption.load(ctx.pki.directory).primary.secret
    assert any(secret in (i.content or "") for i in written)


def _run(commands: list[object]) -> list[tuple[str, int]]:
    """Run write_commands here: shell commands with sh, uploads by copying (as SFTP would into
    an existing file: its mode stays). Returns each upload's target with its mode beforehand."""
    before = []
    for command in commands:
        if isinstance(command, str):
            subprocess.run(["sh", "-c", command], check=True)
            continue
        target = Path(command.dest)  # a FileUploadCommand
        before.append((str(target), target.stat().st_mode & 0o777))
        src = command.src
        data = src.read() if hasattr(src, "read") else Path(src).read_bytes()
        with target.open("r+b") as out:
            out.truncate()
            out.write(data)
    return before


def test_write_is_private_from_the_first_byte_and_records_sums(tmp_path: Path,
                                                               monkeypatch) -> None:
    key = tmp_path / "src" / "admin.key"
    key.parent.mkdir()
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    big = tmp_path / "src" / "kubelet"
    big.write_bytes(b"\0" * (_ops.ARCHIVE_LIMIT + 1))
    monkeypatch.setattr(_ops, "_size", lambda i: big.stat().st_size if i.src == str(big) else 1)
    dest = tmp_path / "host"
    items = [_ops.directory(f"{dest}/pki", "700"),
             _ops.local("key admin.key", str(key), f"{dest}/pki/admin.key", "600"),
             _ops.template("sysctl", "common/sysctl.conf.j2", f"{dest}/sysctl.conf"),
             _ops.local("install kubelet", str(big), f"{dest}/bin/kubelet", "755", "b" * 64)]
    (dest / "bin").mkdir(parents=True)
    sums, archive = tmp_path / "sums", str(tmp_path / "files.tar.kubesmith-upload")
    commands = _ops.write_commands(items, str(sums), archive)
    assert sum(isinstance(c, str) for c in commands) == 2  # and one upload per transfer
    printed = " ".join(map(repr, commands))
    assert "PRIVATE KEY" not in printed
    before = _run(commands)
    # The archive (holding the key) and the large file exist 0600 before their first byte.
    assert before == [(archive, 0o600), (f"{dest}/bin/kubelet.kubesmith-upload", 0o600)]
    assert (dest / "pki").stat().st_mode & 0o777 == 0o700
    assert (dest / "pki/admin.key").read_text() == key.read_text()
    assert (dest / "pki/admin.key").stat().st_mode & 0o777 == 0o600
    assert (dest / "sysctl.conf").stat().st_mode & 0o777 == 0o644
    assert (dest / "bin/kubelet").stat().st_mode & 0o777 == 0o755
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host", "src", "sums"]  # no archive
    assert not list(dest.rglob("*.kubesmith-upload"))
    recorded = {line.split()[-1]: line.split()[0] for line in sums.read_text().splitlines()}
    assert recorded == {f"{dest}/pki/admin.key": items[1].sha256,
                        f"{dest}/sysctl.conf": items[2].sha256, f"{dest}/bin/kubelet": "b" * 64}


def test_write_through_the_real_runner(tmp_path: Path, monkeypatch) -> None:
    """The write op as a phase runs it (pyinfra's @local connector: its upload reads the
    archive like SFTP does), files in place with their modes."""
    monkeypatch.setattr(paths, "SUMS", str(tmp_path / "sums"))
    monkeypatch.setattr(paths, "UPLOAD_ARCHIVE", str(tmp_path / "files.tar.kubesmith-upload"))
    dest = tmp_path / "host"
    items = [_ops.directory(str(dest), "700"),
             _ops.template("sysctl", "common/sysctl.conf.j2", f"{dest}/sysctl.conf")]
    local = Host("@local", "127.0.0.1", frozenset({"nodes"}))
    ctx = DeployContext(Cluster((local,)), {}, tmp_path, groups={"nodes": [("@local", {})]})
    task = lambda _ctx: _ops.write(name="files", files=items)  # noqa: E731
    phase = Phase("hosts", lambda c: c.hosts, (task,))
    Runner(ctx, lambda _line: None).run(phase, phase.on(ctx.cluster))
    assert (dest / "sysctl.conf").read_text() == items[1].content
    assert dest.stat().st_mode & 0o777 == 0o700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host", "sums"]


def test_a_kubeconfig_over_a_wider_file_never_holds_the_key_at_that_mode(tmp_path: Path) -> None:
    """`deploy.py kubeconfig -o ~/.kube/config` over an existing 0644 file: the key goes into
    a new 0600 file renamed over it, never into the old one (a reader holding it open sees
    the old text)."""
    path = tmp_path / "config"
    path.write_text("old\n")
    path.chmod(0o644)
    held = tmp_path / "held"
    held.hardlink_to(path)  # the old file, as a reader that opened it keeps it
    write_private(path, b"client-key-data: SECRET\n")
    assert held.read_text() == "old\n"
    assert path.read_bytes() == b"client-key-data: SECRET\n"
    assert path.stat().st_mode & 0o777 == 0o600
