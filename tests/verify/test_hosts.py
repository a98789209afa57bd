"""Every host: private keys are 0600 and the PKI directory 0700; services run the pinned
versions."""

from __future__ import annotations

from kubesmith import versions
from kubesmith.model import Host
from tests.verify.conftest import remote


def test_private_keys_0600(ctx, any_host: Host) -> None:
    host = remote(any_host.name)
    pki = str(ctx.data["pki_dir"])
    assert host.file(pki).mode == 0o700, f"{pki} is {oct(host.file(pki).mode)}"
    conf = str(ctx.data["kube_config_dir"])
    listing = host.check_output(
        f"find {conf} \\( -name '*.key' -o -name '*.kubeconfig' \\) -printf '%m %p\\n'")
    loose = [line.split()[1] for line in listing.splitlines() if line.split()[0] != "600"]
    assert not loose, f"not 0600: {', '.join(loose)}"


def test_services_run_the_pinned_versions(ctx, any_host: Host) -> None:
    """Each service's running process (and runc) reports the version the inventory pins: a
    half-upgraded host fails here."""
    keys = versions.watched(ctx.cluster, any_host)
    pinned = versions.targets(ctx.data, keys)
    running = versions.parse(remote(any_host.name).check_output(
        versions.probe(ctx.cluster, any_host, str(ctx.data["bin_dir"]))))
    wrong = {name: str(v) for name, v in running.items() if name in pinned and v != pinned[name]}
    assert not wrong, f"not at the pinned version: {wrong}"
