"""Master daemons: kube-apiserver, kube-controller-manager, kube-scheduler."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith import paths, services
from kubesmith.context import DeployContext
from kubesmith.services import APISERVER_PORT
from tasks import _ops, artifacts, pki

SERVICES = tuple(s.name for s in services.of_role("masters"))
RBAC_BINDING = "kubesmith:kube-apiserver-kubelet-client"


def deploy(ctx: DeployContext) -> None:
    """Install the control plane on this master; restart only what changed."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    conf = str(ctx.data["kube_config_dir"])
    binaries = {s: artifacts.service_binaries(ctx, s) for s in SERVICES}
    units = {s: _ops.template(f"{s} unit", f"controlplane/{s}.service.j2", paths.unit(s), "600",
                              **values) for s in SERVICES}
    encryption = _ops.template("secrets encryption config (aescbc)",
                               "controlplane/encryption-config.yaml.j2",
                               f"{conf}/encryption-config.yaml", "600", secret=True,
                               encryption_key=pki.encryption_key(ctx))
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


class ClusterRoleBindingExists(FactBase):
    """Whether a ClusterRoleBinding exists, asked with the master's admin kubeconfig."""

    @staticmethod
    def default() -> bool:
        return False

    def command(self, kubeconfig: str, binding: str) -> str:
        return (f"kubectl --kubeconfig={shlex.quote(kubeconfig)} get clusterrolebinding "
                f"{shlex.quote(binding)} -o name 2>/dev/null || true")

    def process(self, output: list[str]) -> bool:
        return any(line.strip() for line in output)


def bootstrap_rbac(ctx: DeployContext) -> None:
    """RBAC the apiserver needs to reach kubelets (applied when missing or changed)."""
    conf = str(ctx.data["kube_config_dir"])
    path = f"{conf}/rbac-apiserver-kubelet.yaml"
    kubeconfig = f"{conf}/admin.kubeconfig"
    manifest = _ops.template("RBAC: apiserver to kubelet",
                             "controlplane/rbac-apiserver-kubelet.yaml.j2", path)
    synced = _ops.sync([manifest])
    present = host.get_fact(ClusterRoleBindingExists, kubeconfig=kubeconfig, binding=RBAC_BINDING)
    if synced.changed(manifest) or not present:
        server.shell(name="apply RBAC: apiserver to kubelet",
                     commands=[apply_command(kubeconfig, path)])


def apply_command(kubeconfig: str, path: str) -> str:
    """kubectl apply of a manifest file on a master."""
    return f"kubectl --kubeconfig={shlex.quote(kubeconfig)} apply -f {shlex.quote(path)}"


def readyz_command(ctx: DeployContext) -> str:
    """Ask the local apiserver's /readyz over TLS with the admin certificate."""
    files = {flag: shlex.quote(f"{ctx.data['pki_dir']}/{name}") for flag, name in (
        ("cacert", "kubernetes-ca.crt"), ("cert", "admin.crt"), ("key", "admin.key"))}
    return (f"curl -sf --max-time 5 --cacert {files['cacert']} --cert {files['cert']} "
            f"--key {files['key']} https://127.0.0.1:{APISERVER_PORT}/readyz")
