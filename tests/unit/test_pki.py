"""The cluster PKI: what the certificates say, file modes, verification and idempotent renewal."""

import ipaddress
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubesmith import pki as pki_mod
from kubesmith.certificates import cert_specs
from kubesmith.model import Cluster, Host
from kubesmith.pki import PKI, CertSpec, PKIError, make_ca


def _cluster(lab2_master: bool = False) -> Cluster:
    lab2 = {"nodes", "masters"} if lab2_master else {"nodes"}
    return Cluster(hosts=(
        Host("lab-1", "10.240.0.11", frozenset({"etcd", "masters"})),
        Host("lab-2", "10.240.0.12", frozenset(lab2)),
        Host("lab-3", "10.240.0.13", frozenset({"nodes"})),
    ))


@pytest.fixture
def made(tmp_path: Path) -> tuple[PKI, list[CertSpec], list[str]]:
    pki = PKI(tmp_path / "state" / "pki")
    specs = cert_specs(_cluster())
    return pki, specs, pki.ensure(specs)


def _cert(pki: PKI, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pki.cert_pem(name))


def _sans(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName), [
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    ]


def _mtimes(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


def _spec(specs: list[CertSpec], name: str) -> CertSpec:
    return next(s for s in specs if s.name == name)


def test_spec_names_for_the_cluster() -> None:
    names = [s.name for s in cert_specs(_cluster())]
    assert names == [
        "etcd-server-lab-1", "etcd-peer-lab-1", "apiserver-etcd-client",
        "flannel-etcd-client-lab-1",
        "flannel-etcd-client-lab-2", "flannel-etcd-client-lab-3",
        "etcd-healthcheck-client", "kube-apiserver-lab-1", "apiserver-kubelet-client",
        "front-proxy-client", "kubelet-lab-2", "kubelet-lab-3", "apiserver-lb-healthcheck",
        "kube-controller-manager", "kube-scheduler", "kube-proxy", "kubesmith", "admin",
        "super-admin", "metrics-server", "kubesmith-mirror",
    ]


def test_first_ensure_makes_everything(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, names = made
    assert names == ["kubernetes-ca", "etcd-ca", "front-proxy-ca", "sa", *(s.name for s in specs)]
    for spec in specs:
        assert pki.path(spec.name, "crt").exists() and pki.path(spec.name, "key").exists()
    assert b"PUBLIC KEY" in pki.path("sa", "pub").read_bytes()


def test_apiserver_sans(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, _, _ = made
    cert = _cert(pki, "kube-apiserver-lab-1")
    dns, ips = _sans(cert)
    assert "10.32.0.1" in ips and "10.240.0.11" in ips and "127.0.0.1" in ips
    assert {"lab-1", "kubernetes", "kubernetes.default.svc.cluster.local"} <= set(dns)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_kubelet_subject_and_usages(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, _, _ = made
    cert = _cert(pki, "kubelet-lab-2")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "system:node:lab-2"
    assert [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == [
        "system:nodes"
    ]
    assert _sans(cert) == (["lab-2"], ["10.240.0.12"])
    eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_client_cert_has_no_san(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, _, _ = made
    with pytest.raises(x509.ExtensionNotFound):
        _cert(pki, "admin").extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_cas(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, _, _ = made
    for ca_name, cn in pki_mod.CAS.items():
        ca = x509.load_pem_x509_certificate(pki.ca_pem(ca_name))
        assert ca.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert pki.expiry(ca_name) - datetime.now(UTC) > timedelta(days=3640)


def test_file_modes(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    assert stat.S_IMODE(pki.directory.stat().st_mode) == 0o700
    names = (*pki_mod.CAS, "sa", *(s.name for s in specs))
    keys = [pki.path(n, "key") for n in names]
    for path in keys:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(pki.path("admin", "crt").stat().st_mode) == 0o644
    assert not [p for p in pki.directory.iterdir() if p.name.endswith(".tmp")]


def test_keys_are_p256_and_match_certs(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    for spec in specs:
        key = serialization.load_pem_private_key(pki.key_pem(spec.name), None)
        assert key.curve.name == "secp256r1"
        assert pki_mod.same_key(key, _cert(pki, spec.name).public_key())
    assert b"BEGIN PRIVATE KEY" in pki.key_pem("admin")  # PKCS8


def test_leaves_verify_against_their_ca(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    cas = {n: x509.load_pem_x509_certificate(pki.ca_pem(n)) for n in pki_mod.CAS}
    for spec in specs:
        _cert(pki, spec.name).verify_directly_issued_by(cas[spec.ca])
    etcd_leaf = _cert(pki, "etcd-server-lab-1")
    assert not pki_mod.signed_by(etcd_leaf, cas["kubernetes-ca"])
    assert pki_mod.signed_by(etcd_leaf, cas["etcd-ca"])


def test_second_ensure_is_a_no_op(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    before = _mtimes(pki.directory)
    assert pki.ensure(specs) == []
    assert _mtimes(pki.directory) == before
    assert all(pki.reason(s) is None for s in specs)


def test_new_master_gets_its_own_apiserver_cert_and_keeps_the_others(
    made: tuple[PKI, list[CertSpec], list[str]],
) -> None:
    pki, _, _ = made
    specs = cert_specs(_cluster(lab2_master=True))
    assert pki.reason(_spec(specs, "kube-apiserver-lab-1")) is None
    assert pki.ensure(specs) == ["kube-apiserver-lab-2"]
    assert "10.240.0.12" in _sans(_cert(pki, "kube-apiserver-lab-2"))[1]
    assert "10.240.0.12" not in _sans(_cert(pki, "kube-apiserver-lab-1"))[1]


def test_expiring_cert_is_renewed(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    admin = _spec(specs, "admin")
    pki.issue(admin, lifetime=timedelta(days=10))
    assert pki.expiry("admin") - datetime.now(UTC) < timedelta(days=11)
    why = pki.reason(admin)
    assert why is not None and "expires" in why
    assert pki.ensure(specs) == ["admin"]
    assert pki.expiry("admin") - datetime.now(UTC) > timedelta(days=360)


def test_deleted_key_regenerates_its_cert(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    old = pki.cert_pem("kube-proxy")
    pki.path("kube-proxy", "key").unlink()
    assert pki.reason(_spec(specs, "kube-proxy")) == "missing"
    assert pki.ensure(specs) == ["kube-proxy"]
    assert pki.cert_pem("kube-proxy") != old
    assert pki.reason(_spec(specs, "kube-proxy")) is None


def test_mismatched_key_is_detected(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    pki.path("admin", "key").write_bytes(pki.key_pem("kube-scheduler"))
    assert pki.reason(_spec(specs, "admin")) == "certificate does not match key"
    assert pki.ensure(specs) == ["admin"]


def test_new_ca_reissues_its_leaves_only(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    pki.path("etcd-ca", "key").unlink()
    pki.path("etcd-ca", "crt").unlink()
    made_now = pki.ensure(specs)
    assert made_now == ["etcd-ca", *(s.name for s in specs if s.ca == "etcd-ca")]


@pytest.mark.parametrize("damage", ["key gone", "crt gone", "key garbage", "crt garbage",
                                    "key of another CA", "expired"])
def test_a_damaged_ca_stops_naming_the_file(made: tuple[PKI, list[CertSpec], list[str]],
                                            damage: str) -> None:
    pki, specs, _ = made
    ext = "crt" if "crt" in damage or damage == "expired" else "key"
    path = pki.path("etcd-ca", ext)
    before = _mtimes(pki.directory)
    if damage.endswith("gone"):
        path.unlink()
    elif damage.endswith("garbage"):
        path.write_bytes(b"-----BEGIN GARBAGE-----\n")
    elif damage == "key of another CA":
        path.write_bytes(pki.key_pem("kubernetes-ca"))
    else:
        key = pki._key("etcd-ca")
        expired = make_ca("etcd-ca", key, timedelta(0))
        path.write_bytes(expired.public_bytes(serialization.Encoding.PEM))
    for step in (pki.plan, pki.ensure):
        with pytest.raises(PKIError, match=re.escape(str(path))):
            step(specs)
    untouched = {k: v for k, v in _mtimes(pki.directory).items() if k != path.name}
    assert untouched == {k: v for k, v in before.items() if k != path.name}, "files changed"


def test_an_unreadable_service_account_key_stops(
        made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    pki.path("sa", "key").write_bytes(b"not a key")
    with pytest.raises(PKIError, match=re.escape(str(pki.path("sa", "key")))):
        pki.ensure(specs)
    assert pki.path("sa", "key").read_bytes() == b"not a key"


def test_changed_subject_and_usage_are_named(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    admin = _spec(specs, "admin")
    changed = CertSpec("admin", "kubernetes-ca", "root", ("kubesmith:cluster-admins", "ops"),
                       server=True)
    why = pki.reason(changed)
    assert why == "CN differs: +root -admin; O differs: +ops; EKUs differ: +serverAuth -clientAuth"
    assert pki.reason(admin) is None


def test_sa_pub_rewritten_from_existing_key(made: tuple[PKI, list[CertSpec], list[str]]) -> None:
    pki, specs, _ = made
    key = pki.key_pem("sa")
    pki.path("sa", "pub").unlink()
    assert pki.ensure(specs) == ["sa"]
    assert pki.key_pem("sa") == key  # service-account tokens stay valid


def test_nothing_printed_holds_key_material(
    made: tuple[PKI, list[CertSpec], list[str]], capsys: pytest.CaptureFixture[str],
) -> None:
    pki, specs, _ = made
    pki.path("admin", "crt").unlink()
    pki.ensure(cert_specs(_cluster(lab2_master=True)))
    out = capsys.readouterr()
    assert "pki: generating admin (missing)" in out.err
    printed = out.out + out.err + repr(pki) + repr(specs)
    assert "PRIVATE KEY" not in printed
    assert "BEGIN" not in printed


def test_spec_rejects_unknown_ca_and_bad_ip() -> None:
    with pytest.raises(ValueError, match="unknown CA"):
        CertSpec("x", "requestheader-ca", "x")
    with pytest.raises(ValueError):
        CertSpec("x", "etcd-ca", "x", ip_addresses=("10.0.0.300",))


def test_ip_sans_compare_normalised(tmp_path: Path) -> None:
    pki = PKI(tmp_path / "pki")
    spec = CertSpec("x", "kubernetes-ca", "x", ip_addresses=("fd00::0001",), server=True)
    assert pki.ensure([spec])[-1] == "x"
    assert pki.reason(CertSpec("x", "kubernetes-ca", "x", ip_addresses=("fd00::1",),
                               server=True)) is None
    assert str(ipaddress.ip_address("fd00::0001")) in _sans(_cert(pki, "x"))[1]


def test_temp_files_are_0600_before_replace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[int] = []
    replace = pki_mod.os.replace

    def spy(src: str, dst: str) -> None:
        seen.append(stat.S_IMODE(Path(src).stat().st_mode))
        replace(src, dst)

    monkeypatch.setattr(pki_mod.os, "chmod", lambda path, mode: seen.append(-1))
    monkeypatch.setattr(pki_mod.os, "replace", spy)
    pki_mod.write_atomic(tmp_path / "k.key", b"secret", 0o600)
    assert seen == [-1, 0o600]
    assert (tmp_path / "k.key").read_bytes() == b"secret"
