"""The Secrets encryption key ring: a fresh or migrated ring, a rotation's phases and the
configuration each phase renders, the ring file (0600, fails closed), the snapshot key listing;
and `up` restarting etcd members and apiservers one at a time where they already run."""

from __future__ import annotations

import base64
import json
import re
import stat
from pathlib import Path

import pytest

from kubesmith import encryption, inventory, settings
from kubesmith.context import DeployContext
from kubesmith.readahead import ReadAhead
from kubesmith.runner import Phase, Report
from kubesmith.workflows import steps, up
from kubesmith.workflows.rotate_encryption_key import stored_elsewhere
from tasks import _ops
from tasks.phases import PHASES

OLD_SECRET = base64.b64encode(b"a" * 32).decode()


def _providers(ring: encryption.Ring) -> list[tuple[str, str]]:
    """The rendered EncryptionConfiguration's providers as (type, key name), identity last."""
    text = _ops.render("controlplane/encryption-config.yaml.j2", keys=ring.active)
    assert "kind: EncryptionConfiguration\n" in text and "      - secrets\n" in text
    providers = text.split("    providers:\n")[1]
    return [(kind, name) for kind, name in re.findall(
        r"^      - (\w+):(?: \{\}|\n          keys:\n            - name: (\S+))$", providers,
        re.MULTILINE)]


def test_a_new_cluster_writes_with_secretbox(tmp_path: Path) -> None:
    assert encryption.ensure(tmp_path)
    ring = encryption.load(tmp_path)
    assert _providers(ring) == [("secretbox", "key1"), ("identity", "")]
    assert not ring.needs_rotation
    assert stat.S_IMODE((tmp_path / encryption.RING).stat().st_mode) == 0o600
    assert not encryption.ensure(tmp_path)  # kept as it is


def test_an_aescbc_key_is_migrated_and_renders_as_before(tmp_path: Path) -> None:
    (tmp_path / encryption.LEGACY_KEY).write_text(OLD_SECRET + "\n")
    ring = encryption.load(tmp_path)
    assert ring.needs_rotation and ring.primary == encryption.Key("key1", "aescbc", OLD_SECRET)
    # Byte for byte the configuration an earlier kubesmith wrote: no apiserver restart for it.
    text = _ops.render("controlplane/encryption-config.yaml.j2", keys=ring.active)
    assert text.endswith(f"      - aescbc:\n          keys:\n            - name: key1\n"
                         f"              secret: {OLD_SECRET}\n      - identity: {{}}\n")
    assert encryption.ensure(tmp_path)
    assert not (tmp_path / encryption.LEGACY_KEY).exists()
    assert encryption.load(tmp_path) == ring


def test_rotation_phases_follow_upstream(tmp_path: Path) -> None:
    (tmp_path / encryption.LEGACY_KEY).write_text(OLD_SECRET)
    ring = encryption.begin(encryption.load(tmp_path))
    assert ring.rotation == encryption.Rotation("add", "key2", ("key1",))
    # 1. readable everywhere before any apiserver writes with it
    assert _providers(ring) == [("aescbc", "key1"), ("secretbox", "key2"), ("identity", "")]
    ring = encryption.advance(ring)
    # 2. writes everywhere, the old key still reads what is not rewritten yet
    assert ring.rotation.phase == "primary"
    assert _providers(ring) == [("secretbox", "key2"), ("aescbc", "key1"), ("identity", "")]
    ring = encryption.advance(ring)
    # 3. the old key out of the configuration, kept in the ring
    assert ring.rotation.phase == "drop"
    assert _providers(ring) == [("secretbox", "key2"), ("identity", "")]
    ring = encryption.advance(ring)
    assert ring.rotation is None and not ring.needs_rotation
    assert [k.name for k in ring.keys] == ["key1", "key2"]
    with pytest.raises(encryption.RingError):
        encryption.advance(ring)


def test_a_rotation_resumes_from_the_saved_phase(tmp_path: Path) -> None:
    encryption.ensure(tmp_path)
    ring = encryption.advance(encryption.begin(encryption.load(tmp_path)))
    encryption.save(tmp_path, ring)
    again = encryption.load(tmp_path)
    assert again == ring and again.rotation.phase == "primary" and again.needs_rotation
    with pytest.raises(encryption.RingError, match="already in progress"):
        encryption.begin(again)
    third = encryption.begin(encryption.advance(encryption.advance(again)))
    assert third.rotation.new == "key3" and third.rotation.old == ("key2",)


def test_a_restored_snapshots_retired_key_is_read_again_until_a_rotation(tmp_path: Path) -> None:
    (tmp_path / encryption.LEGACY_KEY).write_text(OLD_SECRET)
    ring = encryption.begin(encryption.load(tmp_path))
    for _phase in encryption.PHASES:
        ring = encryption.advance(ring)
    # A snapshot taken before the rotation holds Secrets under key1: read again, never written.
    restored = encryption.readmit(ring, ["key1"])
    assert _providers(restored) == [("secretbox", "key2"), ("aescbc", "key1"), ("identity", "")]
    assert encryption.readmit(restored, ["key1", "key2"]) == restored
    with pytest.raises(encryption.RingError, match="lacks key9"):
        encryption.readmit(ring, ["key9"])
    # The next rotation rewrites every Secret and drops both old keys from the configuration.
    rotated = encryption.begin(restored)
    assert rotated.rotation.old == ("key2", "key1")
    for _phase in encryption.PHASES:
        rotated = encryption.advance(rotated)
    assert _providers(rotated) == [("secretbox", "key3"), ("identity", "")]


