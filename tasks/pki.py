"""PKI: certificates made on the control machine; each host gets the files its roles need."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from pyinfra import host

from kubesmith.context import DeployContext
from kubesmith.model import Host
from kubesmith.pki import cert_specs
from kubesmith.sshkeys import write_private
from tasks import _ops

# Component kubeconfigs: file name -> (certificate name, user).
KUBECONFIGS = {
    "masters": {
        "kube-controller-manager": ("kube-controller-manager", "system:kube-controller-manager"),
        "kube-scheduler": ("kube-scheduler", "system:kube-scheduler"),
        "admin": ("admin", "admin"),
    },
    "nodes": {
        "kubelet": ("kubelet-{name}", "system:node:{name}"),
        "kube-proxy": ("kube-proxy", "system:kube-proxy"),
    },
}


def prepare(ctx: DeployContext) -> list[str]:
    """Make or refresh the cluster PKI and the operator's admin kubeconfig (local, idempotent)."""
    made = ctx.pki.ensure(cert_specs(ctx.cluster))
    write_operator_kubeconfig(ctx)
    return made


def write_operator_kubeconfig(ctx: DeployContext) -> Path:
    """state/<cluster>/admin.kubeconfig with embedded credentials, 0600."""
    b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
    text = _ops.render(
        "kubeconfig/kubeconfig.j2", server=ctx.cluster.apiserver_url, kube_user="admin",
        pki_dir="", cert="",
        ca_data=b64(ctx.pki.ca_pem("kubernetes-ca")),
        cert_data=b64(ctx.pki.cert_pem("admin")), key_data=b64(ctx.pki.key_pem("admin")))
    path = ctx.state / "admin.kubeconfig"
    if not path.exists() or path.read_text() != text:
        write_private(path, text.encode())
    os.chmod(path, 0o600)
    return path


def host_files(ctx: DeployContext, me: Host) -> list[str]:
    """Names of the PKI files (cert stems and keys) a host needs for its roles."""
    names = ["kubernetes-ca.crt", "etcd-ca.crt"]
    pairs: list[str] = []
    if me.has("etcd"):
        pairs += [f"etcd-server-{me.name}", f"etcd-peer-{me.name}", "etcd-healthcheck-client"]
    if me.has("masters"):
        pairs += ["kube-apiserver", "apiserver-kubelet-client", "apiserver-etcd-client",
                  "kube-controller-manager", "kube-scheduler", "admin",
                  "etcd-healthcheck-client"]
        names += ["kubernetes-ca.key", "sa.key", "sa.pub"]
    if me in ctx.cluster.pod_hosts:
        pairs += ["flannel-etcd-client"]
    if me.has("nodes"):
        pairs += [f"kubelet-{me.name}", "kube-proxy"]
    for pair in dict.fromkeys(pairs):
        names += [f"{pair}.crt", f"{pair}.key"]
    return names


def deploy(ctx: DeployContext) -> None:
    """Upload this host's certificates (0644) and keys (0600) and its component kubeconfigs."""
    me = ctx.cluster.host(host.name)
    pki_dir = str(ctx.data["pki_dir"])
    items = [_ops.directory(pki_dir, "700")]
    for name in host_files(ctx, me):
        secret = name.endswith(".key")
        items.append(_ops.local(f"{'key' if secret else 'certificate'} {name}",
                                str(ctx.pki.path(name)), f"{pki_dir}/{name}",
                                "600" if secret else "644"))
    for role, configs in KUBECONFIGS.items():
        if not me.has(role):
            continue
        server = "https://127.0.0.1:6443" if role == "masters" else ctx.cluster.apiserver_url
        for file, (cert, user) in configs.items():
            items.append(_ops.template(
                f"kubeconfig {file}", "kubeconfig/kubeconfig.j2",
                f"{ctx.data['kube_config_dir']}/{file}.kubeconfig", "600",
                server=server, kube_user=user.format(name=me.name),
                cert=cert.format(name=me.name), pki_dir=pki_dir,
                ca_data="", cert_data="", key_data=""))
    _ops.sync(items, ctx.replaced.setdefault(me.name, set()))
