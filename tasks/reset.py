"""Reset: stop and remove what the host's manifest says kubesmith installed there, nothing else."""

from __future__ import annotations

import io

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.operations import server

from kubesmith import manifest, paths
from kubesmith.context import DeployContext
from tasks import _ops


class Manifest(FactBase):
    """The text of the host's manifest (empty when it has none)."""

    @staticmethod
    def default() -> str:
        return ""

    def command(self) -> str:
        return f"cat {manifest.PATH} 2>/dev/null || true"

    def process(self, output: list[str]) -> str:
        return "\n".join(output)


def values(entries: list[manifest.Entry]) -> dict[str, object]:
    """The reset script's values, all from the manifest's entries (checked when parsed); the
    template quotes every one it passes to a shell command."""
    files = manifest.of_kind(entries, "file")
    tools = {name: next((f for f in files if f.endswith(f"/{name}")), "")
             for name in ("crictl", "ctr")}
    return {
        # Services stop in the reverse of their install order (nodes first, etcd last).
        "units": manifest.units(entries)[::-1], "files": files, "tools": tools,
        # Deepest first: a directory inside another is handled before its parent.
        "dirs": sorted(manifest.of_kind(entries, "dir"), reverse=True),
        **{f"{kind}s": manifest.of_kind(entries, kind)
           for kind in ("link", "chain", "user", "package", "slice")},
        "manifest": manifest.PATH, "sums": paths.SUMS, "unit_dir": paths.UNIT_DIR,
    }


def deploy(ctx: DeployContext) -> None:
    """Run the reset script rendered from this host's manifest (read back and checked first)."""
    entries = manifest.parse(host.name, host.get_fact(Manifest))
    script = _ops.render("reset/reset.sh.j2", **values(entries))
    server.script(name="reset host", src=io.StringIO(script))  # type: ignore[arg-type]
