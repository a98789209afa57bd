"""What an inventory or settings value may look like: each rule returns why a value is refused
(None when it is fine). Validation, templates, shell commands and verify share these rules."""

from __future__ import annotations

import ipaddress
import posixpath
import re
import unicodedata
from datetime import timedelta

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")
DNS_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-.")
IFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")
USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
DIRECTORY = re.compile(r"/[A-Za-z0-9_./-]*")
LOCAL_PATH = re.compile(r"[A-Za-z0-9_.,/~+@:=-]+")
DURATION = re.compile(r"([0-9]+)(ms|s|m|h)")
DURATION_NS = {"ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
# Go's time.Duration is an int64 of nanoseconds: 2562047h is the longest whole number of hours.
MAX_DURATION_NS = 2**63 - 1
# Certificate lifetimes: minutes, hours or days (15m, 12h, 365d), from 2 minutes to 100 years.
LIFETIME = re.compile(r"([0-9]{1,6})(m|h|d)")
LIFETIME_UNITS = {"m": "minutes", "h": "hours", "d": "days"}
MIN_LIFETIME = timedelta(minutes=2)
MAX_LIFETIME = timedelta(days=36500)
ETCD_PREFIX = re.compile(r"(/[A-Za-z0-9_.-]+)+")
# kube-apiserver's etcd key prefix: its default, as its unit sets no --etcd-prefix.
APISERVER_ETCD_PREFIX = "/registry"
# Upstream versions (v1.2.3-rc.1+build) and Debian package versions (2.6.12-1+deb12u4).
VERSION = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+([-+~][0-9A-Za-z.+~-]+)?")
# A setting without a rule of its own: one word of these characters (no shell or YAML syntax).
PLAIN = re.compile(r"[A-Za-z0-9_.:/,=+@-]*")
# flannel's subnet lease names: <network address>-<prefix length>, e.g. 10.200.7.0-24.
LEASE = re.compile(r"([0-9]{1,3}\.){3}[0-9]{1,3}-[0-9]{1,2}")
ETCD_MEMBER_ID = re.compile(r"[0-9a-f]{1,16}")
# Characters systemd interprets inside a unit file value (quotes, escapes, $VAR, %-specifiers).
UNIT_SPECIAL = set("\"'\\$%;")
MAX_NAME = 253
MAX_LABEL = 63
# What glibc's inet_aton (so getaddrinfo, curl, Python, haproxy) reads as an IPv4 address: 1-4
# dot-separated numbers, decimal, octal (leading 0) or hex (0x): 010.0.0.100 is 8.0.0.100.
NUMERIC_HOST = re.compile(r"(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}")

# Directories the system owns: kubesmith must never chmod, chown or `rm -rf` them. Their whole
# tree is off limits too for the TREES.
SYSTEM_DIRS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32",
    "/lost+found", "/media", "/mnt", "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys",
    "/tmp", "/usr", "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib64", "/usr/libexec",
    "/usr/include", "/usr/share", "/usr/src", "/usr/local", "/usr/local/bin", "/usr/local/sbin",
    "/usr/local/lib", "/usr/local/share", "/usr/local/etc", "/usr/local/include", "/var",
    "/var/lib", "/var/log", "/var/cache", "/var/tmp", "/var/run", "/var/spool", "/var/mail",
    "/var/opt", "/var/local", "/var/backups", "/etc/default", "/etc/sysctl.d",
    "/etc/modules-load.d", "/etc/systemd/system", "/opt/bin",
})
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/boot", "/home", "/root", "/bin", "/sbin", "/lib",
                "/lib32", "/lib64", "/libx32", "/etc/ssh", "/etc/ssl", "/etc/pam.d",
                "/etc/sudoers.d", "/etc/security", "/etc/systemd", "/etc/apt", "/usr/bin",
                "/usr/sbin", "/usr/lib", "/usr/share", "/usr/include", "/usr/libexec", "/run")


def kind(value: object) -> str:
    """A value's type name for messages."""
    return type(value).__name__


def control_char(text: str) -> str | None:
    """The first control or line-breaking character of a text (newline, tab, DEL, U+2028…)."""
    for char in text:
        if unicodedata.category(char) in ("Cc", "Zl", "Zp"):
            return char
    return None


def printable(text: str) -> str:
    """The text with control characters escaped: always one line, never a terminal sequence."""
    return "".join(c if control_char(c) is None else repr(c)[1:-1] for c in text)


def nested_control(value: object) -> str | None:
    """The first control character in a value or in the strings a list or dict holds."""
    if isinstance(value, str):
        return control_char(value)
    items: list[object] = []
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple | set | frozenset):
        items = list(value)
    return next((c for c in map(nested_control, items) if c is not None), None)