def test_key_ids_list_every_kept_key_without_secrets(tmp_path: Path) -> None:
    (tmp_path / encryption.LEGACY_KEY).write_text(OLD_SECRET)
    ring = encryption.begin(encryption.load(tmp_path))
    for _phase in encryption.PHASES:
        ring = encryption.advance(ring)
    encryption.save(tmp_path, ring)
    ids = encryption.key_ids(tmp_path)
    assert [(k.name, k.provider, k.in_use) for k in ids] == [
        ("key1", "aescbc", False), ("key2", "secretbox", True)]
    assert ids[1].prefix == "k8s:enc:secretbox:v1:key2:"
    assert OLD_SECRET not in repr(ids) and OLD_SECRET not in repr(ring)
    assert encryption.key_ids(tmp_path / "none") == []


@pytest.mark.parametrize("text", [
    "not json", "{}", '{"keys": [], "providers": [], "rotation": null}',
    json.dumps({"keys": [{"name": "key1", "provider": "aescbc", "secret": "c2hvcnQ="}],
                "providers": ["key1"], "rotation": None}),
    json.dumps({"keys": [{"name": "key1", "provider": "rot13", "secret": OLD_SECRET}],
                "providers": ["key1"], "rotation": None}),
    json.dumps({"keys": [{"name": "key1", "provider": "aescbc", "secret": OLD_SECRET}],
                "providers": ["key2"], "rotation": None}),
    json.dumps({"keys": [{"name": "k\n1", "provider": "aescbc", "secret": OLD_SECRET}],
                "providers": ["k\n1"], "rotation": None}),
])
def test_a_broken_ring_fails_closed_naming_the_file(tmp_path: Path, text: str) -> None:
    (tmp_path / encryption.RING).write_text(text)
    with pytest.raises(encryption.RingError, match=str(tmp_path / encryption.RING)):
        encryption.ensure(tmp_path)
    assert (tmp_path / encryption.RING).read_text() == text  # never replaced by a new ring


def test_secrets_stored_under_another_key_are_named() -> None:
    key = encryption.Key("key2", "secretbox", OLD_SECRET)
    b64 = lambda s: base64.b64encode(s.encode()).decode()  # noqa: E731
    listing = {"kvs": [
        {"key": b64("/registry/secrets/default/a"), "value": b64(key.prefix + "xyz")},
        {"key": b64("/registry/secrets/default/b"), "value": b64("k8s:enc:aescbc:v1:key1:x")},
        {"key": b64("/registry/secrets/kube-system/c"), "value": b64("plain")},
    ]}
    assert stored_elsewhere(listing, key) == ["default/b", "kube-system/c"]
    assert stored_elsewhere({}, key) == []


class _Runner:
    """Stands for the phase runner: records which hosts each phase run was given."""

    def __init__(self, ctx: DeployContext) -> None:
        self.ctx, self.runs, self.old_peers = ctx, [], []
        self.report = Report()
        self.ahead = ReadAhead(ctx.state / "readahead" / "up.json")

    def run(self, phase: Phase, hosts: tuple, dry: bool = False) -> None:
        self.runs.append((phase.name, [h.name for h in hosts]))
        if phase.name == "etcd":
            self.old_peers.append(self.ctx.etcd_old_peers)

    @staticmethod
    def out(_line: str) -> None:
        pass


@pytest.mark.parametrize("running", [True, False])
def test_up_rolls_etcd_and_apiservers_only_where_they_run(tmp_path: Path, monkeypatch,
                                                          running: bool) -> None:
    entries = [(f"h{i}", {"address": f"192.0.2.{10 + i}"}) for i in (1, 2, 3)]
    groups: inventory.Groups = {"etcd": entries, "masters": entries[:2], "nodes": entries[2:]}
    data = settings.group_data()
    runner = _Runner(DeployContext(inventory.to_cluster(groups, data), data, tmp_path, groups))
    monkeypatch.setattr(steps, "prepare_local", lambda *_a, **_k: None)
    monkeypatch.setattr(steps, "serving", lambda _runner, hosts, _services: running)
    old = [["h2"], []]  # h2 runs an earlier kubesmith's peer certificate, then its new one
    monkeypatch.setattr(steps, "old_peer_certificates", lambda _runner, _members: old.pop(0))
    up.converge(runner, skip_preflight=True)  # type: ignore[arg-type]
    runs = dict.fromkeys(name for name, _hosts in runner.runs)
    assert list(runs) == [p.name for p in PHASES]
    etcd = [hosts for name, hosts in runner.runs if name == "etcd"]
    masters = [hosts for name, hosts in runner.runs if name == "control plane"]
    if running:  # one member, then one apiserver, at a time
        # Without the peer CN check while h2 presents its old certificate; then with it.
        assert etcd == [["h1"], ["h2"], ["h3"]] * 2 and masters == [["h1"], ["h2"]]
        assert runner.old_peers == [True] * 3 + [False] * 3
    else:  # a new cluster's members start together
        assert etcd == [["h1", "h2", "h3"]] and masters == [["h1", "h2"]]
        assert runner.old_peers == [False]
        # The next up rolls them, reading each member's peer certificate: in its batch.
        assert {h: list(c) for h, c in runner.ahead.read.items()} == {
            h: [steps.PEER_CERT_READ] for h in ("h1", "h2", "h3")}
    if running:
        assert runner.ahead.read == {}  # read live (stubbed here) while rolling, not expected
    assert [hosts for name, hosts in runner.runs if name == "network"] == [["h1", "h2", "h3"]]
