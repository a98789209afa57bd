"""Every host: private keys are 0600 and the PKI directory 0700."""

from __future__ import annotations

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
