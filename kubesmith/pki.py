"""The cluster PKI: CAs, leaf certificates and service-account keys (the encryption-at-rest keys:
kubesmith/encryption.py)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubesmith.errors import UserError
from kubesmith.rules import lifetime_of

# CA file name -> common name. front-proxy-ca signs only the apiserver's client certificate for
# aggregated APIs (kubeadm's split): extension apiservers trust it for request headers alone.
CAS = {"kubernetes-ca": "kubernetes", "etcd-ca": "etcd-ca", "front-proxy-ca": "front-proxy-ca"}
T = TypeVar("T")
# Defaults of the settings ca_cert_lifetime and leaf_cert_lifetime (group_data/all.py).
CA_LIFETIME = "3650d"
LEAF_LIFETIME = "365d"
DEFAULT_CA_LIFETIME, DEFAULT_LEAF_LIFETIME = lifetime_of(CA_LIFETIME), lifetime_of(LEAF_LIFETIME)
# A certificate with less than this part of its lifetime left is renewed by `up` (and fails
# verify): the line scales with the lifetime, so a 15-minute certificate in a test behaves like
# a 365-day one in production.
RENEW_FRACTION = 3
BACKDATE = timedelta(hours=1)
SA = "sa"
EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
}


class PKIError(UserError):
    """A PKI file exists but cannot be used as it is."""


@dataclass(frozen=True)
class CertSpec:
    """What one leaf certificate must say: its CA, subject, SANs and usages."""

    name: str
    ca: str
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = False

    def __post_init__(self) -> None:
        """Reject an unknown CA or a malformed IP address at construction."""
        if self.ca not in CAS:
            raise ValueError(f"{self.name}: unknown CA {self.ca!r}; known: {', '.join(CAS)}")
        for ip in self.ip_addresses:
            ipaddress.ip_address(ip)

    def sans(self) -> frozenset[str]:
        """The SANs as "DNS:name" / "IP:address" strings (addresses normalised)."""
        ips = {f"IP:{ipaddress.ip_address(ip)}" for ip in self.ip_addresses}
        return frozenset({f"DNS:{dns}" for dns in self.dns_names} | ips)

    def usages(self) -> frozenset[str]:
        """The extended key usages by name."""
        wanted = {"serverAuth": self.server, "clientAuth": self.client}
        return frozenset(name for name, on in wanted.items() if on)


def new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh ECDSA P-256 private key."""
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    """A private key as unencrypted PKCS8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(key: PublicKeyTypes) -> bytes:
    """A public key as SubjectPublicKeyInfo PEM."""
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def same_key(cert_or_key: x509.Certificate | ec.EllipticCurvePrivateKey,
             public: PublicKeyTypes) -> bool:
    """Whether a certificate or private key carries that public key."""
    return public_pem(cert_or_key.public_key()) == public_pem(public)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace a file atomically; the temp file is 0600 from creation, then set to `mode`."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _name(common_name: str, organizations: tuple[str, ...] = ()) -> x509.Name:
    """A subject of organizations then common name."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name([*attributes, x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def renew_before(lifetime: timedelta) -> timedelta:
    """The validity a certificate of this lifetime must keep: below it, `up` renews it and
    verify fails (a third of the lifetime)."""
    return lifetime / RENEW_FRACTION


def _builder(subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey,
             lifetime: timedelta) -> x509.CertificateBuilder:
    """A certificate builder with subject, issuer, key, serial and validity filled in."""
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )


def make_ca(common_name: str, key: ec.EllipticCurvePrivateKey,
            lifetime: timedelta = DEFAULT_CA_LIFETIME) -> x509.Certificate:
    """A self-signed CA certificate."""
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
        encipher_only=False, decipher_only=False,
    )
    return (
        _builder(_name(common_name), _name(common_name), key, lifetime)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .sign(key, hashes.SHA256())
    )


