"""The kubelet's resolvConf: the first file naming a resolver off loopback, per node."""

from __future__ import annotations

import pytest

from tasks import node


@pytest.mark.parametrize(("listing", "chosen"), [
    ("/etc/resolv.conf 10.0.0.2\n/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"),
    ("/etc/resolv.conf 127.0.0.53\n/run/systemd/resolve/resolv.conf 10.0.0.2 10.0.0.3",
     "/run/systemd/resolve/resolv.conf"),
    ("/etc/resolv.conf 127.0.0.1 ::1 fe80::1%eth0\n/run/systemd/resolve/resolv.conf",
     "/etc/resolv.conf"),
    ("/etc/resolv.conf 127.0.0.53\n/run/systemd/resolve/resolv.conf 127.0.0.1", None),
    ("/etc/resolv.conf\n/run/systemd/resolve/resolv.conf", None),
])
def test_kubelet_resolv_conf_skips_local_stubs(listing: str, chosen: str | None) -> None:
    assert node.resolv_conf(listing) == chosen
