"""Where every certificate is used, read back from there: on each host the certificate table's
files and the client certificate each kubeconfig names; on the control machine the PKI and the
kubeconfigs with embedded credentials. Parsed here with cryptography, compared with the PKI."""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kubesmith import certificates
from kubesmith.context import DeployContext
from kubesmith.model import Host

CONTROL_MACHINE = "control machine"
# Markers of the collecting command's output (a section per place).
SECTION = "==> "
NAMED = "==@ "
MISSING = "==! missing"
NOT_A_CERT_FILE = "==! names no .crt file"
CLIENT_CERT = "client-certificate:"
CLIENT_CERT_DATA = "client-certificate-data:"


@dataclass(frozen=True)
class Place:
    """A file a certificate is read from, and the PKI name of the certificate it must hold."""

    host: str
    path: str
    name: str
    # A kubeconfig: its client certificate (named by path, or embedded) is what is read.
    kubeconfig: bool = False


@dataclass(frozen=True)
class Found:
    """What a place held: a certificate, or why there is none; `via` is the file a kubeconfig
    names."""

    place: Place
    cert: x509.Certificate | None
    problem: str = ""
    via: str = ""


def host_places(ctx: DeployContext, host: Host) -> list[Place]:
    """Every certificate file and kubeconfig the certificate table puts on this host."""
    pki_dir, conf = ctx.data["pki_dir"], ctx.data["kube_config_dir"]
    places = []
    for credential in certificates.of_host(ctx.cluster, host):
        if "crt" in credential.files:
            places.append(Place(host.name, f"{pki_dir}/{credential.name}.crt", credential.name))
        if credential.kubeconfig is not None:
            places.append(Place(host.name, f"{conf}/{credential.kubeconfig.file}.kubeconfig",
                                credential.name, kubeconfig=True))
    return places


def control_places(ctx: DeployContext) -> list[Place]:
    """The PKI's certificates (CAs and leaves) and the kubeconfigs of the state directory."""
    table = certificates.table(ctx.cluster)
    names = dict.fromkeys(c.name for c in table if "crt" in c.files)
    places = [Place(CONTROL_MACHINE, str(ctx.pki.path(name, "crt")), name) for name in names]
    places += [Place(CONTROL_MACHINE, str(ctx.state / f"{c.name}.kubeconfig"), c.name, True)
               for c in table if c.control_machine]
    return places


def command(places: Sequence[Place]) -> str:
    """One shell command printing, per place, a header and the certificate (a kubeconfig's
    client certificate: the file it names, when a .crt, else its embedded data). No key is
    read: of a kubeconfig only the client-certificate lines."""
    parts = []
    for place in places:
        path = shlex.quote(place.path)
        if not place.kubeconfig:
            parts.append(f"echo {shlex.quote(SECTION + place.path)}; "
                         f"cat -- {path} 2>/dev/null || echo {shlex.quote(MISSING)}")
            continue
        parts.append(
            f"echo {shlex.quote(SECTION + place.path)}; "
            f"if [ -f {path} ]; then "
            f"c=$(sed -n 's/^ *{CLIENT_CERT} *//p' {path} | head -n 1); "
            'if [ -n "$c" ]; then '
            f'echo "{NAMED}$c"; case "$c" in *.crt) cat -- "$c" 2>/dev/null || '
            f"echo {shlex.quote(MISSING)};; *) echo {shlex.quote(NOT_A_CERT_FILE)};; esac; "
            f"else sed -n 's/^ *{CLIENT_CERT_DATA} *//p' {path} | head -n 1 | base64 -d; fi; "
            f"else echo {shlex.quote(MISSING)}; fi")
    return "{ " + "; ".join(parts) + "; } 2>/dev/null"


def parse(places: Sequence[Place], output: str) -> list[Found]:
    """The certificates the collecting command printed, one per place (in the same order)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION):
            current = sections.setdefault(line[len(SECTION):], [])
        elif current is not None:
            current.append(line)
    return [_found(place, sections.get(place.path)) for place in places]


def _found(place: Place, lines: list[str] | None) -> Found:
    """One place's certificate from its section of the output."""
    if lines is None:
        return Found(place, None, "not read")
    via = ""
    if lines and lines[0].startswith(NAMED):
        via, lines = lines[0][len(NAMED):], lines[1:]
    for marker, problem in ((MISSING, "missing"), (NOT_A_CERT_FILE, "names no .crt file")):
        if marker in lines:
            return Found(place, None, problem + (f" ({via})" if via else ""), via)
    return _loaded(place, "\n".join(lines).encode(), via)


