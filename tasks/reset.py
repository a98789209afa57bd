"""Reset: stop and remove everything kubesmith installed on a host."""

from __future__ import annotations

from pyinfra.operations import server

from kubesmith.context import DeployContext


def deploy(ctx: DeployContext) -> None:
    """Run the reset script (a template, so paths come from group data)."""
    server.script_template(name="reset host", src=ctx.template("reset", "reset.sh.j2"),
                           **{k: ctx.data[k] for k in ("bin_dir", "kube_config_dir",
                                                       "etcd_data_dir", "cni_conf_dir",
                                                       "cni_bin_dir")})
