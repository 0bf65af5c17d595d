"""Kafka principals' passwords on disk: one file per principal, readable by its owner only.

The broker authenticates every client with SASL/SCRAM-SHA-512 (user name and password); the
local stack and the test broker keep each principal's password in
``<secrets dir>/<principal>.password`` (default ``$PETITION_RUN_DIR/secrets/kafka``), the
folder mode 700 and each file mode 600. What must hold:

* a password is generated here, once, from :mod:`secrets`, and never overwritten: the broker
  keeps a salted copy, so a new file would lock its principal out until the broker is told;
* a password is never printed or logged, only its file's path;
* only the standard library is imported: the local stack's ``make down`` runs with the system
  Python, and the stack reads these files when it writes the broker's configuration.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

#: the one SASL mechanism the broker's client listener offers
MECHANISM = "SCRAM-SHA-512"
#: the broker's super user: the local stack, the test fixtures and petitionctl's admin commands
ADMIN = "admin"
#: the services' own principals, one per service, named as the service
SERVICE_PRINCIPALS: tuple[str, ...] = ("intake", "router", "escalation", "watch")
#: the principals written into the broker's storage when it is formatted
BOOTSTRAP_PRINCIPALS: tuple[str, ...] = (ADMIN, *SERVICE_PRINCIPALS)

#: a principal name this module will make a file name of (service names and ``dept-<code>``)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


class MissingCredentials(RuntimeError):
    """A principal's password file does not exist (yet)."""


def secrets_dir_of(run_dir: Path | str) -> Path:
    """The folder of the principals' password files of a run folder."""
    return Path(run_dir) / "secrets" / "kafka"


def password_path(secrets_dir: Path | str, principal: str) -> Path:
    """Where `principal`'s password lives (whether or not it exists)."""
    if not principal or not set(principal) <= _NAME_CHARS:
        raise ValueError(f"not a principal name: {principal!r}")
    return Path(secrets_dir) / f"{principal}.password"


def read_password(path: Path | str) -> str:
    """The password in `path` (surrounding whitespace dropped); MissingCredentials if absent."""
    file = Path(path)
    try:
        value = file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise MissingCredentials(f"no Kafka password file {file}") from None
    if not value:
        raise MissingCredentials(f"the Kafka password file {file} is empty")
    return value


def ensure_password(secrets_dir: Path | str, principal: str) -> tuple[Path, bool]:
    """`principal`'s password file, generated when missing; returns (path, created now).

    The password is 32 random bytes as URL-safe text, written without a trailing newline so
    the broker's directory config provider reads it exactly as the clients do. An existing
    file is kept as it is (its mode tightened to 600).
    """
    folder = Path(secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    path = password_path(folder, principal)
    created = False
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(32))
        created = True
    os.chmod(path, 0o600)
    return path, created
