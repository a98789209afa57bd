"""etcd snapshots on the control machine: take one from a healthy member (`snapshot`), with its
sha256, `etcdutl snapshot status` figures and metadata beside it; prune old ones; check one
before a restore (`check`), without contacting any host."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pyinfra.api.host import Host as PyinfraHost

from kubesmith import encryption, paths
from kubesmith.binaries import cache
from kubesmith.context import DeployContext
from kubesmith.runner import DeployError, Runner, run_on
from tasks import etcd

REMOTE_DIR = f"{paths.STATE_DIR}/backups"
# etcd appends the sha256 of the database to every snapshot it streams (`snapshot save`);
# `etcdutl snapshot restore` checks it.
HASH_SIZE = 32
_NAME = re.compile(r"etcd-[A-Za-z0-9._-]+-\d{8}T\d{9}Z\.db")


class SnapshotError(DeployError):
    """A snapshot file that cannot be restored as it is: the message names the file and why."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file on the control machine and its sidecars (sha256, metadata)."""

    path: Path

    @property
    def sha256_path(self) -> Path:
        """`sha256sum` format: `<hex>  <file name>`."""
        return self.path.with_name(self.path.name + ".sha256")

    @property
    def meta_path(self) -> Path:
        """Metadata (JSON): members, versions, status figures, encryption key ids."""
        return self.path.with_name(self.path.name + ".json")

    def files(self) -> tuple[Path, ...]:
        """The snapshot and its sidecars."""
        return self.path, self.sha256_path, self.meta_path

    def recorded_sha256(self) -> str:
        """The sha256 the .sha256 file records ("" when empty or not text)."""
        try:
            return (self.sha256_path.read_text().split() or [""])[0]
        except UnicodeDecodeError:
            return ""

    def meta(self) -> dict:
        """The metadata, read."""
        return json.loads(self.meta_path.read_text())


def default_dest(ctx: DeployContext) -> Path:
    """Where backups go unless --dest says otherwise: the cluster state's backups/."""
    return ctx.state / "backups"


def encryption_key_ids(ctx: DeployContext, kept: bool = False) -> list[str]:
    """The keys the apiservers' encryption config lists (a snapshot's Secrets are under one of
    them), or with `kept` every key the state directory's ring keeps (retired ones too: what a
    restore can still find), as `provider:name:fingerprint`. No keys yet: none."""
    try:
        ids = encryption.key_ids(ctx.pki.directory)
    except (OSError, encryption.RingError):
        return []
    return [str(k) for k in ids if kept or k.in_use]


def etcdutl_status(ctx: DeployContext, path: Path) -> dict:
    """`etcdutl snapshot status -w json` of a local file, run with the cached etcdutl."""
    result = subprocess.run([ctx.binary("etcd", "etcdutl"), "snapshot", "status", str(path),
                             "-w", "json"], capture_output=True, text=True, timeout=120,
                            check=False)
    lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
    if result.returncode != 0:
        raise SnapshotError(f"{path}: etcdutl snapshot status failed: {lines[-1][-200:]}")
    return json.loads(result.stdout)


def _integrity(path: Path) -> bool:
    """Whether the sha256 etcd appended matches the database before it."""
    size = path.stat().st_size
    if size <= HASH_SIZE or size % 512 != HASH_SIZE:
        return False
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        left = size - HASH_SIZE
        while left:
            block = stream.read(min(left, 1 << 20))
            digest.update(block)
            left -= len(block)
        return digest.digest() == stream.read()


def check(ctx: DeployContext, path: Path) -> tuple[Snapshot, dict]:
    """Check a snapshot before a restore, on the control machine only: its sidecars, sha256,
    etcd's own integrity hash, `etcdutl snapshot status`, and that the state directory holds
    the encryption keys its metadata names. Returns it with its status; raises one line."""
    snap = Snapshot(path)
    for file in snap.files():
        if not file.is_file():
            raise SnapshotError(f"{file}: missing (a backup is the .db file with its .sha256 "
                                "and .json beside it)")
    recorded, actual = snap.recorded_sha256(), cache.sha256_file(path)
    if not cache.SHA256.fullmatch(recorded) or recorded != actual:
        raise SnapshotError(f"{path}: sha256 {actual[:16]}… does not match "
                            f"{snap.sha256_path.name} ({recorded[:16] or 'empty'}…): "
                            "the file changed since the backup")
    if not _integrity(path):
        raise SnapshotError(f"{path}: corrupted or truncated (etcd's integrity hash at its end "
                            "does not match its content)")
    status = etcdutl_status(ctx, path)
    try:
        meta = snap.meta()
        needed = [str(k) for k in meta["encryption_keys"]]
        if not all(isinstance(m["name"], str) and isinstance(m["peer_urls"], list)
                   for m in meta["members"]):
            raise TypeError("members need a name and peer_urls")
    except (ValueError, KeyError, TypeError) as error:
        raise SnapshotError(f"{snap.meta_path}: unreadable metadata ({error})") from error
    missing = sorted(set(needed) - set(encryption_key_ids(ctx, kept=True)))
    if missing:
        raise SnapshotError(f"{path}: the state directory {ctx.state} lacks the secrets "
                            f"encryption key(s) {', '.join(missing)} this snapshot needs: restore "
                            "the state directory of the cluster it was taken from")
    return snap, status


