"""Each node's local apiserver balancer: Debian's haproxy, installed from cached packages with
dpkg, run as apiserver-lb.service; a change of masters reloads it (its master process stays)."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.operations import server

from kubesmith import manifest, paths
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from kubesmith.model import Host
from kubesmith.services import APISERVER_LB_PORT, APISERVER_PORT
from tasks import _ops, artifacts

SERVICE = "apiserver-lb"
PACKAGE = COMPONENTS["haproxy"]
INSTALLED = "dpkg-query -W -f='${Version} ${db:Status-Abbrev}' haproxy"


def _install_command(debs: list[_ops.Item]) -> str:
    """Mask Debian's own haproxy unit (its postinst would start it), then dpkg -i the files,
    without the SysV init script. The postinst reloads systemd before it tries to start the
    unit, which then finds it masked; only where the package's unit is there already (systemd
    may have it loaded) is systemd reloaded first."""
    files = " ".join(shlex.quote(d.dest) for d in debs)
    return (f"ln -sfn /dev/null {paths.HAPROXY_DEBIAN_UNIT} && "
            f"{{ [ ! -e {paths.HAPROXY_PACKAGE_UNIT} ] || systemctl daemon-reload; }} && "
            f"DEBIAN_FRONTEND=noninteractive dpkg --path-exclude={paths.HAPROXY_INIT_SCRIPT} "
            f"-i {files}")


def values(ctx: DeployContext, me: Host) -> dict[str, object]:
    """The unit's and configuration's values: ports, paths and every master as a backend."""
    return {**ctx.values(me), "lb_port": APISERVER_LB_PORT, "apiserver_port": APISERVER_PORT,
            "config": f"{ctx.data['kube_config_dir']}/{SERVICE}.cfg",
            "stats_socket": paths.APISERVER_LB_STATS,
            "backends": [{"name": m.name, "address": m.address} for m in ctx.cluster.masters]}


def deploy(ctx: DeployContext) -> None:
    """Install haproxy, render its configuration (every master a backend) and run it."""
    version = str(ctx.data[PACKAGE.version_key])
    values_ = values(ctx, ctx.cluster.host(host.name))
    config = str(values_["config"])
    debs = artifacts.files(ctx, "haproxy", PACKAGE.files, f"{paths.DEB_DIR}/haproxy")
    cfg = _ops.template(f"{SERVICE} configuration (backends: every master)",
                        "apiserver-lb/haproxy.cfg.j2", config, "600", **values_)
    unit = _ops.template(f"{SERVICE} unit", "apiserver-lb/apiserver-lb.service.j2",
                         paths.unit(SERVICE), "644", **values_)
    synced = _ops.sync([_ops.directory(paths.DEB_DIR, "700"),
                        _ops.directory(f"{paths.DEB_DIR}/haproxy", "700"), *debs, cfg, unit])
    probe = f'echo "pkg=$({INSTALLED})"; echo "mask=$(readlink {paths.HAPROXY_DEBIAN_UNIT})"'
    found = dict(line.partition("=")[::2] for line in
                 host.get_fact(_ops.ShellOutput, probe=probe).splitlines())
    installed = found.get("pkg", "").strip()
    # kubesmith's package (not one the host had; masked by kubesmith): reset purges it.
    if not installed or found.get("mask", "").strip() == "/dev/null":
        _ops.record([manifest.line("package", "haproxy"),
                     manifest.line("file", paths.HAPROXY_DEBIAN_UNIT)], synced.recorded)
    if installed != f"{version} ii" or synced.changed(*debs):
        server.shell(name=f"install haproxy {version} from local packages (dpkg)",
                     commands=[_install_command(debs)])
    _ops.services(ctx, synced, [_ops.Service(SERVICE, unit, [*debs, cfg], reload=True)])
