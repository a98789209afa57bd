"""PKI: certificates made on the control machine; each host gets the files the certificate table
lists for it, and the services reading a replaced file are marked for restart."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from pyinfra import host

from kubesmith import certificates, encryption
from kubesmith.context import DeployContext
from kubesmith.services import APISERVER_PORT
from kubesmith.sshkeys import write_private
from tasks import _ops

DRY_PLACEHOLDER = "(generated-by-this-deploy)"


def prepare(ctx: DeployContext) -> list[str]:
    """Make or refresh the cluster PKI and the control machine's kubeconfigs (local,
    idempotent): the operator's admin.kubeconfig, super-admin.kubeconfig, kubesmith.kubeconfig."""
    made = ctx.pki.ensure(certificates.cert_specs(ctx.cluster))
    if encryption.ensure(ctx.pki.directory):
        made.append(encryption.RING)
    for credential in certificates.table(ctx.cluster):
        if credential.control_machine and credential.spec is not None:
            write_local_kubeconfig(ctx, credential.name, credential.spec.common_name)
    return made


def write_operator_kubeconfig(ctx: DeployContext, server: str | None = None,
                              path: Path | None = None) -> Path:
    """An operator (admin) kubeconfig: by default state/<cluster>/admin.kubeconfig."""
    return write_local_kubeconfig(ctx, "admin", "admin", server, path)


def write_local_kubeconfig(ctx: DeployContext, name: str, user: str, server: str | None = None,
                           path: Path | None = None) -> Path:
    """A kubeconfig with the embedded credential <name>, 0600: by default state/<cluster>/
    <name>.kubeconfig for the cluster's apiserver URL (external endpoint, else first master)."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    cert, key = ctx.pki.credential(name)
    text = _ops.render(
        "kubeconfig/kubeconfig.j2", server=server or ctx.cluster.apiserver_url, kube_user=user,
        pki_dir="", cert="", ca_data=b64(ctx.pki.ca_pem("kubernetes-ca")),
        cert_data=b64(cert), key_data=b64(key))
    path = path or ctx.state / f"{name}.kubeconfig"
    if not path.exists() or path.read_text() != text:
        write_private(path, text.encode())
    os.chmod(path, 0o600)
    return path


def plan(ctx: DeployContext) -> list[str]:
    """What prepare() would make or renew and why, writing nothing (for --dry)."""
    planned = [f"{name} ({why})" for name, why in
               ctx.pki.plan(certificates.cert_specs(ctx.cluster))]
    if not ctx.pki.path(encryption.RING).exists():
        legacy = ctx.pki.path(encryption.LEGACY_KEY).exists()
        why = f"from {encryption.LEGACY_KEY}" if legacy else "missing"
        planned.append(f"{encryption.RING} ({why})")
    else:
        encryption.load(ctx.pki.directory)  # refused as the real run would refuse it
    return planned


def encryption_ring(ctx: DeployContext) -> encryption.Ring:
    """The encryption-at-rest keys; in a dry run before the PKI exists, a placeholder key."""
    ring = encryption.load(ctx.pki.directory)
    if ring is None and ctx.dry:
        return encryption.Ring((encryption.Key("key1", encryption.PROVIDER, DRY_PLACEHOLDER),),
                               ("key1",))
    if ring is None:
        raise encryption.RingError(f"{ctx.pki.path(encryption.RING)}: missing (the PKI is "
                                   "made by `python deploy.py up`)")
    return ring


def credential_items(ctx: DeployContext, credential: certificates.Credential) -> list[_ops.Item]:
    """A credential's files (certificates 0644, keys 0600) and its kubeconfig (0600)."""
    pki_dir = str(ctx.data["pki_dir"])
    items = []
    for name in credential.file_names:
        secret = not name.endswith(".crt")
        items.append(_ops.local(f"{'key' if secret else 'certificate'} {name}",
                                str(ctx.pki.path(name)), f"{pki_dir}/{name}",
                                "600" if secret else "644"))
    kubeconfig = credential.kubeconfig
    if kubeconfig is not None:
        server = (f"https://127.0.0.1:{APISERVER_PORT}" if kubeconfig.local_apiserver
                  else ctx.cluster.balancer_url)
        items.append(_ops.template(
            f"kubeconfig {kubeconfig.file}", "kubeconfig/kubeconfig.j2",
            f"{ctx.data['kube_config_dir']}/{kubeconfig.file}.kubeconfig", "600",
            server=server, kube_user=kubeconfig.user, cert=credential.name, pki_dir=pki_dir,
            ca_data="", cert_data="", key_data=""))
    return items


def deploy(ctx: DeployContext) -> None:
    """Upload this host's certificates, keys and component kubeconfigs; a replaced one marks
    the services that read it (from the certificate table) for restart in their phase."""
    me = ctx.cluster.host(host.name)
    readers: dict[_ops.Item, tuple[str, ...]] = {}
    for credential in certificates.of_host(ctx.cluster, me):
        for item in credential_items(ctx, credential):
            readers[item] = credential.readers
    retired = [f"{ctx.data['pki_dir']}/{name}" for name in certificates.RETIRED]
    retired += [f"{ctx.data['kube_config_dir']}/{name}.kubeconfig"
                for name in certificates.RETIRED_KUBECONFIGS]
    synced = _ops.sync([_ops.directory(str(ctx.data["pki_dir"]), "700"), *readers], retired)
    for item in synced.replaced:
        ctx.need_restart(me.name, readers[item])
