"""The embedded issuer's signing keys: a key ring in a folder of the run folder's secrets.

Layout of the folder (mode 0700; every file 0600; never in the repository):

* ``<kid>.pem`` — one Ed25519 private key (PKCS#8), named by its key id: the RFC 7638
  thumbprint of its public key, so a kid says which key it is and never names two;
* ``keyring.json`` — which key signs (``active``) and every key still published, each with
  its public key (``x``), when it was created and, once replaced, when it was retired
  (``retired_at``) and until when it verifies (``verify_until``). The verifier reads this
  file only, never a private key;
* ``.lock`` — held while the ring changes (``petitionctl`` and intake may start together).

**Rotation** (:func:`rotate`): a new key becomes the active one; the previous one is retired.
A retired key signs nothing more, and every token it signed has ``iat <= retired_at``
(+ leeway; the verifier refuses a later one) and ``exp <= iat + max TTL`` (the issuer
refuses a longer TTL, the verifier a longer lifetime). So its last valid token expires by
``retired_at + leeway + max TTL + leeway``: that is its ``verify_until``, after which it
leaves the JWKS and the verifier, and the next rotation deletes its file.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = ["ALGORITHM", "KeyRecord", "Keyring", "ensure_keys", "load_keyring", "private_key", "rotate"]

ALGORITHM = "EdDSA"
RING = "keyring.json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key of the ring: its id, its public key, and its life (epoch seconds)."""

    kid: str
    x: str
    created_at: int
    retired_at: int | None = None
    verify_until: int | None = None

    def verifies_at(self, now: float) -> bool:
        return self.verify_until is None or now < self.verify_until

    def public_jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.x, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    def public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(self.x + "=" * (-len(self.x) % 4)))


@dataclass(frozen=True, slots=True)
class Keyring:
    active: str
    keys: tuple[KeyRecord, ...]

    def get(self, kid: str) -> KeyRecord | None:
        return next((k for k in self.keys if k.kid == kid), None)

    def jwks(self, now: float) -> dict[str, list[dict[str, str]]]:
        """The public keys that still verify, as a JSON Web Key Set (the active one first)."""
        ordered = sorted(self.keys, key=lambda k: (k.kid != self.active, -k.created_at))
        return {"keys": [k.public_jwk() for k in ordered if k.verifies_at(now)]}

    def to_json(self) -> str:
        return json.dumps({"active": self.active, "keys": [
            {f: getattr(k, f) for f in ("kid", "x", "created_at", "retired_at", "verify_until")} for k in self.keys
        ]}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        data: dict[str, Any] = json.loads(text)
        keys = tuple(KeyRecord(**k) for k in data["keys"])
        ring = cls(active=data["active"], keys=keys)
        if ring.get(ring.active) is None:
            raise ValueError("the key ring's active key is not among its keys")
        return ring


def thumbprint(x: str) -> str:
    """RFC 7638 JWK thumbprint (SHA-256) of an Ed25519 public key: the key's id."""
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def load_keyring(folder: Path) -> Keyring | None:
    """The ring as it is on disk, None when there is none yet."""
    try:
        return Keyring.from_json((folder / RING).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None


def private_key(folder: Path, kid: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key((folder / f"{kid}.pem").read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{kid}.pem is not an Ed25519 key")
    return key


def ensure_keys(folder: Path, now: int) -> Keyring:
    """The ring, created with its first key when there is none (and its modes made private)."""
    with _locked(folder):
        ring = load_keyring(folder)
        if ring is None:
            record = _new_key(folder, now)
            ring = Keyring(active=record.kid, keys=(record,))
            _write(folder, ring)
        for path in folder.iterdir():
            os.chmod(path, 0o600)
        return ring


def rotate(folder: Path, now: int, *, max_ttl_seconds: int, leeway_seconds: float) -> Keyring:
    """A new active key; the previous one retired (see the module's bound); keys past their
    ``verify_until`` removed from the ring and their files deleted."""
    ensure_keys(folder, now)
    with _locked(folder):
        ring = load_keyring(folder)
        if ring is None:
            raise RuntimeError(f"the key ring in {folder} disappeared")
        record = _new_key(folder, now)
        slack = int(-(-leeway_seconds // 1))  # whole seconds, rounded up
        kept = [
            replace(k, retired_at=now, verify_until=now + slack + max_ttl_seconds + slack) if k.kid == ring.active
            else k
            for k in ring.keys
        ]
        gone = [k for k in kept if not k.verifies_at(now)]
        ring = Keyring(active=record.kid, keys=(record, *(k for k in kept if k.verifies_at(now))))
        _write(folder, ring)
        for k in gone:
            (folder / f"{k.kid}.pem").unlink(missing_ok=True)
        return ring


def _new_key(folder: Path, now: int) -> KeyRecord:
    key = Ed25519PrivateKey.generate()
    x = _b64(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    kid = thumbprint(x)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(folder / f"{kid}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return KeyRecord(kid=kid, x=x, created_at=now)


def _write(folder: Path, ring: Keyring) -> None:
    temporary = folder / f".{RING}.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(ring.to_json())
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, folder / RING)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    # the run folder's secrets: private too; intake's workers start together and may all
    # find it missing, so whoever makes it second is not refused
    if not folder.parent.exists():
        folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    fd = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
