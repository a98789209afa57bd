"""The lab bridge on this machine (iproute2), and the check that its subnet is free."""

from __future__ import annotations

import ipaddress
import json
import subprocess

from kubesmith.errors import UserError


class SubnetInUse(UserError):
    """The lab subnet overlaps a route this machine already has."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name: str) -> bool:
    """Whether a network link of that name exists."""
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def check_subnet_free(subnet: str, bridge: str) -> None:
    """Raise SubnetInUse if a route of this machine, other than our bridge's, overlaps it."""
    routes = json.loads(_ip("-j", "route", "show", "table", "all").stdout or "[]")
    check_routes(subnet, bridge, routes)


def check_routes(subnet: str, bridge: str, routes: list[dict]) -> None:
    """Raise SubnetInUse if one of the routes (`ip -j route` form) overlaps the subnet."""
    net = ipaddress.ip_network(subnet)
    for route in routes:
        dst = route.get("dst", "")
        if dst in ("default", "") or route.get("dev") == bridge or ":" in dst:
            continue
        try:
            other = ipaddress.ip_network(dst, strict=False)
        except ValueError:
            continue
        if other.version == net.version and other.overlaps(net) and other.prefixlen > 0:
            raise SubnetInUse(
                f"lab subnet {subnet} overlaps route {dst} on dev {route.get('dev')}; "
                "choose another with --subnet"
            )


def ensure_bridge(bridge: str, gateway: str, prefix_len: int) -> None:
    """Create the bridge with the gateway address, if it is not there yet."""
    if not link_exists(bridge):
        _ip("link", "add", bridge, "type", "bridge")
    addrs = json.loads(_ip("-j", "addr", "show", "dev", bridge).stdout)
    have = {a["local"] for entry in addrs for a in entry.get("addr_info", [])}
    if gateway not in have:
        _ip("addr", "add", f"{gateway}/{prefix_len}", "dev", bridge)
    _ip("link", "set", bridge, "up")


def remove_bridge(bridge: str, only_if_unused: bool = False) -> None:
    """Delete the bridge and any host veth still attached to it (a stopped host's netns can
    outlive its processes while the kernel holds a reference; its veth must not stay behind).

    With only_if_unused, a bridge that still has ports (another lab's hosts) is left alone.
    """
    if not link_exists(bridge):
        return
    ports = json.loads(_ip("-j", "link", "show", "master", bridge).stdout or "[]")
    if ports and only_if_unused:
        return
    for port in ports:
        _ip("link", "delete", port["ifname"], check=False)
    _ip("link", "delete", bridge)
