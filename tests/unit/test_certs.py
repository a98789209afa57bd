"""certs check's collection (places from the certificate table, one command, its parsing),
certs renew's choice and crontab line, and the lifetime settings."""

from __future__ import annotations

import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kubesmith import certcheck, certificates
from kubesmith.context import DeployContext, build
from kubesmith.settings import group_data
from kubesmith.validate import ValidationError, check_settings
from kubesmith.workflows import certs_renew
from tasks import pki as pki_tasks

SSH = {"ssh_user": "root", "ssh_key": "/root/.ssh/id", "ssh_known_hosts_file": "/root/.ssh/kh"}
M1 = ("m1", {"address": "192.0.2.10", **SSH})
N1 = ("n1", {"address": "192.0.2.11", **SSH})


def _ctx(tmp_path: Path, **settings: object) -> DeployContext:
    groups = {"etcd": [M1], "masters": [M1], "nodes": [N1]}
    ctx = build(groups, {**group_data(), **settings}, "t", warn=lambda _w: None)
    ctx.state = tmp_path / "state"
    return ctx


@pytest.fixture
def made(tmp_path: Path) -> DeployContext:
    ctx = _ctx(tmp_path, leaf_cert_lifetime="15m")
    pki_tasks.prepare(ctx)
    return ctx


def test_places_follow_the_certificate_table(made: DeployContext) -> None:
    node = made.cluster.host("n1")
    places = certcheck.host_places(made, node)
    paths = {p.path for p in places}
    for credential in certificates.of_host(made.cluster, node):
        if "crt" in credential.files:
            assert f"/etc/kubernetes/pki/{credential.name}.crt" in paths
    assert "/etc/kubernetes/kubelet.kubeconfig" in paths
    assert not any(p.path.endswith(".key") for p in places)
    control = {Path(p.path).name for p in certcheck.control_places(made)}
    assert {"admin.kubeconfig", "super-admin.kubeconfig", "kubernetes-ca.crt",
            "metrics-server.crt"} <= control


def test_command_reads_files_and_kubeconfig_client_certificates_never_keys(
        made: DeployContext, tmp_path: Path) -> None:
    """The collecting command, run by a shell against a fake host tree, and its parsing."""
    root = tmp_path / "host"
    places = [certcheck.Place("n1", str(root / p.path.lstrip("/")), p.name, p.kubeconfig)
              for p in certcheck.host_places(made, made.cluster.host("n1"))]
    pki_dir = root / "etc/kubernetes/pki"
    pki_dir.mkdir(parents=True)
    for place in places:
        if not place.kubeconfig:
            Path(place.path).write_bytes(made.pki.cert_pem(place.name))
    key = made.pki.path("kubelet-n1", "key")
    kubeconfig = next(p for p in places if p.path.endswith("kubelet.kubeconfig"))
    Path(kubeconfig.path).write_text(
        f"users:\n- user:\n    client-certificate: {pki_dir}/kubelet-n1.crt\n"
        f"    client-key: {key}\n")
    Path(next(p for p in places if p.path.endswith("kube-proxy.kubeconfig")).path).write_text(
        f"    client-certificate: {key}\n")
    (pki_dir / "kube-proxy.crt").write_bytes(made.pki.cert_pem("kubelet-n1"))  # a stale copy
    output = subprocess.run(["sh", "-c", certcheck.command(places)], capture_output=True,
                            text=True, check=True).stdout
    assert "PRIVATE KEY" not in output
    found = {Path(f.place.path).name: f for f in certcheck.parse(places, output)}
    assert found["kubelet.kubeconfig"].via == f"{pki_dir}/kubelet-n1.crt"
    assert found["kube-proxy.kubeconfig"].problem == f"names no .crt file ({key})"
    control = [certcheck.read_local(p) for p in certcheck.control_places(made)]
    report = certcheck.rows(made, [*control, *found.values()], datetime.now(UTC))
    problems = certcheck.problems(report, timedelta(minutes=1))
    assert set(problems) == {
        f"n1 {kubeconfig.path.replace('kubelet', 'kube-proxy')}: names no .crt file ({key})",
        f"n1 {pki_dir}/kube-proxy.crt: differs from the control machine's copy"}
    expiring = certcheck.problems(report, timedelta(days=30))
    assert any("kubelet.kubeconfig: expires in 15 min" in p for p in expiring), expiring
    assert not any("-ca.crt" in p for p in expiring), expiring


def test_span_is_short_for_short_lifetimes() -> None:
    assert certcheck.span(timedelta(days=300)) == "300 d"
    assert certcheck.span(timedelta(hours=5)) == "5.0 h"
    assert certcheck.span(timedelta(minutes=14, seconds=40)) == "15 min"
    assert certcheck.span(timedelta(minutes=-3)) == "EXPIRED 3 min ago"


def test_renewal_line_scales_with_the_lifetime(made: DeployContext) -> None:
    specs = certificates.cert_specs(made.cluster)
    now = datetime.now(UTC)
    assert certs_renew.chosen_specs(made.pki, specs, None, False, now) == []
    assert certs_renew.chosen_specs(made.pki, specs, None, True, now) == specs
    # A 15-minute certificate is renewed with less than 5 minutes left (a 365-day one with
    # less than 121 days): `up`'s line, and renew's default.
    made.pki.issue(specs[0], lifetime=timedelta(minutes=4, seconds=50))
    assert made.pki.reason(specs[0]) is not None
    assert certs_renew.chosen_specs(made.pki, specs, None, False, now) == specs[:1]
    assert certs_renew.chosen_specs(made.pki, specs, timedelta(days=1), False, now) == specs


def test_schedule_is_a_daily_crontab_line(made: DeployContext, monkeypatch) -> None:
    monkeypatch.setenv("KUBESMITH_STATE", "/srv/state 50%")
    monkeypatch.delenv("KUBESMITH_LAB_DIR", raising=False)  # the schedule carries it when set
    line = certs_renew.schedule(made, Path("inventories/lab.py"))
    assert line.startswith(f"{certs_renew.CRON_TIME} KUBESMITH_STATE='/srv/state 50\\%' ")
    words = shlex.split(line.replace("\\%", "%"))
    assert words[-7:-4] == ["certs", "renew", "-i"] and Path(words[-4]).is_absolute()
    assert words[-3:] == [">>", str(made.state / certs_renew.LOG), "2>&1"]


@pytest.mark.parametrize(("settings", "why"), [
    ({"leaf_cert_lifetime": "15"}, "is not a lifetime"),
    ({"leaf_cert_lifetime": "1m"}, "out of range"),
    ({"ca_cert_lifetime": "3650d;x"}, "is not a lifetime"),
    ({"leaf_cert_lifetime": "3650d"}, "not shorter than ca_cert_lifetime"),
])
def test_bad_lifetimes_are_refused(settings: dict[str, object], why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        check_settings({**group_data(), **settings})
