"""etcd members: service, TLS-only ports, membership, health, certificates, modes."""

from __future__ import annotations

from kubesmith.model import Host
from kubesmith.services import ETCD_CLIENT_PORT, ETCD_PEER_PORT
from tasks import etcd
from tests.verify.checks import assert_cert_ok, etcdctl
from tests.verify.conftest import remote, timeout


def test_etcd_service(etcd_host: Host) -> None:
    service = remote(etcd_host.name).service("etcd")
    assert service.is_running, "etcd is not running"
    assert service.is_enabled, "etcd is not enabled"


# What each port answers to plain HTTP if it served it: the client port's /health and the
# peer port's /version (the peer server has no /health: 404 over TLS or not). The TLS control
# below shows each marker is what the port answers with a certificate it accepts.
PLAIN_PROBES = ((ETCD_CLIENT_PORT, "health", '"health"', "etcd-healthcheck-client"),
                (ETCD_PEER_PORT, "version", '"etcdserver"', "etcd-peer-{host}"))


def test_etcd_ports_serve_tls_only(ctx, etcd_host: Host) -> None:
    host = remote(etcd_host.name)
    pki = ctx.data["pki_dir"]
    for port, path, marker, cred in PLAIN_PROBES:
        assert host.socket(f"tcp://{etcd_host.address}:{port}").is_listening, f"{port} closed"
        cred = cred.format(host=etcd_host.name)
        tls = host.run(f"curl -s --http1.1 --max-time {timeout(5)} --cacert {pki}/etcd-ca.crt "
                       f"--cert {pki}/{cred}.crt --key {pki}/{cred}.key "
                       f"https://{etcd_host.address}:{port}/{path}")
        assert marker in tls.stdout, \
            f"port {port} /{path} over TLS ({cred}) lacks {marker}: {tls.stdout}{tls.stderr}"
        plain = host.run(f"curl -s --max-time {timeout(3)} http://{etcd_host.address}:{port}/{path}")
        assert marker not in plain.stdout, f"port {port} answers plain HTTP: {plain.stdout}"
    no_cert = host.run(f"curl -s --max-time {timeout(3)} --cacert {pki}/etcd-ca.crt "
                       f"https://{etcd_host.address}:{ETCD_CLIENT_PORT}/health")
    assert '"health"' not in no_cert.stdout, \
        f"port {ETCD_CLIENT_PORT} answers a client without certificate"


def test_etcd_members_match_inventory(ctx, etcd_host: Host) -> None:
    listed = etcdctl(ctx, "member list -w simple", on=etcd_host.name)
    assert listed.rc == 0, listed.stderr
    names = sorted(line.split(", ")[2] for line in listed.stdout.splitlines() if line)
    assert names == sorted(h.name for h in ctx.cluster.etcd)


def test_etcd_endpoint_healthy(ctx, etcd_host: Host) -> None:
    health = remote(ctx.cluster.etcd[0].name).run(
        etcd.etcdctl(ctx, "endpoint health", f"https://{etcd_host.address}:{ETCD_CLIENT_PORT}"))
    assert health.rc == 0, f"{etcd_host.name}: {health.stdout}{health.stderr}".strip()


def test_etcd_certificates(ctx, etcd_host: Host) -> None:
    for name in (f"etcd-server-{etcd_host.name}", f"etcd-peer-{etcd_host.name}"):
        assert_cert_ok(ctx, etcd_host.name, name)


def test_etcd_data_dir_0700(ctx, etcd_host: Host) -> None:
    assert remote(etcd_host.name).file(str(ctx.data["etcd_data_dir"])).mode == 0o700
