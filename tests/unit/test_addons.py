"""Add-ons: the table, the manifests rendered from templates/addons/, the image check and the
add-ons phase deciding from kubectl (faked here)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from kubesmith import addons, certificates, settings
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext
from kubesmith.model import Cluster, Host
from kubesmith.runner import DeployError, Phase, Runner
from tasks import addons as addons_task

LOCAL = Host("@local", "127.0.0.1", frozenset({"etcd", "masters"}))


def _nodes(count: int) -> tuple[Host, ...]:
    return tuple(Host(f"n{i}", f"10.0.0.{i + 10}", frozenset({"nodes"})) for i in range(count))


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A state directory with the PKI of a one-master, two-node cluster."""
    directory = tmp_path_factory.mktemp("state")
    ctx = DeployContext(Cluster((LOCAL, *_nodes(2))), settings.group_data(), directory)
    ctx.pki.ensure(certificates.cert_specs(ctx.cluster))
    return directory


def _ctx(state: Path, nodes: int = 2, **data: object) -> DeployContext:
    return DeployContext(Cluster((LOCAL, *_nodes(nodes))), {**settings.group_data(), **data},
                         state, groups={"masters": [("@local", {})]})


def _documents(text: str) -> list[str]:
    return [d for d in re.split(r"^---$", text, flags=re.M) if re.search(r"^kind:", d, re.M)]


@pytest.mark.parametrize("name", list(addons.ADDONS))
def test_every_object_is_labelled_and_of_a_listed_kind(state: Path, name: str) -> None:
    addon = addons.ADDONS[name]
    kinds = {k.split(".")[0] for k in addons.KINDS}
    for document in _documents(addons_task.manifest(_ctx(state), addon)):
        kind = re.search(r"^kind: (\w+)", document, re.M).group(1)
        assert f"{kind.lower()}s" in kinds, f"{kind} missing from addons.KINDS"
        assert "app.kubernetes.io/managed-by: kubesmith" in document, kind
        assert f"kubesmith.io/addon: {name}" in document, kind


def test_addon_images_are_never_pulled(state: Path) -> None:
    for addon in addons.ADDONS.values():
        text = addons_task.manifest(_ctx(state), addon)
        assert f"image: {addon.image_ref(settings.group_data())}" in text
        assert text.count("imagePullPolicy: Never") == text.count("image: ")


@pytest.mark.parametrize(("nodes", "replicas"), [(1, 1), (2, 2), (5, 2)])
def test_coredns_replicas_follow_the_nodes(state: Path, nodes: int, replicas: int) -> None:
    text = addons_task.manifest(_ctx(state, nodes), addons.ADDONS["coredns"])
    assert f"replicas: {replicas}\n" in text


def test_coredns_serves_the_cluster_domain_at_cluster_dns(state: Path) -> None:
    text = addons_task.manifest(_ctx(state, cluster_domain="k8s.example", cluster_dns="10.32.0.53"),
                                addons.ADDONS["coredns"])
    assert "kubernetes k8s.example in-addr.arpa ip6.arpa {" in text
    assert "forward . /etc/resolv.conf" in text and "loop\n" in text
    assert "clusterIP: 10.32.0.53\n" in text and "name: kube-dns\n" in text
    assert "dnsPolicy: Default" in text and "topologyKey: kubernetes.io/hostname" in text


def test_metrics_server_certificate_names_its_service(state: Path) -> None:
    text = addons_task.manifest(_ctx(state), addons.ADDONS["metrics-server"])
    service = next(d for d in _documents(text) if re.search(r"^kind: Service$", d, re.M))
    name = re.search(r"^  name: (\S+)", service, re.M).group(1)
    namespace = re.search(r"^  namespace: (\S+)", service, re.M).group(1)
    spec = next(s for s in certificates.cert_specs(_ctx(state).cluster) if s.name == name)
    assert f"{name}.{namespace}.svc" in spec.dns_names and spec.ca == "kubernetes-ca"
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "insecureSkipTLSVerify" not in body and "--kubelet-insecure-tls" not in body
    assert "caBundle: " in body


