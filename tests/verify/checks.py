"""Helpers shared by the verification checks: etcdctl, kubectl and certificates."""

from __future__ import annotations

import datetime as dt
import functools

from cryptography import x509

from kubesmith import kubectl as control_kubectl
from kubesmith.binaries import cache
from kubesmith.context import DeployContext
from kubesmith.pki import renew_before
from tasks import etcd
from tests.verify.conftest import remote, timeout


def etcdctl(ctx: DeployContext, args: str, on: str | None = None):  # noqa: ANN201 (testinfra result)
    """Run etcdctl over TLS on an etcd host (the first member by default)."""
    return remote(on or ctx.cluster.etcd[0].name).run(etcd.etcdctl(ctx, args))


# The deploy's own kubectl helper, with room for `kubectl wait --timeout=30s` (both scaled).
kubectl = functools.partial(control_kubectl.kubectl, timeout=timeout(90))


def certificate(host_name: str, path: str) -> x509.Certificate:
    """A certificate file on a host, parsed here (certificates only: keys never leave hosts)."""
    return x509.load_pem_x509_certificate(remote(host_name).file(path).content)


def sans(cert: x509.Certificate) -> set[str]:
    """DNS names and IPs of a certificate's SAN extension."""
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {*ext.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in ext.get_values_for_type(x509.IPAddress))}


def assert_cert_ok(ctx: DeployContext, host_name: str, name: str) -> None:
    """Valid for at least a third of the leaf lifetime (the line below which `up` renews it),
    identical to the PKI's, and the host's key is the PKI's key."""
    pki_dir = ctx.data["pki_dir"]
    cert = certificate(host_name, f"{pki_dir}/{name}.crt")
    left = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    least = renew_before(ctx.lifetime("leaf"))
    assert left >= least, f"{name}.crt expires in {left}, less than {least}"
    local_cert = ctx.pki.path(name, "crt").read_bytes()
    assert remote(host_name).file(f"{pki_dir}/{name}.crt").content == local_cert, \
        f"{name}.crt differs from the cluster PKI's"
    remote_sum = remote(host_name).check_output(f"sha256sum {pki_dir}/{name}.key").split()[0]
    assert remote_sum == cache.sha256_file(ctx.pki.path(name, "key")), \
        f"{name}.key does not match {name}.crt (differs from the cluster PKI's key)"
