"""etcd snapshots on the control machine: a real snapshot (from an etcd run here, from the cache)
is checked before any restore; a bad file, a missing --yes or a state directory without the
snapshot's encryption keys is refused in one line before any host is contacted."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubesmith import backup, cli, inventory, settings
from kubesmith.backup import Snapshot
from kubesmith.binaries import cache
from kubesmith.binaries.recipes import COMPONENTS
from kubesmith.context import DeployContext

GROUPS = {"etcd": [("m1", {"address": "192.0.2.1"})], "masters": [("m1", {"address": "192.0.2.1"})],
          "nodes": [("n1", {"address": "192.0.2.2"})]}
INVENTORY = ('etcd = [("m1", {"address": "192.0.2.1"})]\nmasters = etcd\n'
             'nodes = [("n1", {"address": "192.0.2.2"})]\n')


def _etcd_dir() -> Path:
    version = settings.versions()["etcd_version"]
    return cache.component_dir(cache.default_root(), "etcd", version, cache.host_arch())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def raw_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """`etcdctl snapshot save` of a real etcd (the cached binary) run on 127.0.0.1 here."""
    directory = _etcd_dir()
    if not cache.is_complete(directory, COMPONENTS["etcd"].files):
        pytest.skip(f"etcd not in the binary cache ({directory}): run `deploy.py binaries etcd`")
    work = tmp_path_factory.mktemp("etcd")
    client, peer = (f"http://127.0.0.1:{_free_port()}" for _ in range(2))
    etcd = subprocess.Popen(
        [str(directory / "etcd"), "--name=t", f"--data-dir={work / 'data'}",
         f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
         f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
         f"--initial-cluster=t={peer}", "--listen-metrics-urls=http://127.0.0.1:0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    etcdctl = [str(directory / "etcdctl"), f"--endpoints={client}"]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*etcdctl, "put", "/registry/namespaces/before", "x"],
                             capture_output=True, check=False).returncode != 0:
            assert time.monotonic() < deadline, "local etcd did not start"
            time.sleep(0.2)
        path = work / "raw.db"
        subprocess.run([*etcdctl, "snapshot", "save", str(path)], capture_output=True, check=True)
        yield path
    finally:
        etcd.terminate()
        etcd.wait(10)


def _state(tmp_path: Path, name: str = "state") -> Path:
    """A state directory with an encryption key of its own."""
    state = tmp_path / name
    (state / "pki").mkdir(parents=True)
    (state / "pki" / "encryption-key").write_text(
        base64.b64encode(secrets.token_bytes(32)).decode() + "\n")
    return state


def _ctx(state: Path) -> DeployContext:
    data = settings.group_data()
    return DeployContext(inventory.to_cluster(GROUPS, data), data, state, GROUPS)


def _backup_of(raw: Path, state: Path, content: bytes | None = None) -> Path:
    """A backup as `deploy.py backup` writes it, for a cluster whose state is `state`; the
    .sha256 matches `content` (default: the snapshot's)."""
    path = state.parent / "etcd-state-20260101T000000000Z.db"
    path.write_bytes(raw.read_bytes() if content is None else content)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    snap = Snapshot(path)
    snap.sha256_path.write_text(f"{digest}  {path.name}\n")
    snap.meta_path.write_text(json.dumps({
        "sha256": digest, "members": [{"name": "m1", "peer_urls": ["https://192.0.2.1:2380"]}],
        "encryption_keys": backup.encryption_key_ids(_ctx(state))}))
    return path


def _restore(tmp_path: Path, state: Path, *args: str) -> list[str]:
    """`deploy.py restore ARGS` against unreachable hosts; its stderr lines (exit 1, nothing on
    stdout: no phase started, no host connected)."""
    hosts = tmp_path / "hosts.py"
    hosts.write_text(INVENTORY)
    env = dict(os.environ, KUBESMITH_STATE=str(state))
    result = subprocess.run([sys.executable, str(settings.PROJECT / "deploy.py"), "restore",
                             "-i", str(hosts), *args], capture_output=True, text=True,
                            timeout=120, check=False, env=env)
    assert result.returncode == 1 and result.stdout == "", result.stdout + result.stderr
    assert "connect" not in result.stderr  # a host contacted would fail to connect instead
    return result.stderr.strip().splitlines()


def test_a_good_snapshot_passes_every_check(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    snap, status = backup.check(_ctx(state), _backup_of(raw_snapshot, state))
    assert status["revision"] >= 2 and status["totalKey"] >= 1
    assert snap.meta()["encryption_keys"][0].startswith("aescbc:key1:")


def test_restore_without_yes_is_one_line(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    path = _backup_of(raw_snapshot, state)
    lines = _restore(tmp_path, state, str(path))
    assert len(lines) == 1 and lines[0].startswith("error: restore: refusing without --yes: "
                                                   f"{path.name} (checked: revision"), lines


def _damaged(raw: Path, how: str) -> bytes:
    data = bytearray(raw.read_bytes())
    if how == "truncated":
        return bytes(data[:len(data) // 2])
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("how", ["truncated", "corrupted"])
def test_a_damaged_snapshot_is_refused_in_one_line(raw_snapshot: Path, tmp_path: Path,
                                                    how: str) -> None:
    state = _state(tmp_path)
    path = _backup_of(raw_snapshot, state, _damaged(raw_snapshot, how))  # its sha256 matches
    lines = _restore(tmp_path, state, str(path), "--yes")
    assert lines == [f"error: {path}: corrupted or truncated (etcd's integrity hash at its end "
                     "does not match its content)"]


def test_a_file_etcdutl_cannot_read_is_refused(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    junk = secrets.token_bytes(4096)
    path = _backup_of(raw_snapshot, state, junk + hashlib.sha256(junk).digest())
    lines = _restore(tmp_path, state, str(path), "--yes")
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {path}: etcdutl snapshot status failed: "), lines


def test_a_sha256_mismatch_is_refused(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    path = _backup_of(raw_snapshot, state)
    path.write_bytes(_damaged(raw_snapshot, "corrupted"))
    lines = _restore(tmp_path, state, str(path), "--yes")
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: sha256 ") and \
        lines[0].endswith("the file changed since the backup"), lines


def test_a_sha256_file_that_is_not_text_is_refused(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    path = _backup_of(raw_snapshot, state)
    Snapshot(path).sha256_path.write_bytes(b"\xff\xfe")
    lines = _restore(tmp_path, state, str(path), "--yes")
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}: sha256 ") and \
        "(empty…)" in lines[0], lines


def test_a_state_without_the_snapshots_keys_is_refused(raw_snapshot: Path,
                                                       tmp_path: Path) -> None:
    path = _backup_of(raw_snapshot, _state(tmp_path))
    other = _state(tmp_path, "other")  # another cluster's state: another encryption key
    needed = Snapshot(path).meta()["encryption_keys"]
    lines = _restore(tmp_path, other, str(path), "--yes")
    assert lines == [f"error: {path}: the state directory {other} lacks the secrets encryption "
                     f"key(s) {needed[0]} this snapshot needs: restore the state directory of "
                     "the cluster it was taken from"]


def test_a_missing_sidecar_is_refused(raw_snapshot: Path, tmp_path: Path) -> None:
    state = _state(tmp_path)
    path = _backup_of(raw_snapshot, state)
    Snapshot(path).meta_path.unlink()
    lines = _restore(tmp_path, state, str(path), "--yes")
    assert lines == [f"error: {path}.json: missing (a backup is the .db file with its .sha256 "
                     "and .json beside it)"]


def test_key_ids_name_provider_key_and_fingerprint_not_the_key(tmp_path: Path) -> None:
    state = _state(tmp_path)
    secret = (state / "pki" / "encryption-key").read_text().strip()
    ids = backup.encryption_key_ids(_ctx(state))
    assert ids == [f"aescbc:key1:{hashlib.sha256(secret.encode()).hexdigest()[:12]}"]
    assert backup.encryption_key_ids(_ctx(tmp_path / "empty")) == []


def test_prune_keeps_the_newest(tmp_path: Path) -> None:
    names = [f"etcd-c-2026010{d}T000000000Z.db" for d in range(1, 6)]
    for name in names:
        for suffix in ("", ".sha256", ".json"):
            (tmp_path / (name + suffix)).write_text("x")
    (tmp_path / "etcd-notes.db").write_text("not ours")
    gone = backup.prune(tmp_path, 3)
    assert [p.name for p in gone] == names[:2]
    assert sorted(p.name for p in tmp_path.glob("*.db")) == sorted([*names[2:], "etcd-notes.db"])
    assert len(list(tmp_path.iterdir())) == 10


@pytest.mark.parametrize("argv", [
    ["backup", "--keep", "0"], ["backup", "--keep", "-1"],
    ["backup", "--schedule", "daily\nExecStart=/bin/sh"], ["backup", "--schedule", "$(reboot)"],
])
def test_bad_backup_flags_are_refused_by_the_parser(argv: list[str],
                                                    capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.parser().parse_args(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("deploy.py backup: error:")


def test_schedule_defaults_to_daily() -> None:
    args = cli.parser().parse_args(["backup", "--schedule"])
    assert args.schedule == "daily" and args.keep is None and args.connects
