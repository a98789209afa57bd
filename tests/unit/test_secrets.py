"""Key material never reaches an output: keys, kubeconfigs and the encryption config are uploaded
by kubesmith's own operation, which never prints content (pyinfra's files.put does under --diff),
through a file that is 0600 before its first byte."""

from __future__ import annotations

import io
from pathlib import Path

from kubesmith import encryption, inventory, settings
from kubesmith.context import DeployContext
from tasks import _ops, pki

GROUPS: inventory.Groups = {"etcd": [("m1", {"address": "192.0.2.10"})],
                            "masters": [("m1", {"address": "192.0.2.10"})],
                            "nodes": [("n1", {"address": "192.0.2.21"})]}


def _content(src: object) -> str:
    """What an upload sends, when it can be read as text (binaries are not in this cache)."""
    if isinstance(src, io.StringIO):
        return src.getvalue()
    path = Path(str(src))
    return path.read_text() if path.exists() else ""


def test_secrets_never_go_through_files_put(tmp_path: Path, empty_cache: Path, run_tasks) -> None:
    data = settings.group_data()
    ctx = DeployContext(inventory.to_cluster(GROUPS, data), data, tmp_path / "state", GROUPS)
    pki.prepare(ctx)
    ctx.dry = True  # the binary cache is empty here; the PKI is real
    recording = run_tasks(ctx)
    puts = [kw for ops in recording.ops.values() for name, kw in ops if name == "files.put"]
    uploads = [kw for ops in recording.ops.values() for name, kw in ops if name == "upload"]
    secret = encryption.load(ctx.pki.directory).primary.secret
    for kw in puts:
        text = _content(kw["src"])
        assert "PRIVATE KEY" not in text and secret not in text, kw["dest"]
        assert not kw["dest"].endswith((".key", ".kubeconfig", "encryption-config.yaml"))
    uploaded = {kw["dest"] for kw in uploads}
    assert {"/etc/kubernetes/pki/kubernetes-ca.key", "/etc/kubernetes/pki/sa.key",
            "/etc/kubernetes/kubesmith.kubeconfig",
            "/etc/kubernetes/encryption-config.yaml"} <= uploaded
    assert any(secret in _content(kw["src"]) for kw in uploads)


def test_upload_is_private_from_the_first_byte() -> None:
    commands = list(_ops.upload._inner(src="/s/admin.key", dest="/etc/kubernetes/pki/admin.key",
                                       mode="600", secret=True))
    assert commands[0] == "install -m 600 /dev/null /etc/kubernetes/pki/admin.key.kubesmith-upload"
    assert repr(commands[1]) == ("FileUploadCommand(/s/admin.key, "
                                 "/etc/kubernetes/pki/admin.key.kubesmith-upload)")
    assert commands[2] == ("chmod 600 /etc/kubernetes/pki/admin.key.kubesmith-upload && mv -f "
                           "/etc/kubernetes/pki/admin.key.kubesmith-upload "
                           "/etc/kubernetes/pki/admin.key")


def test_a_public_file_is_uploaded_in_two_commands_and_its_sum_recorded() -> None:
    digest = "a" * 64
    commands = list(_ops.upload._inner(src="/s/kubelet", dest="/usr/local/bin/kubelet",
                                       mode="755", sha256=digest))
    assert repr(commands[0]) == ("FileUploadCommand(/s/kubelet, "
                                 "/usr/local/bin/kubelet.kubesmith-upload)")
    assert commands[1] == ("chmod 755 /usr/local/bin/kubelet.kubesmith-upload && mv -f "
                           "/usr/local/bin/kubelet.kubesmith-upload /usr/local/bin/kubelet && "
                           + _ops.record_sum("/usr/local/bin/kubelet", digest))
    assert len(commands) == 2