def snapshot(runner: Runner, dest: Path) -> Path:
    """Take an etcd snapshot from the first healthy member (unreachable or unhealthy members
    are skipped) into dest (0700), mode 0600, with its .sha256 and .json; return its path."""
    ctx = runner.ctx
    problems = []
    for member in ctx.cluster.etcd:
        taking = False
        try:
            with runner.connect("backup", (member,)) as connected:
                remote = connected[0]
                healthy, output = run_on(remote, etcd.etcdctl(ctx, "endpoint health"))
                if healthy:
                    taking = True
                    return _take(ctx, remote, dest)
                problems.append(f"{member.name}: {output.strip()[-200:]}")
        except DeployError as error:
            if taking:
                raise
            problems.append(str(error))
    raise DeployError("backup: no healthy etcd member: " + "; ".join(problems))


def _take(ctx: DeployContext, remote: PyinfraHost, dest: Path) -> Path:
    """`etcdctl snapshot save` on the member, copied here and checked; metadata written."""
    now = datetime.now(UTC)
    stamp = f"{now:%Y%m%dT%H%M%S}{now.microsecond // 1000:03d}Z"
    cluster = re.sub(r"[^A-Za-z0-9._-]", "_", ctx.state.name)
    snap = Snapshot(dest / f"etcd-{cluster}-{stamp}.db")
    remote_file = f"{REMOTE_DIR}/{snap.path.name}"
    quoted = shlex.quote(remote_file)
    dest.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(dest, 0o700)
    answers = {}
    partial = snap.path.with_name(snap.path.name + ".part")
    try:
        for what, command in save_commands(ctx, remote_file).items():
            ok, output = run_on(remote, command)
            if not ok:
                raise DeployError(f"{remote.name}: etcdctl {what}: "
                                  f"{output.strip()[-300:]}")
            answers[what] = output
        with open(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
            if not remote.get_file(remote_file, out):
                raise DeployError(f"{remote.name}: could not copy {remote_file}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        run_on(remote, f"rm -f {quoted}")
    digest = cache.sha256_file(partial)
    if digest != answers["save"].split()[0]:
        partial.unlink()
        raise DeployError(f"backup: {snap.path.name}: copy differs from the member's file")
    partial.rename(snap.path)
    _private(snap.sha256_path, f"{digest}  {snap.path.name}\n")
    members = json.loads(answers["members"]).get("members", [])
    status = json.loads(answers["status"])[0]["Status"]
    meta = {
        "taken": now.isoformat(timespec="seconds"),
        "taken_from": remote.name,
        "sha256": digest,
        "members": [{"name": m.get("name", ""), "peer_urls": m.get("peerURLs", []),
                     "client_urls": m.get("clientURLs", [])} for m in members],
        "etcd_version": status.get("version", ""),
        "versions": ctx.versions,
        "status": etcdutl_status(ctx, snap.path),
        "encryption_keys": encryption_key_ids(ctx),
    }
    _private(snap.meta_path, json.dumps(meta, indent=2) + "\n")
    return snap.path


def save_commands(ctx: DeployContext, remote_file: str) -> dict[str, str]:
    """The commands on the member: snapshot save (printing its sha256), members, status."""
    return {
        "save": f"umask 077 && mkdir -p {shlex.quote(REMOTE_DIR)} && "
                + etcd.etcdctl(ctx, etcd.quoted("snapshot", "save", remote_file))
                + f" >/dev/null && sha256sum {shlex.quote(remote_file)}",
        "members": etcd.etcdctl(ctx, "member list -w json"),
        "status": etcd.etcdctl(ctx, "endpoint status -w json"),
    }


def _private(path: Path, text: str) -> None:
    """Write a 0600 file."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)


def prune(dest: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups in dest (with their sidecars); return those gone."""
    found = sorted(p for p in dest.glob("etcd-*.db") if _NAME.fullmatch(p.name))
    gone = found[:max(len(found) - keep, 0)]
    for path in gone:
        for file in Snapshot(path).files():
            file.unlink(missing_ok=True)
    return gone
