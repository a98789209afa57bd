"""Reset: stop and remove everything kubesmith installed on a host."""

from __future__ import annotations

import io

from pyinfra.operations import server

from kubesmith import paths, services
from kubesmith.context import DeployContext
from tasks import _ops

DIRECTORIES = ("bin_dir", "kube_config_dir", "etcd_data_dir", "cni_conf_dir", "cni_bin_dir")


def values(ctx: DeployContext) -> dict[str, object]:
    """The reset script's values: services, binaries and paths come from their tables; the
    template quotes every one it passes to a shell command."""
    return {
        "services": " ".join(reversed(services.SERVICES)), "binaries": services.binary_files(),
        "paths": {k: v for k, v in vars(paths).items() if k.isupper()}, "unit_dir": paths.UNIT_DIR,
        **{k: ctx.data[k] for k in DIRECTORIES},
    }


def deploy(ctx: DeployContext) -> None:
    """Run the reset script, rendered with kubesmith's checked templates."""
    script = _ops.render("reset/reset.sh.j2", **values(ctx))
    server.script(name="reset host", src=io.StringIO(script))  # type: ignore[arg-type]
