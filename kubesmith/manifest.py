"""The manifest on each host of what kubesmith installed there, one `KIND VALUE` line each,
appended before the thing is installed (tasks/_ops.py records every file and directory it syncs
and what each service of the service table makes); `reset` removes only what it lists."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from kubesmith import paths, rules
from kubesmith.errors import UserError

PATH = f"{paths.STATE_DIR}/manifest"
# What reset does with each kind (see templates/reset/reset.sh.j2).
KINDS = {
    "file": "removed; a unit file's service stopped and disabled first, and processes running "
            "the file killed",
    "dir": "removed with its contents (a mount point is emptied, and stays)",
    "kept": "a directory or link that was there before kubesmith (not empty): left alone",
    "link": "network link deleted, with the veths attached to it",
    "chain": "iptables chains of this prefix flushed and deleted, rules jumping to them deleted",
    "user": "system user deleted",
    "package": "Debian package purged",
    "slice": "systemd slice stopped (its processes with it)",
}
CHAIN_PREFIX = re.compile(r"[A-Z0-9]+-")
PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]{0,62}")
SLICE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}\.slice")
# A manifest directory may be under /run (flannel's, containerd's state), unlike a setting.
TREES = tuple(f"{t}/" for t in rules.SYSTEM_TREES if t != "/run")

Entry = tuple[str, str]


class ManifestError(UserError):
    """A manifest line read back from a host that kubesmith would not have written."""


def line(kind: str, value: str) -> str:
    """One manifest line."""
    return f"{kind} {value}"


def append_command(lines: Iterable[str]) -> str:
    """The shell command appending lines to the host's manifest (its directory made first)."""
    quoted = " ".join(shlex.quote(text) for text in lines)
    return (f"mkdir -p {paths.STATE_DIR} && printf '%s\\n' {quoted} >> {PATH} && "
            f"chmod 644 {PATH}")


def _path(value: str, directory: bool) -> str | None:
    """Why a recorded path may not be removed (None: it may)."""
    if why := rules.directory(value, owned_by_kubesmith=False):
        return why
    if value in rules.SYSTEM_DIRS or (directory and value.startswith(TREES)):
        return "is a path the system owns"
    return None


def _problem(kind: str, value: str) -> str | None:
    """Why an entry is refused (None: it is one kubesmith writes)."""
    if kind in ("file", "dir"):
        return _path(value, kind == "dir")
    rule = {"kept": lambda v: rules.plain(v) or (None if v else "is empty"),
            "link": rules.iface, "user": rules.user,
            "chain": lambda v: None if CHAIN_PREFIX.fullmatch(v) else "is not a chain prefix",
            "package": lambda v: None if PACKAGE.fullmatch(v) else "is not a package name",
            "slice": lambda v: None if SLICE.fullmatch(v) else "is not a slice name"}.get(kind)
    return f"has the unknown kind {kind!r}" if rule is None else rule(value)


def parse(host: str, text: str) -> list[Entry]:
    """The entries of a host's manifest, each checked like input (it comes back from the host
    and goes into `rm -rf`); ManifestError naming the host and line for any other line."""
    entries: dict[Entry, None] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        kind, _sep, value = raw.strip().partition(" ")
        if why := _problem(kind, value):
            raise ManifestError(rules.printable(
                f"{host}: {PATH} line {number} {raw[:80]!r} {why}: refusing to reset from it "
                "(fix or remove that line)"))
        entries[(kind, value)] = None
    return list(entries)


def of_kind(entries: Iterable[Entry], kind: str) -> list[str]:
    """The values of one kind, in manifest order."""
    return [value for k, value in entries if k == kind]


def units(entries: Iterable[Entry]) -> list[str]:
    """The units whose files kubesmith wrote (<unit dir>/<name>.service or .timer)."""
    found = []
    for path in of_kind(entries, "file"):
        head, _sep, name = path.rpartition("/")
        if head == paths.UNIT_DIR and name.endswith((".service", ".timer")):
            found.append(name)
    return found
