"""Secrets encryption at rest: the key ring in the PKI directory (every key ever used, kept for
snapshots taken before a rotation), the providers the apiservers' EncryptionConfiguration lists,
and the phase of a key rotation in progress.

The provider is `secretbox` (XSalsa20-Poly1305): upstream's recommendation of the two AEAD
providers for keys rotated by hand; `aesgcm` draws a random nonce per write and must be rotated
every 200,000 writes, which only an automated rotation keeps up with. `aescbc`, an earlier
kubesmith's provider (one key, `key1`), stays readable until a rotation has rewritten every
Secret under a secretbox key."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from kubesmith.errors import UserError
from kubesmith.pki import write_atomic

PROVIDER = "secretbox"
PROVIDERS = ("secretbox", "aescbc", "aesgcm")
RING = "encryption.json"  # in the PKI directory, 0600
LEGACY_KEY = "encryption-key"  # an earlier kubesmith's single aescbc key, named key1
# A rotation's phases, in order: the new key readable everywhere, then writing everywhere
# (every Secret rewritten at the end of it), then the old keys out of the configuration.
PHASES = ("add", "primary", "drop")


class RingError(UserError):
    """The key ring exists but cannot be used as it is."""


@dataclass(frozen=True)
class Key:
    """One encryption key: its name, provider and base64 secret (never in repr)."""

    name: str
    provider: str
    secret: str = field(repr=False)

    @property
    def prefix(self) -> str:
        """How the apiserver prefixes a value it stored under this key in etcd."""
        return f"k8s:enc:{self.provider}:v1:{self.name}:"


@dataclass(frozen=True)
class Rotation:
    """A rotation in progress: its phase, the new key and the keys it replaces."""

    phase: str
    new: str
    old: tuple[str, ...]


@dataclass(frozen=True)
class Ring:
    """Every key (retired ones kept), the configuration's providers (the first one writes) and
    the rotation in progress, if any."""

    keys: tuple[Key, ...]
    providers: tuple[str, ...]
    rotation: Rotation | None = None

    def key(self, name: str) -> Key:
        """A key by name."""
        return next(k for k in self.keys if k.name == name)

    @property
    def active(self) -> tuple[Key, ...]:
        """The keys in the configuration, in its order."""
        return tuple(self.key(name) for name in self.providers)

    @property
    def primary(self) -> Key:
        """The key new writes are encrypted with."""
        return self.active[0]

    @property
    def needs_rotation(self) -> bool:
        """A rotation is unfinished, or Secrets are still written with another provider."""
        return self.rotation is not None or self.primary.provider != PROVIDER


@dataclass(frozen=True)
class KeyId:
    """A key as a snapshot needs to know it, without its secret: the fingerprint is 12 hex
    digits of the key's sha256, which reveals nothing of the key."""

    name: str
    provider: str
    in_use: bool
    fingerprint: str

    def __str__(self) -> str:
        """`provider:name:fingerprint`, as a snapshot's metadata lists it."""
        return f"{self.provider}:{self.name}:{self.fingerprint}"

    @property
    def prefix(self) -> str:
        """The etcd value prefix of Secrets stored under this key."""
        return f"k8s:enc:{self.provider}:v1:{self.name}:"


def new_secret() -> str:
    """32 random bytes, base64 (the key length of secretbox, aesgcm and aescbc-256)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def next_name(ring: Ring) -> str:
    """key<N>, one above every key name the ring ever held (names are never reused)."""
    numbers = [int(k.name[3:]) for k in ring.keys if k.name[3:].isdigit()]
    return f"key{max(numbers, default=0) + 1}"


def fresh() -> Ring:
    """A new cluster's ring: one secretbox key."""
    return Ring((Key("key1", PROVIDER, new_secret()),), ("key1",))


def begin(ring: Ring) -> Ring:
    """Start a rotation: a new secretbox key, listed after the current ones (read, not written)."""
    if ring.rotation is not None:
        raise RingError(f"a rotation to {ring.rotation.new} is already in progress")
    new = Key(next_name(ring), PROVIDER, new_secret())
    return Ring((*ring.keys, new), (*ring.providers, new.name),
                Rotation("add", new.name, ring.providers))


def advance(ring: Ring) -> Ring:
    """The ring after the current phase is rolled out everywhere: the new key made primary, then
    the old keys dropped from the configuration (kept in the ring), then no rotation."""
    rotation = ring.rotation
    if rotation is None:
        raise RingError("no rotation in progress")
    if rotation.phase == "add":
        return replace(ring, providers=(rotation.new, *rotation.old),
                       rotation=replace(rotation, phase="primary"))
    if rotation.phase == "primary":
        return replace(ring, providers=(rotation.new,), rotation=replace(rotation, phase="drop"))
    return replace(ring, rotation=None)


