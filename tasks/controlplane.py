"""Master daemons: kube-apiserver, kube-controller-manager, kube-scheduler."""

from __future__ import annotations

import shlex
import subprocess

from pyinfra import host
from pyinfra.operations import python

from kubesmith import certificates, paths, services
from kubesmith.context import DeployContext
from kubesmith.kubectl import kubectl
from kubesmith.runner import DeployError
from kubesmith.services import APISERVER_PORT
from tasks import _ops, artifacts, pki
from tasks.addons import SERVER_SIDE

SERVICES = tuple(s.name for s in services.of_role("masters"))
SUPER_ADMIN = "super-admin"


def deploy(ctx: DeployContext) -> None:
    """Install the control plane on this master; restart only what changed."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    conf = str(ctx.data["kube_config_dir"])
    binaries = {s: artifacts.service_binaries(ctx, s) for s in SERVICES}
    units = {s: _ops.template(f"{s} unit", f"controlplane/{s}.service.j2", paths.unit(s), "600",
                              **values) for s in SERVICES}
    encryption = _ops.template("secrets encryption config",
                               "controlplane/encryption-config.yaml.j2",
                               f"{conf}/encryption-config.yaml", "600",
                               keys=pki.encryption_ring(ctx).active)
    audit = _ops.template("audit policy", "controlplane/audit-policy.yaml.j2",
                          f"{conf}/audit-policy.yaml", "600")
    scheduler = _ops.template("scheduler configuration", "controlplane/kube-scheduler.yaml.j2",
                              f"{conf}/kube-scheduler.yaml", **values)
    installed = [i for b in binaries.values() for i in b.values()]
    synced = _ops.sync([*dict.fromkeys(installed), encryption, audit, scheduler, *units.values()])
    inputs = {"kube-apiserver": [encryption, audit], "kube-controller-manager": [],
              "kube-scheduler": [scheduler]}
    _ops.services(ctx, synced, [
        _ops.Service(s, units[s], [binaries[s][s], *inputs[s]]) for s in SERVICES])


def rbac_manifest() -> str:
    """The cluster RBAC kubesmith relies on: the apiserver's access to kubelets, cluster-admin
    for the operator's group and for kubesmith's own user."""
    return "\n---\n".join([
        _ops.render("controlplane/rbac-apiserver-kubelet.yaml.j2"),
        _ops.render("controlplane/rbac-admins.yaml.j2", admin_group=certificates.ADMIN_GROUP,
                    kubesmith_user=certificates.KUBESMITH_USER)])


def _rbac_kubectl(ctx: DeployContext, verb: str) -> subprocess.CompletedProcess:
    """kubectl diff/apply of the RBAC manifest with the super-admin credential (its only use:
    the bindings every other credential needs cannot be made by those credentials)."""
    return kubectl(ctx, verb, *SERVER_SIDE, "-f", "-", stdin=rbac_manifest(),
                   credential=SUPER_ADMIN, timeout=60)


def _apply_rbac(ctx: DeployContext) -> None:
    """Apply the RBAC manifest (an op's function, run on the control machine)."""
    result = _rbac_kubectl(ctx, "apply")
    if result.returncode != 0:
        raise DeployError(f"kubectl apply of the cluster RBAC: "
                          f"{(result.stderr or result.stdout).strip()[-300:]}")


def bootstrap_rbac(ctx: DeployContext) -> None:
    """The cluster RBAC, applied from the control machine when it differs (kubectl diff exits 0
    when nothing would change; any other answer counts as a change)."""
    if _rbac_kubectl(ctx, "diff").returncode != 0:
        python.call(name="apply cluster RBAC (kubelet access, cluster-admin bindings)",
                    function=_apply_rbac, ctx=ctx)


def readyz_command(ctx: DeployContext) -> str:
    """Ask the local apiserver's /readyz over TLS with kubesmith's certificate (any
    authenticated user may: system:public-info-viewer)."""
    user = certificates.KUBESMITH_USER
    files = {flag: shlex.quote(f"{ctx.data['pki_dir']}/{name}") for flag, name in (
        ("cacert", "kubernetes-ca.crt"), ("cert", f"{user}.crt"), ("key", f"{user}.key"))}
    return (f"curl -sf --max-time 5 --cacert {files['cacert']} --cert {files['cert']} "
            f"--key {files['key']} https://127.0.0.1:{APISERVER_PORT}/readyz")