def test_enabled_disabled_and_unused_images() -> None:
    data = {"addons": ["metrics-server"]}
    assert [a.name for a in addons.enabled(data)] == ["metrics-server"]
    assert [a.name for a in addons.disabled(data)] == ["coredns"]
    assert addons.unused_images(data) == {"coredns"}
    assert addons.unused_images(settings.group_data()) == set()


def test_check_images_refuses_a_missing_image_in_one_line(tmp_path: Path) -> None:
    data = settings.group_data()
    with pytest.raises(addons.AddonError) as refused:
        addons.check_images(data, tmp_path)
    message = refused.value.message()
    assert "\n" not in message and message.startswith("error: add-on coredns: image ")
    assert "python deploy.py binaries coredns" in message
    addons.check_images({**data, "addons": []}, tmp_path)  # nothing turned on, nothing needed


def test_check_images_accepts_complete_images(tmp_path: Path) -> None:
    data = settings.group_data()
    for addon in addons.enabled(data):
        component = COMPONENTS[addon.image]
        directory = cache.component_dir(tmp_path, component.name,
                                        str(data[component.version_key]), cache.host_arch())
        directory.mkdir(parents=True)
        for name in component.files:
            (directory / name).write_bytes(b"image")
        cache.write_manifest(directory, component.files)
    addons.check_images(data, tmp_path)


class FakeKubectl:
    """kubectl answers by subcommand; every call is recorded."""

    def __init__(self, diff: int = 0, live: str = "", apply_error: str = "") -> None:
        self.diff, self.live, self.apply_error = diff, live, apply_error
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, _ctx: DeployContext, *args: str,
                 **_kw: object) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[0] == "apply" and self.apply_error:
            return subprocess.CompletedProcess(args, 1, "", self.apply_error)
        code = self.diff if args[0] == "diff" else 0
        return subprocess.CompletedProcess(args, code, self.live if args[0] == "get" else "", "")


def _run(state: Path, fake: FakeKubectl, monkeypatch: pytest.MonkeyPatch,
         dry: bool = False, **data: object) -> Runner:
    monkeypatch.setattr(addons_task, "kubectl", fake)
    runner = Runner(_ctx(state, **data), lambda _line: None)
    phase = Phase("add-ons", lambda c: c.masters, (addons_task.deploy,))
    runner.run(phase, phase.on(runner.ctx.cluster), dry)
    return runner


def test_phase_applies_what_differs_server_side(state: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubectl(diff=1)
    runner = _run(state, fake, monkeypatch)
    assert runner.report.changed["add-ons"]["@local"] == [
        "apply add-on coredns", "apply add-on metrics-server"]
    applies = [c for c in fake.calls if c[0] == "apply"]
    assert len(applies) == 2
    assert all({"--server-side", "--field-manager=kubesmith", "--force-conflicts"} <= set(c)
               for c in applies)


def test_phase_changes_nothing_when_nothing_differs(state: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubectl(diff=0)
    assert _run(state, fake, monkeypatch).report.total_changes == 0
    assert [c[0] for c in fake.calls] == ["diff", "diff"]


def test_phase_removes_an_addon_turned_off_by_its_labels(state: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubectl(diff=0, live="coredns\nmetrics-server\nmetrics-server\n")
    runner = _run(state, fake, monkeypatch, addons=["coredns"])
    assert runner.report.changed["add-ons"]["@local"] == ["remove add-on metrics-server"]
    delete = next(c for c in fake.calls if c[0] == "delete")
    assert "app.kubernetes.io/managed-by=kubesmith,kubesmith.io/addon=metrics-server" in delete
    fake = FakeKubectl(diff=0, live="coredns\n")
    assert _run(state, fake, monkeypatch, addons=["coredns"]).report.total_changes == 0


def test_dry_run_lists_pending_addons_and_applies_nothing(state: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeKubectl(diff=1)
    runner = _run(state, fake, monkeypatch, dry=True)
    assert runner.report.total_changes == 2
    assert not [c for c in fake.calls if c[0] in ("apply", "delete")]


def test_a_failed_apply_names_the_step_and_shows_kubectl_error(
        state: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    fake = FakeKubectl(diff=1, apply_error="the server could not find the requested resource")
    with pytest.raises(DeployError, match="step 'apply add-on coredns' failed"):
        _run(state, fake, monkeypatch)
    assert "could not find the requested resource" in capsys.readouterr().err
