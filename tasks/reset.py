"""Reset: stop and remove everything kubesmith installed on a host."""

from __future__ import annotations

from pyinfra.operations import server

from kubesmith import paths, services
from kubesmith.context import TEMPLATES, DeployContext


def deploy(ctx: DeployContext) -> None:
    """Run the reset script: services, binaries and paths come from their tables."""
    server.script_template(
        name="reset host", src=str(TEMPLATES / "reset/reset.sh.j2"),
        services=" ".join(reversed(services.SERVICES)), binaries=services.binary_files(),
        paths={k: v for k, v in vars(paths).items() if k.isupper()}, unit_dir=paths.UNIT_DIR,
        **{k: ctx.data[k] for k in ("bin_dir", "kube_config_dir", "etcd_data_dir",
                                    "cni_conf_dir", "cni_bin_dir")})