def sign_leaf(spec: CertSpec, key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
              ca_key: ec.EllipticCurvePrivateKey,
              lifetime: timedelta = DEFAULT_LEAF_LIFETIME) -> x509.Certificate:
    """A leaf certificate for `spec` and `key`, signed by the CA."""
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=True,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    ekus = [oid for oid, name in EKU_NAMES.items() if name in spec.usages()]
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())
    builder = (
        _builder(_name(spec.common_name, spec.organizations), ca_cert.subject, key, lifetime)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(aki, critical=False)
    )
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    names: list[x509.GeneralName] = [x509.DNSName(dns) for dns in spec.dns_names]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec.ip_addresses]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def signed_by(cert: x509.Certificate, ca_cert: x509.Certificate) -> bool:
    """Whether the CA issued the certificate (issuer name and signature both check out)."""
    try:
        cert.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _extension(cert: x509.Certificate, kind: type[x509.ExtensionType]) -> x509.ExtensionType | None:
    """The value of one extension of the certificate, None when absent."""
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def cert_sans(cert: x509.Certificate) -> frozenset[str]:
    """The certificate's SANs as "DNS:name" / "IP:address" strings."""
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is None:
        return frozenset()
    dns = {f"DNS:{name}" for name in san.get_values_for_type(x509.DNSName)}
    return frozenset(dns | {f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)})


def cert_usages(cert: x509.Certificate) -> frozenset[str]:
    """The certificate's extended key usages by name."""
    eku = _extension(cert, x509.ExtendedKeyUsage)
    return frozenset(EKU_NAMES.get(oid, oid.dotted_string) for oid in eku or ())


