"""etcd access control: every client certificate's CN is an etcd user with one role (the
certificate table says which); flannel's role reads its config and writes only its leases; then
authentication on. Users of pod hosts no longer in the inventory are deleted."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

from pyinfra import host
from pyinfra.operations import server

from kubesmith import certificates
from kubesmith.context import DeployContext
from kubesmith.model import Cluster
from tasks import _ops, etcd

# etcd's permission types in JSON (READ is 0, omitted).
READ, READWRITE = 0, 2
SECTION = "--kubesmith--"


@dataclass(frozen=True)
class Perm:
    """One permission of a role: its type, key and range end ("" for a single key)."""

    kind: int
    key: str
    range_end: str = ""


@dataclass
class Access:
    """etcd's access control as it is: auth on or off, users and their roles, flannel's perms."""

    enabled: bool = False
    users: dict[str, frozenset[str]] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)
    flannel: frozenset[Perm] = frozenset()


def flannel_perms(prefix: str) -> frozenset[Perm]:
    """flannel's role: read its network config, read and write its subnet leases (flanneld
    lists and watches `<prefix>/subnets` as a key prefix)."""
    subnets = f"{prefix}/subnets"
    return frozenset({Perm(READ, f"{prefix}/config"),
                      Perm(READWRITE, subnets, subnets[:-1] + chr(ord(subnets[-1]) + 1))})


def probe(ctx: DeployContext) -> str:
    """One shell command printing auth status, roles, flannel's role and every user's roles."""
    role = etcd.etcdctl(ctx, etcd.quoted("role", "get", certificates.FLANNEL_ROLE, "-w", "json"))
    users = etcd.etcdctl(ctx, "user list")
    each = etcd.etcdctl(ctx, 'user get -w json "$u"')
    return f"; echo {SECTION}; ".join([
        etcd.etcdctl(ctx, "auth status -w json"),
        etcd.etcdctl(ctx, "role list -w json"),
        f"{{ {role} || echo '{{}}'; }}",
        f"{users} | while read -r u; do printf '%s ' \"$u\"; {each}; done",
    ])


def _decoded(value: str) -> str:
    """A base64 key from etcd's JSON as text."""
    return base64.b64decode(value).decode(errors="replace")


def parse(output: str) -> Access | None:
    """The probe's output as an Access; None when etcd did not answer."""
    parts = [p.strip() for p in output.split(SECTION)]
    if len(parts) != 4 or not parts[0].startswith("{"):
        return None
    try:
        status, roles, flannel = (json.loads(p) for p in parts[:3])
    except ValueError:
        return None
    perms = frozenset(Perm(p.get("permType", READ), _decoded(p.get("key", "")),
                           _decoded(p.get("range_end", ""))) for p in flannel.get("perm", ()))
    users = {}
    for line in parts[3].splitlines():
        name, _sep, data = line.partition(" ")
        try:
            users[name] = frozenset(json.loads(data).get("roles", ()))
        except ValueError:
            continue
    return Access(bool(status.get("enabled")), users, set(roles.get("roles", ())), perms)


def _perm_args(verb: str, perm: Perm) -> tuple[str, ...]:
    """role grant-/revoke-permission arguments for one permission of flannel's role."""
    args = ("role", f"{verb}-permission", certificates.FLANNEL_ROLE)
    if verb == "grant":
        args += ("readwrite" if perm.kind == READWRITE else "read",)
    return (*args, perm.key, *((perm.range_end,) if perm.range_end else ()))


def plan(cluster: Cluster, prefix: str, current: Access) -> list[str]:
    """The etcdctl argument strings taking etcd from `current` to the table's users and roles,
    auth enabled last (root user first: etcd requires it)."""
    wanted = {"root": certificates.ETCD_ROOT_ROLE, **certificates.etcd_users(cluster)}
    steps: list[tuple[str, ...]] = [("role", "add", r) for r in sorted(set(wanted.values()))
                                    if r not in current.roles]
    perms = flannel_perms(prefix)
    steps += [_perm_args("revoke", p) for p in sorted(current.flannel - perms, key=repr)]
    steps += [_perm_args("grant", p) for p in sorted(perms - current.flannel, key=repr)]
    for user, role in sorted(wanted.items()):
        roles = current.users.get(user)
        if roles is None:
            steps.append(("user", "add", user, "--no-password"))
        if role not in (roles or ()):
            steps.append(("user", "grant-role", user, role))
        steps += [("user", "revoke-role", user, r) for r in sorted((roles or set()) - {role})]
    steps += [("user", "delete", u) for u in sorted(current.users)
              if u.startswith(certificates.FLANNEL_USER_PREFIX) and u not in wanted]
    if not current.enabled:
        steps.append(("auth", "enable"))
    return [etcd.quoted(*s) for s in steps]


def rounds(steps: list[str]) -> list[list[str]]:
    """The plan's steps in rounds whose steps may run at once: roles and users made, then the
    grants, revocations and deletions, then auth enabled (each etcdctl's round trip and etcd's
    commit overlap the others': one etcdctl after another took ~1.2 s on a new cluster)."""
    made = [s for s in steps if s.startswith(("role add ", "user add "))]
    last = [s for s in steps if s == "auth enable"]
    return [r for r in (made, [s for s in steps if s not in made + last], last) if r]


def deploy(ctx: DeployContext) -> None:
    """Users, roles and authentication on etcd, from this member (changed only when they differ)."""
    current = parse(host.get_fact(_ops.ShellOutput, probe=probe(ctx)))
    if current is None:
        # Not reachable during a dry run of a new cluster; otherwise the etcd phase had failed.
        current = Access()
    commands = plan(ctx.cluster, str(ctx.data["flannel_etcd_prefix"]), current)
    if commands:
        server.shell(name="etcd users, roles and authentication", commands=[" && ".join(
            _ops.at_once([etcd.etcdctl(ctx, c) for c in group]) for group in rounds(commands))])
