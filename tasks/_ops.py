"""Small shared op patterns: install binaries, restart a service only when its inputs changed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyinfra.api.operation import OperationMeta
from pyinfra.operations import files, systemd

from kubesmith.context import DeployContext


def changed(ops: Sequence[OperationMeta]) -> Callable[[], bool]:
    """An `_if` condition: true when any of the ops changed something."""
    return lambda: any(op.did_change() for op in ops)


def install_binaries(ctx: DeployContext, component: str, files_: Sequence[str],
                     dest_dir: str) -> list[OperationMeta]:
    """Upload cached binaries (skipped when the remote checksum already matches)."""
    return [
        files.put(name=f"install {name}", src=ctx.binary(component, name),
                  dest=f"{dest_dir}/{name}", mode="755")
        for name in files_
    ]


def service(name: str, unit: OperationMeta, inputs: Sequence[OperationMeta]) -> None:
    """Reload units if the unit changed, restart if any input changed, keep it enabled+running."""
    systemd.daemon_reload(name=f"reload units for {name}", _if=unit.did_change)
    systemd.service(name=f"restart {name} (inputs changed)", service=f"{name}.service",
                    restarted=True, _if=changed([unit, *inputs]))
    systemd.service(name=f"{name} running and enabled", service=f"{name}.service",
                    running=True, enabled=True)