def dns_name(value: object) -> str | None:
    """A DNS-1123 subdomain (a Kubernetes node name): lowercase labels of 1-63, 253 in all."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME:
        return f"is {len(value)} characters long: at most {MAX_NAME}"
    bad = next((c for c in value if c not in DNS_CHARS), None)
    if bad is not None:
        if "A" <= bad <= "Z":
            return "has uppercase letters: use lowercase"
        return f"has the character {bad!r}: use a-z, 0-9, '-' and '.'"
    for label in value.split("."):
        if not label:
            return "has an empty label (a leading, trailing or double '.')"
        if len(label) > MAX_LABEL:
            return f"has a label of {len(label)} characters: at most {MAX_LABEL}"
        if not DNS_LABEL.fullmatch(label):
            return f"has the label {label!r}: labels start and end with a letter or digit"
    if NUMERIC_HOST.fullmatch(value) and not _ipv4(value):
        return ("looks like an IPv4 address but is not one (a.b.c.d, each 0-255, no leading "
                "zeros): resolvers misread such names (010.0.0.100 as 8.0.0.100, 0x10 as "
                "0.0.0.16) or look them up in DNS")
    return None


def _ipv4(value: str) -> bool:
    """Whether a text is an IPv4 address in dotted decimal (no leading zeros)."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def cluster_address(value: object) -> str | None:
    """An IPv4 address other hosts can reach: no scope, not loopback, multicast or link-local."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return "is not an IP"
    if ip.version == 6:
        return "is IPv6: IPv6 is not supported yet: use the host's IPv4 address"
    for test, what in ((ip.is_unspecified, "unspecified"), (ip.is_loopback, "loopback"),
                       (ip.is_multicast, "multicast"), (ip.is_link_local, "link-local"),
                       (ip.is_reserved, "reserved")):
        if test:
            return f"is not a host's address ({what}): use the IP the other hosts reach it at"
    return None


def ssh_host(value: object) -> str | None:
    """Where SSH connects: an IP without a scope, or a host name (any case)."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if "%" in value:
        return "has a scope id: use an address without %"
    try:
        ipaddress.ip_address(value)
        return None
    except ValueError:
        pass
    why = dns_name(value.lower())
    return None if why is None else f"is neither an IP nor a host name: {why}"


def iface(value: object) -> str | None:
    """A Linux interface name: 1-15 of A-Z a-z 0-9 _ . - (no '/', ':', whitespace)."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not IFACE.fullmatch(value) or value in (".", "..") or value.startswith("-"):
        return "is not an interface name: 1-15 characters of A-Z a-z 0-9 _ . -, no leading -"
    return None


def user(value: object) -> str | None:
    """A Unix user name."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not USER.fullmatch(value):
        return "is not a user name: a letter or _, then up to 31 of A-Z a-z 0-9 _ . -"
    return None


def local_path(value: object) -> str | None:
    """A file on the control machine named in an SSH setting (and verify's OpenSSH config):
    plain characters only, no leading '-'."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not value:
        return "is empty"
    if value.startswith("-"):
        return "starts with '-'"
    if not LOCAL_PATH.fullmatch(value):
        bad = next(c for c in value if not LOCAL_PATH.fullmatch(c))
        return f"has the character {bad!r}: use a path of A-Z a-z 0-9 and _ . , / ~ + @ : = -"
    return None


def directory(value: object, owned_by_kubesmith: bool = True) -> str | None:
    """A directory on the hosts: absolute, normalized, plain characters; when kubesmith chmods,
    chowns or removes it (every *_dir but bin_dir), never one the system owns."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not value.startswith("/"):
        return "is not absolute: start it with /"
    if not DIRECTORY.fullmatch(value):
        bad = next(c for c in value if not DIRECTORY.fullmatch(f"/{c}"))
        return f"has the character {bad!r}: use A-Z a-z 0-9 _ . - and /"
    normal = posixpath.normpath(value)
    if value != normal or value.startswith("//"):
        return f"is not normalized: use {'/' + normal.lstrip('/')}"
    if owned_by_kubesmith and (value in SYSTEM_DIRS or value.startswith(
            tuple(f"{tree}/" for tree in SYSTEM_TREES))):
        return ("is a directory the system owns: kubesmith would chmod, chown or (reset) remove "
                "it: use a directory of kubesmith's own")
    return None