def _attributes(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> frozenset[str]:
    """The values of one subject attribute."""
    return frozenset(str(a.value) for a in cert.subject.get_attributes_for_oid(oid))


def _delta(label: str, want: frozenset[str], have: frozenset[str]) -> list[str]:
    """A "<label>: +added -removed" line, or nothing when the sets agree."""
    if want == have:
        return []
    changes = [f"+{v}" for v in sorted(want - have)] + [f"-{v}" for v in sorted(have - want)]
    return [f"{label}: {' '.join(changes)}"]


def differences(spec: CertSpec, cert: x509.Certificate) -> list[str]:
    """How the certificate's subject, SANs and usages differ from the spec."""
    found = _delta("CN differs", frozenset({spec.common_name}),
                   _attributes(cert, NameOID.COMMON_NAME))
    found += _delta("O differs", frozenset(spec.organizations),
                    _attributes(cert, NameOID.ORGANIZATION_NAME))
    found += _delta("SANs differ", spec.sans(), cert_sans(cert))
    return found + _delta("EKUs differ", spec.usages(), cert_usages(cert))


def _ec_key(data: bytes) -> ec.EllipticCurvePrivateKey:
    """An unencrypted ECDSA private key from PEM; ValueError otherwise."""
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an ECDSA key")
    return key


class PKI:
    """The cluster's certificates and keys in one directory, made and renewed as needed."""

    def __init__(self, directory: Path, leaf_lifetime: str = LEAF_LIFETIME,
                 ca_lifetime: str = CA_LIFETIME) -> None:
        self.directory = Path(directory)
        # Settings values (validated at the edge), read when a certificate is issued or checked.
        self._lifetimes = {"leaf": leaf_lifetime, "ca": ca_lifetime}

    @property
    def leaf_lifetime(self) -> timedelta:
        """How long a new leaf certificate is valid (setting leaf_cert_lifetime)."""
        return lifetime_of(self._lifetimes["leaf"])

    @property
    def ca_lifetime(self) -> timedelta:
        """How long a new CA is valid (setting ca_cert_lifetime)."""
        return lifetime_of(self._lifetimes["ca"])

    def __repr__(self) -> str:
        """The directory only (never key material)."""
        return f"PKI({str(self.directory)!r})"

    def path(self, name: str, ext: str = "") -> Path:
        """The file `<name>.<ext>` (just `<name>` without ext) in the PKI directory."""
        return self.directory / (f"{name}.{ext}" if ext else name)

    def cert_pem(self, name: str) -> bytes:
        """A certificate as PEM."""
        return self.path(name, "crt").read_bytes()

    def ca_pem(self, ca_name: str) -> bytes:
        """A CA certificate as PEM."""
        if ca_name not in CAS:
            raise KeyError(f"unknown CA {ca_name!r}; known: {', '.join(CAS)}")
        return self.cert_pem(ca_name)

    def key_pem(self, name: str) -> bytes:
        """A private key as PEM."""
        return self.path(name, "key").read_bytes()

    def expiry(self, name: str) -> datetime:
        """When a certificate stops being valid (UTC)."""
        return self._cert(name).not_valid_after_utc

    def _cert(self, name: str) -> x509.Certificate:
        """A certificate from its file."""
        return x509.load_pem_x509_certificate(self.cert_pem(name))

    def _key(self, name: str) -> ec.EllipticCurvePrivateKey:
        """A private key from its file."""
        return _ec_key(self.key_pem(name))

    def credential(self, name: str) -> tuple[bytes, bytes]:
        """A certificate's and its key's PEM, both loaded and matching; PKIError otherwise."""
        _cert, why = self._pair(name)
        if why is not None:
            raise PKIError(f"{self.path(name, 'crt')}: {why}: run `python deploy.py up` to "
                           "issue it again")
        return self.cert_pem(name), self.key_pem(name)

    def _pair(self, name: str) -> tuple[x509.Certificate | None, str | None]:
        """The certificate of a name whose files exist, load and match, else why not."""
        if not (self.path(name, "crt").exists() and self.path(name, "key").exists()):
            return None, "missing"
        try:
            cert, key = self._cert(name), self._key(name)
        except ValueError:
            return None, "unreadable"
        if not same_key(key, cert.public_key()):
            return None, "certificate does not match key"
        return cert, None

    def _write_pair(self, name: str, key: ec.EllipticCurvePrivateKey,
                    cert: x509.Certificate) -> None:
        """Write a key (0600) then its certificate (0644)."""
        write_atomic(self.path(name, "key"), private_pem(key), 0o600)
        write_atomic(self.path(name, "crt"), cert.public_bytes(serialization.Encoding.PEM), 0o644)

    def _loaded(self, path: Path, load: Callable[[bytes], T]) -> T:
        """A key or certificate loaded from its file; PKIError naming the file otherwise."""
        try:
            return load(path.read_bytes())
        except (OSError, ValueError, TypeError) as error:
            raise PKIError(f"{path}: unreadable ({error}); restore it from a backup of the "
                           "state directory: kubesmith never replaces a CA or signing key "
                           "silently") from None

    def ca_reason(self, ca_name: str) -> str | None:
        """"missing" when neither CA file exists (a new cluster); None when the pair loads,
        matches and is valid. Anything else stops with PKIError naming the file: a new CA would
        silently cut every host and client off."""
        crt, key = self.path(ca_name, "crt"), self.path(ca_name, "key")
        if not crt.exists() and not key.exists():
            return "missing"
        for present, absent in ((crt, key), (key, crt)):
            if not absent.exists():
                raise PKIError(f"{absent}: missing while {present.name} exists; restore it from "
                               "a backup (or remove both files to make a new CA, which every "
                               "host and kubeconfig must then be given)")
        cert = self._loaded(crt, x509.load_pem_x509_certificate)
        private = self._loaded(key, _ec_key)
        if not same_key(private, cert.public_key()):
            raise PKIError(f"{crt} and {key}: the certificate does not match the key (one of them "
                           "is another CA's); restore the pair from a backup")
        if cert.not_valid_after_utc <= datetime.now(UTC):
            raise PKIError(f"{crt}: expired {cert.not_valid_after_utc:%Y-%m-%d}; a new CA must be "
                           "rolled out deliberately")
        return None

    def reason(self, spec: CertSpec) -> str | None:
        """Why the spec's certificate needs (re)generation; None when it is valid and matches."""
        cert, why = self._pair(spec.name)
        if cert is None:
            return why
        if not self.path(spec.ca, "crt").exists():
            return f"{spec.ca} missing"
        if not signed_by(cert, self._cert(spec.ca)):
            return f"not signed by the current {spec.ca}"
        expires = cert.not_valid_after_utc
        if expires - datetime.now(UTC) < renew_before(self.leaf_lifetime):
            return (f"expires {expires:%Y-%m-%d %H:%M} UTC: less than a third of its lifetime "
                    f"({self.leaf_lifetime}) left")
        return "; ".join(differences(spec, cert)) or None

    def issue(self, spec: CertSpec, lifetime: timedelta | None = None) -> None:
        """Make a fresh key and certificate for the spec, signed by its current CA, valid for
        the leaf lifetime (unless another is given)."""
        key = new_key()
        cert = sign_leaf(spec, key, self._cert(spec.ca), self._key(spec.ca),
                         lifetime or self.leaf_lifetime)
        self._write_pair(spec.name, key, cert)

    def _sa_reason(self) -> str | None:
        """Why the service-account key pair needs writing, None when fine; an sa.key that
        exists but does not load stops with PKIError (every token would be invalidated)."""
        if not self.path(SA, "key").exists():
            return "missing"
        key = self._loaded(self.path(SA, "key"), _ec_key)
        try:
            public = serialization.load_pem_public_key(self.path(SA, "pub").read_bytes())
        except (ValueError, FileNotFoundError):
            return "public key missing or unreadable"
        return None if same_key(key, public) else "public key does not match"

    def _ensure_sa(self) -> None:
        """Write sa.pub from sa.key, making sa.key first only when it is absent."""
        if self.path(SA, "key").exists():
            key = self._loaded(self.path(SA, "key"), _ec_key)
        else:
            key = new_key()
            write_atomic(self.path(SA, "key"), private_pem(key), 0o600)
        write_atomic(self.path(SA, "pub"), public_pem(key.public_key()), 0o644)

    def _prepare(self) -> None:
        """Create the PKI directory 0700 (tightening it if it already exists)."""
        self.directory.parent.mkdir(parents=True, exist_ok=True)
        self.directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.directory, 0o700)

    def plan(self, specs: list[CertSpec]) -> list[tuple[str, str]]:
        """What ensure() would (re)generate and why, reading only: [(name, why)]."""
        planned = [(ca, why) for ca in CAS if (why := self.ca_reason(ca))]
        new_cas = {ca for ca, _why in planned}
        if why := self._sa_reason():
            planned.append((SA, why))
        for spec in specs:
            why = f"new {spec.ca}" if spec.ca in new_cas else self.reason(spec)
            if why:
                planned.append((spec.name, why))
        return planned

    def ensure(self, specs: list[CertSpec]) -> list[str]:
        """Make whatever is missing, unusable or out of date; return the names (re)generated."""
        self._prepare()
        made = []
        for ca_name, common_name in CAS.items():
            if why := self.ca_reason(ca_name):
                self._progress(ca_name, why)
                key = new_key()
                self._write_pair(ca_name, key, make_ca(common_name, key, self.ca_lifetime))
                made.append(ca_name)
        if why := self._sa_reason():
            self._progress(SA, why)
            self._ensure_sa()
            made.append(SA)
        for spec in specs:
            if why := self.reason(spec):
                self._progress(spec.name, why)
                self.issue(spec)
                made.append(spec.name)
        return made

    @staticmethod
    def _progress(name: str, why: str) -> None:
        """Tell the user what is being generated and why (names and reasons only)."""
        print(f"pki: generating {name} ({why})", file=sys.stderr, flush=True)