def readmit(ring: Ring, names: Iterable[str]) -> Ring:
    """The ring with these kept keys listed again after the current ones (read, never written):
    a restored snapshot holds Secrets under the keys in use when it was taken, until a rotation
    rewrites them and drops the keys again."""
    missing = tuple(n for n in dict.fromkeys(names) if n not in ring.providers)
    unknown = [n for n in missing if n not in {k.name for k in ring.keys}]
    if unknown:
        raise RingError(f"the key ring lacks {', '.join(unknown)}")
    if not missing:
        return ring
    rotation = ring.rotation and replace(ring.rotation, old=(*ring.rotation.old, *missing))
    return replace(ring, providers=(*ring.providers, *missing), rotation=rotation)


def _to_json(ring: Ring) -> str:
    rotation = ring.rotation
    return json.dumps({
        "keys": [{"name": k.name, "provider": k.provider, "secret": k.secret} for k in ring.keys],
        "providers": list(ring.providers),
        "rotation": None if rotation is None else {
            "phase": rotation.phase, "new": rotation.new, "old": list(rotation.old)},
    }, indent=2) + "\n"


def _check_secret(path: Path, key: Key) -> None:
    """A key's secret is 32 bytes of base64 (and nothing a YAML file could misread)."""
    try:
        ok = len(base64.b64decode(key.secret, validate=True)) == 32
    except ValueError:
        ok = False
    if not ok:
        raise RingError(f"{path}: key {key.name} does not hold 32 base64 bytes")


def parse(path: Path, text: str) -> Ring:
    """A ring from its file's text; RingError naming the file when it is not a usable ring."""
    try:
        data = json.loads(text)
        keys = tuple(Key(str(k["name"]), str(k["provider"]), str(k["secret"]))
                     for k in data["keys"])
        providers = tuple(str(p) for p in data["providers"])
        raw = data["rotation"]
        rotation = None if raw is None else Rotation(str(raw["phase"]), str(raw["new"]),
                                                     tuple(str(o) for o in raw["old"]))
    except (ValueError, KeyError, TypeError) as error:
        raise RingError(f"{path}: not a kubesmith encryption key ring ({error}); restore it from "
                        "a backup of the state directory") from None
    names = [k.name for k in keys]
    for key in keys:
        if not key.name.startswith("key") or not key.name[3:].isdigit():
            raise RingError(f"{path}: key name {key.name!r} is not key<N>")
        if key.provider not in PROVIDERS:
            raise RingError(f"{path}: key {key.name}: unknown provider {key.provider!r}")
        _check_secret(path, key)
    wanted = [*providers, *([rotation.new, *rotation.old] if rotation else [])]
    if len(set(names)) != len(names) or not providers or not set(wanted) <= set(names):
        raise RingError(f"{path}: key names repeated, no provider, or a provider or rotation "
                        "naming a key the ring lacks; restore it from a backup")
    if rotation is not None and rotation.phase not in PHASES:
        raise RingError(f"{path}: unknown rotation phase {rotation.phase!r}")
    return Ring(keys, providers, rotation)


def load(directory: Path) -> Ring | None:
    """The ring of a PKI directory; an earlier kubesmith's single aescbc key as a ring of one
    (in memory: `save` writes it); None when neither exists."""
    path = directory / RING
    if path.exists():
        try:
            text = path.read_text()
        except OSError as error:
            raise RingError(f"{path}: unreadable ({error})") from None
        return parse(path, text)
    legacy = directory / LEGACY_KEY
    if legacy.exists():
        key = Key("key1", "aescbc", legacy.read_text().strip())
        _check_secret(legacy, key)
        return Ring((key,), ("key1",))
    return None


def save(directory: Path, ring: Ring) -> None:
    """Write the ring (0600 from its first byte, replaced atomically); an earlier kubesmith's
    key file goes once the ring holds it."""
    write_atomic(directory / RING, _to_json(ring).encode(), 0o600)
    (directory / LEGACY_KEY).unlink(missing_ok=True)


def ensure(directory: Path) -> bool:
    """Write the ring when the directory has none (from an earlier kubesmith's key, else a new
    one); whether it was written."""
    if (directory / RING).exists():
        load(directory)  # fails closed on a ring that does not parse
        return False
    save(directory, load(directory) or fresh())
    return True


def key_ids(directory: Path) -> list[KeyId]:
    """Every key a snapshot of this cluster may need (in use, or retired and kept), without
    secrets: a snapshot holds Secrets under the keys in use when it was taken."""
    ring = load(directory)
    if ring is None:
        return []
    return [KeyId(k.name, k.provider, k.name in ring.providers,
                  hashlib.sha256(k.secret.encode()).hexdigest()[:12]) for k in ring.keys]
