"""Masters: daemons, health endpoints over TLS, the flags that matter, serving certificate SANs."""

from __future__ import annotations

import ipaddress
import ssl
from urllib.parse import urlsplit

from cryptography import x509

from kubesmith import certificates, encryption, services
from kubesmith.model import Host
from kubesmith.services import APISERVER_PORT
from tests.verify.checks import assert_cert_ok, certificate, sans
from tests.verify.conftest import remote, timeout

DAEMONS = tuple(s.name for s in services.of_role("masters"))
REQUIRED_FLAGS = ("--authorization-mode=Node,RBAC", "--anonymous-auth=false",
                  "--encryption-provider-config=", "--enable-admission-plugins=NodeRestriction")


def test_master_daemons(master_host: Host) -> None:
    host = remote(master_host.name)
    down = [d for d in DAEMONS if not host.service(d).is_running]
    disabled = [d for d in DAEMONS if not host.service(d).is_enabled]
    assert not down, f"not running: {', '.join(down)}"
    assert not disabled, f"not enabled: {', '.join(disabled)}"


def test_apiserver_livez_readyz(ctx, master_host: Host) -> None:
    pki = ctx.data["pki_dir"]
    for path in ("livez", "readyz"):
        result = remote(master_host.name).run(
            f"curl -sf --max-time {timeout(5)} --cacert {pki}/kubernetes-ca.crt "
            f"--cert {pki}/kubesmith.crt --key {pki}/kubesmith.key https://{master_host.address}:{APISERVER_PORT}/{path}")
        assert result.rc == 0 and result.stdout.strip() == "ok", f"/{path}: {result.stdout}"


def test_apiserver_flags_in_effect(master_host: Host) -> None:
    host = remote(master_host.name)
    cmdline = host.run("tr '\\0' ' ' < /proc/$(pidof kube-apiserver)/cmdline")
    assert cmdline.rc == 0, "kube-apiserver is not running"
    missing = [f for f in REQUIRED_FLAGS if f not in cmdline.stdout]
    assert not missing, f"flags not in effect: {', '.join(missing)}"
    config = cmdline.stdout.split("--encryption-provider-config=")[1].split()[0]
    assert host.file(config).exists and host.file(config).mode == 0o600
    # The provider that writes (the first one listed); the file's secrets are never read here.
    first = host.run(f"grep -m1 -oE '^      - [a-z]+:' {config}").stdout.split()
    assert first[-1:] == [f"{encryption.PROVIDER}:"], (
        f"Secrets are written with {first[-1:] or 'no provider'}, not {encryption.PROVIDER}: "
        "run `python deploy.py up` (it rotates to a new key)")


def test_apiserver_uses_every_etcd_member(ctx, master_host: Host) -> None:
    cmdline = remote(master_host.name).run("tr '\\0' '\\n' < /proc/$(pidof kube-apiserver)/cmdline")
    servers = next((line.split("=", 1)[1] for line in cmdline.stdout.splitlines()
                    if line.startswith("--etcd-servers=")), "")
    want = set(ctx.cluster.etcd_client_urls.split(","))
    assert set(servers.split(",")) == want, (
        f"--etcd-servers in effect is {servers or 'unset'}, the inventory's members are "
        f"{','.join(sorted(want))}: run `python deploy.py up` (or add-etcd for new members)")


def _required_sans(ctx, master: Host) -> set[str]:
    """The names and addresses clients use for this master's apiserver, from the inventory's
    settings (not from the certificate table that signs it): its own name and address, the
    `kubernetes` Service's ClusterIP and names, loopback (the node balancers) and the external
    endpoint's host."""
    domain = str(ctx.data["cluster_domain"])
    service_vip = ipaddress.ip_network(str(ctx.data["service_cidr"])).network_address + 1
    wanted = {master.name, master.address, str(service_vip), "127.0.0.1", "kubernetes",
              "kubernetes.default", "kubernetes.default.svc", f"kubernetes.default.svc.{domain}"}
    # https://NAME-OR-IPV4[:PORT] (validated); the name as written (a SAN keeps its case).
    endpoint = urlsplit(str(ctx.data.get("apiserver_endpoint") or "")).netloc.partition(":")[0]
    return wanted | ({endpoint} if endpoint else set())


def test_apiserver_cert_sans(ctx, master_host: Host) -> None:
    name = certificates.apiserver_name(ctx.cluster.host(master_host.name))
    wanted = _required_sans(ctx, master_host)
    missing = wanted - sans(certificate(master_host.name, f"{ctx.data['pki_dir']}/{name}.crt"))
    assert not missing, f"{name}.crt lacks SANs: {', '.join(sorted(missing))}"
    pem = ssl.get_server_certificate((master_host.address, APISERVER_PORT), timeout=timeout(5))
    served = x509.load_pem_x509_certificate(pem.encode())
    missing = wanted - sans(served)
    assert not missing, f"served certificate lacks SANs: {', '.join(sorted(missing))}"


def test_apiserver_certificates(ctx, master_host: Host) -> None:
    own = certificates.apiserver_name(ctx.cluster.host(master_host.name))
    for name in (own, "apiserver-kubelet-client", "apiserver-etcd-client"):
        assert_cert_ok(ctx, master_host.name, name)