def _loaded(place: Place, pem: bytes, via: str = "") -> Found:
    """A Found of PEM data (one certificate), or "unreadable"."""
    try:
        return Found(place, x509.load_pem_x509_certificate(pem), via=via)
    except ValueError:
        return Found(place, None, "unreadable (no PEM certificate)", via)


def read_local(place: Place) -> Found:
    """A control-machine place: a PEM file, or a kubeconfig's embedded client certificate."""
    path = Path(place.path)
    if not path.exists():
        return Found(place, None, "missing")
    text = path.read_text()
    if not place.kubeconfig:
        return _loaded(place, text.encode())
    for line in text.splitlines():
        if line.strip().startswith(CLIENT_CERT_DATA):
            try:
                return _loaded(place, base64.b64decode(line.split(":", 1)[1].strip()))
            except binascii.Error:
                break
    return Found(place, None, "no embedded client certificate")


@dataclass(frozen=True)
class Row:
    """One line of the report."""

    found: Found
    # Whether the certificate is the PKI's (None: it is the PKI's own file, or there is none).
    matches: bool | None
    left: timedelta | None


def rows(ctx: DeployContext, found: Sequence[Found], now: datetime) -> list[Row]:
    """Each certificate found, with its time left and whether it is the PKI's copy."""
    control: dict[str, bytes] = {}
    for item in found:
        place = item.place
        if place.host == CONTROL_MACHINE and not place.kubeconfig and item.cert is not None:
            control[place.name] = item.cert.public_bytes(Encoding.DER)
    result = []
    for item in found:
        place, cert = item.place, item.cert
        if cert is None:
            result.append(Row(item, None, None))
            continue
        own = place.host == CONTROL_MACHINE and not place.kubeconfig
        matches = None if own else cert.public_bytes(Encoding.DER) == control.get(place.name)
        result.append(Row(item, matches, cert.not_valid_after_utc - now))
    return result


def span(delta: timedelta) -> str:
    """Time left in days, or hours/minutes when short; "EXPIRED … ago" when past."""
    seconds = delta.total_seconds()
    if seconds <= 0:
        return f"EXPIRED {span(-delta)} ago"
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def problems(report: Sequence[Row], within: timedelta) -> list[str]:
    """Why the check fails: "<host> <path>: <why>" per certificate expiring within the window,
    missing or unreadable, or differing from the PKI's copy."""
    found = []
    for row in report:
        where = f"{row.found.place.host} {row.found.place.path}"
        if row.found.cert is None:
            found.append(f"{where}: {row.found.problem}")
        elif row.left is not None and row.left < within:
            found.append(f"{where}: expires in {span(row.left)}")
        elif row.matches is False:
            found.append(f"{where}: differs from the control machine's copy")
    return found


def table(report: Sequence[Row], within: timedelta) -> list[str]:
    """The report as aligned lines: host, path, subject, issuer, expiry, time left, match."""
    lines = [("", "HOST", "PATH", "SUBJECT", "ISSUER", "NOT AFTER (UTC)", "LEFT", "PKI COPY")]
    for row in report:
        found, cert = row.found, row.found.cert
        path = found.place.path + (f" -> {found.via}" if found.via else "")
        if cert is None:
            lines.append(("!", found.place.host, path, found.problem, "", "", "", ""))
            continue
        late = row.left is not None and row.left < within
        match = {None: "-", True: "same", False: "DIFFERS"}[row.matches]
        lines.append(("!" if late or row.matches is False else "", found.place.host, path,
                      cert.subject.rfc4514_string(), cert.issuer.rfc4514_string(),
                      f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}",
                      span(row.left) if row.left is not None else "", match))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]) - 1)]
    return ["  ".join(value.ljust(width) for value, width in zip(line, widths, strict=False))
            + "  " + line[-1] for line in lines]
