"""Master daemons: kube-apiserver, kube-controller-manager, kube-scheduler."""

from __future__ import annotations

from pyinfra import host
from pyinfra.operations import files, server

from kubesmith.context import DeployContext
from tasks._ops import install_binaries, service

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
SERVICES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")


def deploy(ctx: DeployContext) -> None:
    """Install the control plane on this master; restart only what changed."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    conf = str(ctx.data["kube_config_dir"])
    bins = dict(zip(BINARIES, install_binaries(ctx, "kubernetes", BINARIES,
                                               str(ctx.data["bin_dir"])), strict=True))
    encryption = files.template(
        name="secrets encryption config (aescbc)",
        src=ctx.template("controlplane", "encryption-config.yaml.j2"),
        dest=f"{conf}/encryption-config.yaml", mode="600",
        encryption_key=ctx.pki.encryption_key())
    audit = files.template(name="audit policy",
                           src=ctx.template("controlplane", "audit-policy.yaml.j2"),
                           dest=f"{conf}/audit-policy.yaml", mode="600")
    scheduler_conf = files.template(name="scheduler configuration",
                                    src=ctx.template("controlplane", "kube-scheduler.yaml.j2"),
                                    dest=f"{conf}/kube-scheduler.yaml", **values)
    inputs = {
        "kube-apiserver": [encryption, audit],
        "kube-controller-manager": [],
        "kube-scheduler": [scheduler_conf],
    }
    for name in SERVICES:
        unit = files.template(name=f"{name} unit",
                              src=ctx.template("controlplane", f"{name}.service.j2"),
                              dest=f"/etc/systemd/system/{name}.service", **values)
        service(name, unit, [bins[name], *inputs[name]])


def bootstrap_rbac(ctx: DeployContext) -> None:
    """RBAC the apiserver needs to reach kubelets (applied when the manifest changes)."""
    path = f"{ctx.data['kube_config_dir']}/rbac-apiserver-kubelet.yaml"
    manifest = files.template(name="RBAC: apiserver to kubelet",
                              src=ctx.template("controlplane", "rbac-apiserver-kubelet.yaml.j2"),
                              dest=path)
    server.shell(name="apply RBAC: apiserver to kubelet",
                 commands=[f"kubectl --kubeconfig={ctx.data['kube_config_dir']}/admin.kubeconfig "
                           f"apply -f {path}"],
                 _if=manifest.did_change)


def readyz_command(ctx: DeployContext) -> str:
    """Ask the local apiserver's /readyz over TLS with the admin certificate."""
    pki = ctx.data["pki_dir"]
    return (f"curl -sf --max-time 5 --cacert {pki}/kubernetes-ca.crt --cert {pki}/admin.crt "
            f"--key {pki}/admin.key https://127.0.0.1:6443/readyz")
