"""Check an inventory and its group data before any host is touched: one line per problem."""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from pyinfra.connectors.ssh import SSHConnector

from kubesmith import addons, certificates, paths, rules, settings
from kubesmith.errors import UserError
from kubesmith.inventory import Groups, host_data, host_names
from kubesmith.model import ROLES, Cluster, Host

ERROR = "error"
WARNING = "warning"

# Host data keys besides `ssh_*`: pyinfra's privilege arguments and kubesmith's own.
HOST_KEYS = ("address", "iface", "_sudo", "_sudo_user", "_use_sudo_password", "_su_user",
             "_doas", "_env")
SSH_KEYS = tuple(SSHConnector.data_meta)  # the ssh_* keys pyinfra's SSH connector reads
NETWORK_FIELDS = ("pod_cidr", "service_cidr")
MAX_VNI = 2**24 - 1
# A DNS-1123 subdomain, what the kubelet accepts as clusterDomain.
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
MAX_DNS_NAME = 253
MAX_DNS_LABEL = 63
SUGGEST_CUTOFF = 0.7  # difflib's 0.6 offers `masters` for a group named `others`

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Special-purpose IPv4 ranges no cluster network may overlap (no host or Service lives there).
SPECIAL_NETWORKS = tuple((ipaddress.IPv4Network(network), what) for network, what in (
    ("0.0.0.0/8", "unspecified ('this network')"), ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved")))
# flannel's per-host subnet length (tasks/flannel.py SUBNET_LEN): it leases /24s of pod_cidr,
# from the second (its SubnetMin) to the last.
FLANNEL_SUBNET_LEN = 24
# X.509's upper bound on a commonName (RFC 5280 ub-common-name): cryptography refuses longer.
MAX_COMMON_NAME = 64


@dataclass(frozen=True)
class Problem:
    """One finding: its level ("error" or "warning"), the host or field, and what to do."""

    level: str
    subject: str
    message: str

    def __str__(self) -> str:
        return rules.printable(f"{self.level}: {self.subject}: {self.message}")


class ValidationError(UserError):
    """Inventory or group data with errors; str() lists the error lines."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems if p.level == ERROR))

    def message(self) -> str:
        """The error lines, and that nothing was touched."""
        return f"{self}\nnothing was changed: fix the inventory and run again"


def check(groups: Groups, data: dict[str, object]) -> list[Problem]:
    """Every problem of the inventory and group data, errors and warnings alike."""
    hosts = host_data(groups)
    typed = list(_check_types(data))
    found = [
        *_check_groups(groups),
        *_check_etcd_quorum(groups),
        *_check_roles(groups),
        *_check_duplicate_names(groups),
        *_check_host_keys(hosts),
        *_check_addresses(hosts),
        *_check_shared_addresses(hosts),
        *_check_data_keys(data),
        *_check_versions(data),
        *_check_cidrs(data),
        *_check_pod_subnets(groups, data),
        *_check_overlap(data),
        *_check_hosts_outside_networks(hosts, data),
        *_check_service_ips(data),
        *_check_flannel_vni(data),
        *_check_cluster_domain(data),
        *_check_addons(data),
        *_check_hostile(groups, hosts, data),
    ]
    # A setting of the wrong type gets that one line, not every rule's complaint about it.
    return typed + [p for p in found if p.subject not in {t.subject for t in typed}]


def validate(groups: Groups, data: dict[str, object]) -> list[Problem]:
    """The warnings of a usable inventory; raises ValidationError if there is any error."""
    problems = check(groups, data)
    if any(p.level == ERROR for p in problems):
        raise ValidationError(problems)
    return problems


def _error(subject: str, message: str) -> Problem:
    """An error about subject."""
    return Problem(ERROR, subject, message)


def _warning(subject: str, message: str) -> Problem:
    """A warning about subject."""
    return Problem(WARNING, subject, message)


def _fix(word: str, candidates: Iterable[str], otherwise: str) -> str:
    """The "did you mean X?" advice for the closest candidate, else the fallback advice."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=SUGGEST_CUTOFF)
    return f"did you mean {matches[0]}?" if matches else otherwise


def _ip(value: object) -> IPAddress | None:
    """The IP address value denotes, or None."""
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _address(name: str, data: dict[str, object]) -> str:
    """The address the cluster uses for a host (as kubesmith.inventory.to_cluster does)."""
    return str(data.get("address") or data.get("ssh_hostname") or name)


def _check_groups(groups: Groups) -> Iterator[Problem]:
    """Each role group must have hosts; other groups are likely typos (one with group data of
    its own is refused when the inventory is read: kubesmith.inventory.foreign_group_data)."""
    for role in ROLES:
        if not groups.get(role):
            yield _error(role, f"no hosts: add a `{role} = [...]` list to the inventory")
    for group in groups:
        if group not in ROLES:
            advice = _fix(group, ROLES, "kubesmith only uses etcd, masters and nodes")
            yield _warning(group, f"unknown group, ignored: {advice}")


def _check_etcd_quorum(groups: Groups) -> Iterator[Problem]:
    """An even etcd cluster tolerates no more failures than one member fewer."""
    members = dict.fromkeys(name for name, _ in groups.get("etcd", []))
    if members and len(members) % 2 == 0:
        yield _warning("etcd", f"{len(members)} members: quorum: use an odd number (1, 3, 5)")


def _check_roles(groups: Groups) -> Iterator[Problem]:
    """A host outside every role group gets nothing."""
    in_role = {name for role in ROLES for name, _ in groups.get(role, [])}
    for name in host_names(groups):
        if name not in in_role:
            yield _warning(name, "not in etcd, masters or nodes: nothing will be deployed on it")


def _check_duplicate_names(groups: Groups) -> Iterator[Problem]:
    """A host listed twice in one group."""
    for group, entries in groups.items():
        for name, count in Counter(name for name, _ in entries).items():
            if count > 1:
                yield _error(name, f"listed {count} times in `{group}`: list each host once")


def _check_host_keys(hosts: dict[str, dict[str, object]]) -> Iterator[Problem]:
    """Host data keys neither pyinfra nor kubesmith reads (typos)."""
    for name, data in hosts.items():
        for key in map(str, data):
            if key not in HOST_KEYS + SSH_KEYS:
                otherwise = ("pyinfra's SSH connector reads no such key: remove it"
                             if key.startswith("ssh_") else "remove it")
                advice = _fix(key, HOST_KEYS + SSH_KEYS, otherwise)
                yield _error(name, f"unknown host data key {key!r}: {advice}")


def _check_addresses(hosts: dict[str, dict[str, object]]) -> Iterator[Problem]:
    """The cluster address (`address`, else ssh_hostname or the name) must be an IPv4 address
    the other hosts reach: it goes into certificates, URLs and unit files."""
    for name, data in hosts.items():
        if "address" in data:
            value, source = data["address"], ""
            if _ip(value) is None:
                yield _error(name, f"address {_shown(value)} is not an IP: set the host's IP")
                continue
        else:
            value = data.get("ssh_hostname") or name
            source = " (from ssh_hostname)" if data.get("ssh_hostname") else " (the host name)"
            if _ip(value) is None:
                yield _error(name, "no IP address: set `address` to the IP the other hosts "
                                   "reach it at (neither ssh_hostname nor the name is an IP)")
                continue
        if why := rules.cluster_address(value):
            yield _error(name, f"address {_shown(value)}{source} {why}")


def _check_shared_addresses(hosts: dict[str, dict[str, object]]) -> Iterator[Problem]:
    """Two hosts with one address."""
    owners: dict[str, str] = {}
    for name, data in hosts.items():
        address = _address(name, data)
        ip = _ip(address)
        first = owners.setdefault(str(ip) if ip else address.lower(), name)
        if first != name:
            yield _error(name, f"address {address} is also {first}'s: give each host its own")


def _check_data_keys(data: dict[str, object]) -> Iterator[Problem]:
    """Group data keys that group_data/all.py does not define (typos)."""
    known = settings.group_data()
    for key in map(str, data):
        if key not in known:
            advice = _fix(key, known, "remove it or define it in group_data/all.py")
            yield _error(key, f"unknown group data key: {advice}")


def _check_versions(data: dict[str, object]) -> Iterator[Problem]:
    """Every `*_version` must look like v1.2.3 (optionally with -pre or +build)."""
    for key, value in data.items():
        if str(key).endswith("_version") and not rules.version(value):
            yield _error(str(key), f"{value!r} is not a version: use one like v1.2.3")


def _check_cidrs(data: dict[str, object]) -> Iterator[Problem]:
    """The networks must be present, and every `*_cidr` a network _cidr accepts."""
    fields = dict.fromkeys([*NETWORK_FIELDS, *(str(k) for k in data if str(k).endswith("_cidr"))])
    for field in fields:
        if field not in data:
            yield _error(field, "missing: define it in group_data/all.py")
        elif why := _cidr(data[field])[1]:
            yield _error(field, why)


def _cidr(value: object) -> tuple[ipaddress.IPv4Network | None, str | None]:
    """A *_cidr value's network, or why it is none kubesmith accepts: an IPv4 network written
    a.b.c.d/len (what Go's net.ParseCIDR reads: the value is rendered as it is) outside special
    ranges."""
    text = str(value)
    try:
        network = ipaddress.ip_network(text)
    except ValueError as error:
        return None, f"invalid CIDR: {error}"
    if not isinstance(network, ipaddress.IPv4Network):
        return None, f"{network} is IPv6: IPv6 is not supported yet: use IPv4"
    if str(network) != text:
        fix = (f"use {network}" if "/" in text
               else f"add the prefix length, e.g. {network.network_address}/16")
        return None, f"invalid CIDR: {text!r} is not written a.b.c.d/len: {fix}"
    special = next(((s, what) for s, what in SPECIAL_NETWORKS if network.overlaps(s)), None)
    if special is not None:
        return None, (f"{network} overlaps the {special[1]} range {special[0]}: use a private "
                      "range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
    return network, None


def _canonical_network(value: object) -> ipaddress.IPv4Network | None:
    """The IPv4 network of a *_cidr value that _check_cidrs accepts, else None."""
    return _cidr(value)[0]


def _check_pod_subnets(groups: Groups, data: dict[str, object]) -> Iterator[Problem]:
    """pod_cidr must hold a flannel /24 for every host that runs flanneld (masters and nodes),
    counting from its second /24 (flannel's SubnetMin)."""
    pods = _canonical_network(data.get("pod_cidr"))
    if pods is None:
        return
    if pods.prefixlen >= FLANNEL_SUBNET_LEN:
        yield _error("pod_cidr", f"{pods} is not larger than flannel's per-host "
                                 f"/{FLANNEL_SUBNET_LEN} subnet: use a prefix shorter than "
                                 f"/{FLANNEL_SUBNET_LEN}, e.g. /16")
        return
    subnets = 2 ** (FLANNEL_SUBNET_LEN - pods.prefixlen) - 1
    hosts = len({name for role in ("masters", "nodes") for name, _ in groups.get(role, [])})
    if hosts > subnets:
        yield _error("pod_cidr", f"{pods} has {subnets} /{FLANNEL_SUBNET_LEN} subnet"
                                 f"{'s' if subnets > 1 else ''} for flannel (it never leases "
                                 f"the first) but {hosts} hosts run flanneld (masters and "
                                 "nodes): use a larger network, e.g. a /16")


def _check_overlap(data: dict[str, object]) -> Iterator[Problem]:
    """Pod and service networks must be disjoint."""
    pods, services = (_canonical_network(data.get(field)) for field in NETWORK_FIELDS)
    if pods and services and pods.overlaps(services):
        yield _error("service_cidr", f"{services} overlaps pod_cidr {pods}: use disjoint ranges")


def _check_hosts_outside_networks(hosts: dict[str, dict[str, object]],
                                  data: dict[str, object]) -> Iterator[Problem]:
    """No host address may fall in the pod or service network."""
    for field in NETWORK_FIELDS:
        network = _canonical_network(data.get(field))
        if network is None:
            continue
        for name, host in hosts.items():
            ip = _ip(_address(name, host))
            if ip is not None and ip in network:
                yield _error(name, f"address {ip} is inside {field} {network}: change {field}")


def _check_service_ips(data: dict[str, object]) -> Iterator[Problem]:
    """The service VIP (service_cidr's first address) and cluster_dns must be distinct
    addresses inside service_cidr that the apiserver allocates: not its network or broadcast
    address."""
    services = _canonical_network(data.get("service_cidr"))
    dns = _ip(data.get("cluster_dns"))
    if dns is None:
        value = data.get("cluster_dns")
        yield _error("cluster_dns", f"{value!r} is not an IP: use an address in service_cidr")
    if services is None:
        return
    if services.num_addresses < 4:
        yield _error("service_cidr", f"{services} has no room for the service VIP and "
                                     "cluster_dns besides its network and broadcast addresses: "
                                     "use e.g. a /24")
        return
    vip = services.network_address + 1
    if dns is not None and dns not in services:
        yield _error("cluster_dns", f"{dns} is outside service_cidr {services}: use one inside it")
    elif dns == vip:
        yield _error("cluster_dns", f"{dns} is the kubernetes service VIP: use another address")
    elif dns in (services.network_address, services.broadcast_address):
        what = "network" if dns == services.network_address else "broadcast"
        yield _error("cluster_dns", f"{dns} is service_cidr {services}'s {what} address, which "
                                    "the apiserver never allocates to a Service: use another "
                                    "address inside it")


def _check_flannel_vni(data: dict[str, object]) -> Iterator[Problem]:
    """flannel's VXLAN id must be an int in 1..2**24-1."""
    vni = data.get("flannel_vni")
    if isinstance(vni, bool) or not isinstance(vni, int) or not 1 <= vni <= MAX_VNI:
        yield _error("flannel_vni", f"{vni!r} is not a VXLAN id: use an int in 1..{MAX_VNI}")


def _check_cluster_domain(data: dict[str, object]) -> Iterator[Problem]:
    """cluster_domain must be a DNS name (lowercase labels of letters, digits and hyphens)."""
    domain = data.get("cluster_domain")
    if (not isinstance(domain, str) or len(domain) > MAX_DNS_NAME
            or not DNS_NAME.fullmatch(domain)
            or any(len(label) > MAX_DNS_LABEL for label in domain.split("."))):
        yield _error("cluster_domain", f"{domain!r} is not a DNS name: use lowercase labels of "
                     "letters, digits and '-' (at most 63 each) joined by dots, e.g. cluster.local")


def _check_addons(data: dict[str, object]) -> Iterator[Problem]:
    """`addons` must be a list of known add-on names, each listed once."""
    listed = data.get("addons", [])
    if not isinstance(listed, list | tuple) or not all(isinstance(a, str) for a in listed):
        yield _error("addons", f"{listed!r} is not a list of add-on names: use e.g. "
                     f"{list(addons.ADDONS)!r} (or [] for none)")
        return
    for name, count in Counter(listed).items():
        if name not in addons.ADDONS:
            advice = _fix(name, addons.ADDONS, f"known add-ons: {', '.join(addons.ADDONS)}")
            yield _error("addons", f"unknown add-on {name!r}: {advice}")
        elif count > 1:
            yield _error("addons", f"{name!r} listed {count} times: list each add-on once")


# Hostile and malformed values (issue 14): every value that reaches a shell, a unit file, a
# certificate or an SSH config has a strict rule; see README "Security".

TRUST_FLAG = "--trust-new-host-keys"
SECRET_KEYS = ("ssh_password", "ssh_key_password", "_use_sudo_password")
# Settings whose own rule already names a wrong type, and those checked above (and *_version,
# *_cidr): the rules below leave them alone.
OWN_TYPE_CHECK = ("flannel_vni", "cluster_domain", "addons")
CHECKED_ELSEWHERE = ("cluster_dns", "flannel_vni", "cluster_domain", "addons")
SHOWN = 60
Rule = Callable[[object], str | None]


def _shown(value: object) -> str:
    """A value for a message: its repr, one line, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN else f"{text[:SHOWN - 1]}…"


def _same_type(value: object, default: object) -> bool:
    """Whether a setting has its default's type (an int is no bool, a float may be an int)."""
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, float):
        return isinstance(value, int | float)
    return isinstance(value, type(default))


def _check_types(data: dict[str, object]) -> Iterator[Problem]:
    """Each setting has the type of its default in group_data/all.py (no list for a string)."""
    defaults = settings.group_data()
    for key, value in data.items():
        default = defaults.get(str(key))
        if default is None or key in OWN_TYPE_CHECK or _same_type(value, default):
            continue
        yield _error(str(key), f"{_shown(value)} is {rules.kind(value)}, not "
                               f"{rules.kind(default)} like the default {default!r}")


def _check_hostile(groups: Groups, hosts: dict[str, dict[str, object]],
                   data: dict[str, object]) -> Iterator[Problem]:
    """Host names, host data values and settings against their strict rules."""
    yield from _check_host_names(groups)
    yield from _check_host_data_agrees(groups)
    yield from _check_common_names(groups)
    yield from _check_host_values(hosts)
    yield from _check_settings(data)


def _check_host_names(groups: Groups) -> Iterator[Problem]:
    """Host names become node names, certificate names and file names: DNS-1123 subdomains."""
    for name in host_names(groups):
        if why := rules.dns_name(name):
            yield _error(repr(name), f"host name {why} (a Kubernetes node name: a DNS-1123 "
                                     "subdomain, FQDNs allowed)")


def _check_host_data_agrees(groups: Groups) -> Iterator[Problem]:
    """A host in several groups must not have two values for one key: which one it got would
    depend on the groups' order."""
    seen: dict[tuple[str, str], tuple[str, object]] = {}
    for group, entries in groups.items():
        for name, data in entries:
            for key, value in data.items():
                first = seen.setdefault((name, key), (group, value))
                if first[1] != value:
                    was, now = (("one value", "another") if key in SECRET_KEYS  # never shown
                                else (_shown(first[1]), _shown(value)))
                    yield _error(repr(name), f"{key} is {was} in {first[0]} but {now} in "
                                             f"{group}: give the host one value")
                    seen[(name, key)] = (group, value)  # (one line per differing value)


def _check_common_names(groups: Groups) -> Iterator[Problem]:
    """Host names go into certificate CNs (system:node:<name>, flannel-<name>, <name>), which
    X.509 limits to 64 characters: found from the certificate table itself, per host."""
    names = [n for n in host_names(groups) if rules.dns_name(n) is None]
    roles = {role: {n for n, _ in groups.get(role, [])} for role in ROLES}
    hosts = tuple(Host(n, "192.0.2.1", frozenset(r for r in ROLES if n in roles[r]))
                  for n in names)
    if not any(h.has("masters") for h in hosts):
        return  # no cluster to issue for: the missing group is reported already
    longest: dict[str, str] = {}
    for credential in certificates.table(Cluster(hosts=hosts)):
        if credential.spec is None or len(credential.hosts) != 1:
            continue
        name, common_name = credential.hosts[0].name, credential.spec.common_name
        if name in common_name and len(common_name) > len(longest.get(name, "")):
            longest[name] = common_name
    for name, common_name in longest.items():
        if len(common_name) > MAX_COMMON_NAME:
            most = MAX_COMMON_NAME - (len(common_name) - len(name))
            yield _error(repr(name), f"host name makes the certificate CN {common_name!r} "
                                     f"{len(common_name)} characters long: X.509 allows at most "
                                     f"{MAX_COMMON_NAME}: use a name of at most {most} "
                                     "characters for this host's roles")


def _boolean(value: object) -> str | None:
    """True or False."""
    return None if isinstance(value, bool) else f"is {rules.kind(value)}: use True or False"


def _port(value: object) -> str | None:
    """A TCP port number."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535
    return None if ok else "is not a port: use an int in 1..65535"


def _count(value: object) -> str | None:
    """A number of retries."""
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
    return None if ok else "is not a count: use an int >= 0"


def _delay(value: object) -> str | None:
    """Seconds to wait."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return None if ok else "is not a delay: use seconds >= 0"


def _secret(value: object) -> str | None:
    """A password (or True): any printable text, never shown in a message."""
    if isinstance(value, bool) or value is None:
        return None
    if not isinstance(value, str):
        return f"is {rules.kind(value)}, not a string"
    char = rules.control_char(value)
    return None if char is None else f"contains the control character {char!r}"


def _protocol(value: object) -> str | None:
    """pyinfra's file transfer protocol."""
    return None if value in ("sftp", "scp") else "is not a transfer protocol: use sftp or scp"


def _strict(value: object) -> str | None:
    """Host key checking: only "yes" (first use is trusted with the flag, per run)."""
    if value == "yes":
        return None
    return (f"turns strict host key checking off: kubesmith refuses unknown host keys: remove "
            f"it, and pin a new host's key once with {TRUST_FLAG}")


def _environment(value: object) -> str | None:
    """Environment variables for remote commands (pyinfra quotes their values)."""
    if not isinstance(value, dict):
        return f"is {rules.kind(value)}: use a dict of NAME: value"
    for key, item in value.items():
        if not isinstance(key, str) or not rules.ENV_NAME.fullmatch(key):
            return f"has the variable name {_shown(key)}: use A-Z a-z 0-9 _"
        if why := _secret(item):
            return f"{key} {why}"
    return None


def _nested(value: object) -> str | None:
    """Any other value: no control character anywhere in it."""
    char = rules.nested_control(value)
    return None if char is None else f"contains the control character {char!r}"


HOST_RULES: dict[str, Rule] = {
    "iface": lambda v: None if v is None else rules.iface(v),
    "ssh_hostname": rules.ssh_host, "ssh_port": _port, "ssh_user": rules.user,
    "ssh_password": _secret, "ssh_key": rules.local_path, "ssh_key_password": _secret,
    "ssh_allow_agent": _boolean, "ssh_look_for_keys": _boolean, "ssh_forward_agent": _boolean,
    "ssh_config_file": rules.local_path, "ssh_known_hosts_file": rules.local_path,
    "ssh_strict_host_key_checking": _strict, "ssh_paramiko_connect_kwargs": _nested,
    "ssh_connect_retries": _count, "ssh_connect_retry_min_delay": _delay,
    "ssh_connect_retry_max_delay": _delay, "ssh_file_transfer_protocol": _protocol,
    "_sudo": _boolean, "_sudo_user": rules.user, "_use_sudo_password": _secret,
    "_su_user": rules.user, "_doas": _boolean, "_env": _environment,
}


def _check_host_values(hosts: dict[str, dict[str, object]]) -> Iterator[Problem]:
    """Each known host data key's value against its rule (secrets are never shown)."""
    for name, data in hosts.items():
        for key, value in data.items():
            rule = HOST_RULES.get(str(key))
            if key == "address" or rule is None and key not in SSH_KEYS:
                continue  # the address has its own check; unknown keys are reported already
            why = (rule or _nested)(value)
            if why is not None:
                shown = "" if key in SECRET_KEYS else f" {_shown(value)}"
                yield _error(name, f"{key}{shown} {why}")


def _setting_rule(key: str) -> Rule | None:
    """The rule of a setting (None: checked by the network, version and VNI checks)."""
    if key == "bin_dir":  # installed into, never removed or chmod'ed: /usr/local/bin is fine
        return lambda v: rules.directory(v, owned_by_kubesmith=False)
    if key.endswith("_dir"):
        return rules.directory
    if key.startswith("leader_elect_"):
        return rules.duration
    if key.endswith("_cert_lifetime"):
        return rules.lifetime
    if key == "flannel_etcd_prefix":
        return rules.etcd_prefix
    if key == "ssh_strict_host_key_checking":
        return _strict
    if key == "apiserver_endpoint":
        return rules.apiserver_endpoint
    if key == "cluster_name":
        return rules.cluster_name
    if key.endswith(("_version", "_cidr")) or key in CHECKED_ELSEWHERE:
        return None
    return rules.plain


def _check_settings(data: dict[str, object]) -> Iterator[Problem]:
    """Every known setting's value against its rule."""
    known = settings.group_data()
    for key, value in data.items():
        rule = _setting_rule(str(key)) if str(key) in known else None
        if rule is not None and (why := rule(value)):
            yield _error(str(key), f"{_shown(value)} {why}")
    yield from _check_lifetimes(data)
    yield from _check_leader_election(data)
    yield from _check_directories(data, known)


def _check_lifetimes(data: dict[str, object]) -> Iterator[Problem]:
    """A leaf certificate must not be meant to outlive its CA."""
    leaf, ca = data.get("leaf_cert_lifetime"), data.get("ca_cert_lifetime")
    if rules.lifetime(leaf) is None and rules.lifetime(ca) is None and \
            rules.lifetime_of(str(leaf)) >= rules.lifetime_of(str(ca)):
        yield _error("leaf_cert_lifetime", f"{_shown(leaf)} is not shorter than "
                     f"ca_cert_lifetime {_shown(ca)}: a leaf certificate must not outlive its CA")


LEASE, RENEW, RETRY = (f"leader_elect_{k}" for k in ("lease_duration", "renew_deadline",
                                                       "retry_period"))
# client-go's leaderelection.JitterFactor: NewLeaderElector requires
# lease_duration > renew_deadline > JitterFactor * retry_period (and each > 0).
JITTER_FACTOR = 1.2


def _check_leader_election(data: dict[str, object]) -> Iterator[Problem]:
    """The leader election durations in client-go's order (kube-controller-manager and
    kube-scheduler exit at start otherwise)."""
    values = {key: data.get(key) for key in (LEASE, RENEW, RETRY)}
    if any(rules.duration(v) is not None for v in values.values()):
        return  # each one's own problem is reported already
    lease, renew, retry = (rules.duration_ns(str(v)) for v in values.values())
    rule = ("client-go's leader election requires lease_duration > renew_deadline > "
            f"{JITTER_FACTOR} × retry_period")
    if lease <= renew:
        yield _error(LEASE, f"{_shown(values[LEASE])} is not longer than {RENEW} "
                            f"{_shown(values[RENEW])}: {rule}")
    if renew <= int(JITTER_FACTOR * retry):  # Go: time.Duration(JitterFactor * float64(retry))
        yield _error(RENEW, f"{_shown(values[RENEW])} is not longer than {JITTER_FACTOR} × "
                            f"{RETRY} {_shown(values[RETRY])}: {rule}")


# kubesmith's fixed directories on the hosts, which no *_dir setting may equal, hold or be in.
FIXED_DIRS = (paths.STATE_DIR, paths.KUBELET_DIR, paths.KUBE_PROXY_DIR, paths.CONTAINERD_CONF_DIR,
              paths.CONTAINERD_DIR, paths.LOG_DIR, paths.FLANNEL_RUN_DIR,
              paths.APISERVER_LB_RUN_DIR)
# The one nesting kubesmith's layout uses (its defaults): pki_dir inside kube_config_dir.
NESTED_DIRS = (("pki_dir", "kube_config_dir"),)
DIRS_RULE = ("kubesmith chmods, chowns (etcd_data_dir: chown -R etcd) and resets each on its "
             "own: use separate directories (only pki_dir may be inside kube_config_dir)")


def _inside(path: str, directory: str) -> bool:
    """Whether a normalized absolute path is inside a directory (not equal to it)."""
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def _check_directories(data: dict[str, object], known: dict[str, object]) -> Iterator[Problem]:
    """No two *_dir settings (bin_dir included) may be equal or nested (but for pki_dir in
    kube_config_dir), nor one equal, hold or be in a fixed directory of kubesmith's (known: the
    defaults, group_data/all.py)."""
    dirs = {str(k): str(v) for k, v in data.items() if str(k).endswith("_dir")
            and str(k) in known and (rule := _setting_rule(str(k))) and rule(v) is None}
    keys = list(dirs)
    for index, key in enumerate(keys):
        for other in keys[:index]:
            one, two = dirs[key], dirs[other]
            if (key, other) in NESTED_DIRS and _inside(one, two) or \
                    (other, key) in NESTED_DIRS and _inside(two, one):
                continue
            # Named after the one changed from its default, when only one is.
            subject, peer = ((other, key) if dirs[key] == known.get(key)
                             and dirs[other] != known.get(other) else (key, other))
            if relation := _relation(dirs[subject], dirs[peer]):
                yield _error(subject, f"{dirs[subject]!r} {relation} {peer} {dirs[peer]!r}: "
                                      f"{DIRS_RULE}")
        for fixed in FIXED_DIRS:
            if relation := _relation(dirs[key], fixed):
                yield _error(key, f"{dirs[key]!r} {relation} kubesmith's own directory "
                                  f"{fixed}: {DIRS_RULE}")


def _relation(one: str, two: str) -> str | None:
    """How directory one relates to directory two: "is also", "is inside", "holds", or None."""
    if one == two:
        return "is also"
    if _inside(one, two):
        return "is inside"
    if _inside(two, one):
        return "holds"
    return None


def check_settings(data: dict[str, object]) -> None:
    """Raise ValidationError for any error in settings alone (commands without an inventory)."""
    typed = list(_check_types(data))
    bad = {p.subject for p in typed}
    found = [*_check_data_keys(data), *_check_versions(data), *_check_settings(data)]
    errors = typed + [p for p in found if p.subject not in bad]
    if errors:
        raise ValidationError(errors)
