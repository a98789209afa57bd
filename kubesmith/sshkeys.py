"""OpenSSH ed25519 key pairs made with cryptography (lab client key and lab host keys)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from kubesmith.pki import write_atomic


def write_private(path: Path, data: bytes) -> None:
    """Write key material 0600 from the first byte, also over an existing file of a wider mode
    (a new file renamed over it: never world-readable, not even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, 0o600)


def generate(private_path: Path, comment: str) -> str:
    """Make an ed25519 key pair: private key file 0600 and `.pub`; return the public line."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    write_private(private_path, private)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    line = f"{public} {comment}"
    Path(f"{private_path}.pub").write_text(line + "\n")
    return line


def ensure(private_path: Path, comment: str) -> str:
    """The public line of an existing key pair, made first if absent."""
    pub = Path(f"{private_path}.pub")
    if private_path.exists() and pub.exists():
        return pub.read_text().strip()
    return generate(private_path, comment)