def duration(value: object) -> str | None:
    """A positive Go duration of one unit: 60s, 500ms, 2m, 1h (at most int64 nanoseconds)."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not DURATION.fullmatch(value):
        return "is not a duration: use a number and one of ms, s, m, h (e.g. 60s)"
    nanoseconds = duration_ns(value)
    if nanoseconds > MAX_DURATION_NS:
        return ("is out of range: a Go duration is int64 nanoseconds, at most 2562047h "
                "(about 292 years)")
    if nanoseconds == 0:
        return "is zero: use a positive duration (e.g. 60s)"
    return None


def duration_ns(value: str) -> int:
    """The nanoseconds of a duration of the DURATION form."""
    match = DURATION.fullmatch(value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return int(match[1]) * DURATION_NS[match[2]]


def lifetime(value: object) -> str | None:
    """A certificate lifetime: a number and m, h or d (15m, 12h, 365d), 2 minutes to 100 years."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not LIFETIME.fullmatch(value):
        return "is not a lifetime: use a number and m, h or d (e.g. 365d, 12h, 15m)"
    if not MIN_LIFETIME <= lifetime_of(value) <= MAX_LIFETIME:
        return "is out of range: use 2m to 36500d"
    return None


def lifetime_of(value: str) -> timedelta:
    """The timedelta of a valid lifetime (see `lifetime`)."""
    match = LIFETIME.fullmatch(value)
    if match is None:
        raise ValueError(f"not a lifetime: {value!r}")
    return timedelta(**{LIFETIME_UNITS[match[2]]: int(match[1])})


def etcd_prefix(value: object) -> str | None:
    """An etcd key prefix like /coreos.com/network."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not ETCD_PREFIX.fullmatch(value):
        return "is not a key prefix: use /segments of A-Z a-z 0-9 _ . - (e.g. /coreos.com/network)"
    if value == APISERVER_ETCD_PREFIX or value.startswith(f"{APISERVER_ETCD_PREFIX}/"):
        return (f"is under kube-apiserver's etcd prefix {APISERVER_ETCD_PREFIX}: flannel's keys "
                "and its etcd role would reach the cluster's objects (Secrets included): use "
                "a prefix of its own (e.g. /coreos.com/network)")
    return None


def version(value: object) -> bool:
    """Whether a value is a version like v1.2.3 (optionally with -pre or +build)."""
    return isinstance(value, str) and VERSION.fullmatch(value) is not None


def plain(value: object) -> str | None:
    """A setting without a rule of its own: plain words, in strings, lists and dicts alike."""
    if isinstance(value, str):
        if not PLAIN.fullmatch(value):
            bad = next(c for c in value if not PLAIN.fullmatch(c))
            return f"has the character {bad!r}: use A-Z a-z 0-9 and _ . : / , = + @ -"
        return None
    if isinstance(value, dict):
        parts: list[object] = [*value.keys(), *value.values()]
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        return None
    return next((why for why in map(plain, parts) if why is not None), None)


def unit_value(value: str) -> str | None:
    """A value inside a systemd unit: one word that systemd takes literally."""
    if char := control_char(value):
        return f"contains the control character {char!r}"
    bad = next((c for c in value if c.isspace() or c in UNIT_SPECIAL), None)
    if bad is not None:
        return f"contains {bad!r}, which systemd would split or interpret"
    return None


def lease_key(key: str, prefix: str) -> bool:
    """Whether an etcd key is a flannel subnet lease under the prefix (<prefix>/subnets/<lease>)."""
    head = f"{prefix}/subnets/"
    if not key.startswith(head) or etcd_prefix(prefix) is not None:
        return False
    name = key[len(head):]
    if not LEASE.fullmatch(name):
        return False
    address, _dash, length = name.partition("-")
    try:
        ipaddress.IPv4Network(f"{address}/{length}")
    except ValueError:
        return False
    return True


def apiserver_endpoint(value: object) -> str | None:
    """An external VIP or load balancer: empty, or https://<IPv4 or DNS name>[:port], no path."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if not value:
        return None
    usage = "use https://NAME-OR-IP[:PORT], e.g. https://10.0.0.100:6443"
    if not value.startswith("https://"):
        return f"is not an https URL: {usage}"
    rest = value[len("https://"):]
    name, sep, port = rest.partition(":")
    if sep and not (port.isdigit() and port.isascii() and 1 <= int(port) <= 65535):
        return f"has the port {port!r}: {usage}"
    try:
        ipaddress.IPv4Address(name)
        return None
    except ValueError:
        pass
    why = dns_name(name)
    return None if why is None else f"names the host {name!r}, which {why}: {usage}"


def cluster_name(value: object) -> str | None:
    """A cluster's name (it names its state directory): empty, or a DNS label."""
    if not isinstance(value, str):
        return f"is {kind(value)}, not a string"
    if value and (len(value) > MAX_LABEL or not DNS_LABEL.fullmatch(value)):
        return ("is not a DNS label: 1-63 of lowercase a-z, 0-9 and '-', starting and ending "
                "with a letter or digit (it names the state directory)")
    return None


def endpoint_host(value: str) -> str:
    """The name or address of a valid apiserver_endpoint (empty when there is none)."""
    return value[len("https://"):].partition(":")[0] if value else ""
