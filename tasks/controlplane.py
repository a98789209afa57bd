"""Master daemons: kube-apiserver, kube-controller-manager, kube-scheduler."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith.context import DeployContext
from tasks import _ops

BINARIES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
SERVICES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
RBAC_BINDING = "kubesmith:kube-apiserver-kubelet-client"


def deploy(ctx: DeployContext) -> None:
    """Install the control plane on this master; restart only what changed."""
    me = ctx.cluster.host(host.name)
    values = ctx.values(me)
    conf = str(ctx.data["kube_config_dir"])
    ops = _ops.sync([
        *_ops.binaries(ctx, "kubernetes", BINARIES, str(ctx.data["bin_dir"])),
        _ops.template("secrets encryption config (aescbc)",
                      "controlplane/encryption-config.yaml.j2", f"{conf}/encryption-config.yaml",
                      "600", encryption_key=ctx.pki.encryption_key()),
        _ops.template("audit policy", "controlplane/audit-policy.yaml.j2",
                      f"{conf}/audit-policy.yaml", "600"),
        _ops.template("scheduler configuration", "controlplane/kube-scheduler.yaml.j2",
                      f"{conf}/kube-scheduler.yaml", **values),
        *(_ops.template(f"{name} unit", f"controlplane/{name}.service.j2",
                        f"/etc/systemd/system/{name}.service", "600", **values)
          for name in SERVICES),
    ])
    replaced = ctx.replaced_any
    inputs = {
        "kube-apiserver": [ops["secrets encryption config (aescbc)"], ops["audit policy"],
                           replaced(me.name, "kube-apiserver.", "apiserver-", "kubernetes-ca",
                                    "etcd-ca", "sa.")],
        "kube-controller-manager": [replaced(me.name, "kube-controller-manager", "kubernetes-ca",
                                             "sa.")],
        "kube-scheduler": [ops["scheduler configuration"], replaced(me.name, "kube-scheduler")],
    }
    _ops.services([_ops.Service(name, ops[f"{name} unit"], [ops[f"install {name}"], *inputs[name]])
                   for name in SERVICES])


class ClusterRoleBindingExists(FactBase):
    """Whether a ClusterRoleBinding exists, asked with the master's admin kubeconfig."""

    @staticmethod
    def default() -> bool:
        return False

    def command(self, kubeconfig: str, binding: str) -> str:
        return (f"kubectl --kubeconfig={kubeconfig} get clusterrolebinding {binding} "
                "-o name 2>/dev/null || true")

    def process(self, output: list[str]) -> bool:
        return any(line.strip() for line in output)


def bootstrap_rbac(ctx: DeployContext) -> None:
    """RBAC the apiserver needs to reach kubelets (applied when missing or changed)."""
    conf = str(ctx.data["kube_config_dir"])
    path = f"{conf}/rbac-apiserver-kubelet.yaml"
    kubeconfig = f"{conf}/admin.kubeconfig"
    ops = _ops.sync([_ops.template("RBAC: apiserver to kubelet",
                                   "controlplane/rbac-apiserver-kubelet.yaml.j2", path)])
    present = host.get_fact(ClusterRoleBindingExists, kubeconfig=kubeconfig, binding=RBAC_BINDING)
    if ops["RBAC: apiserver to kubelet"] or not present:
        server.shell(name="apply RBAC: apiserver to kubelet",
                     commands=[f"kubectl --kubeconfig={kubeconfig} apply -f {path}"])


def readyz_command(ctx: DeployContext) -> str:
    """Ask the local apiserver's /readyz over TLS with the admin certificate."""
    pki = ctx.data["pki_dir"]
    return (f"curl -sf --max-time 5 --cacert {pki}/kubernetes-ca.crt --cert {pki}/admin.crt "
            f"--key {pki}/admin.key https://127.0.0.1:6443/readyz")
