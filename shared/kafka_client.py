"""How every Kafka client of the platform reaches and authenticates to the broker.

One value, :class:`KafkaAccess` (the bootstrap address and the principal's credentials),
carries everything a client needs, and its methods give each kind of client its settings:

* :meth:`KafkaAccess.options`: keyword arguments for aiokafka's producer, consumer and admin
  client and for kafka-python's (both libraries use the same names);
* :meth:`KafkaAccess.faust_credentials`: ``broker_credentials`` for a faust app.

What must hold: with a user name every client speaks SASL_PLAINTEXT with SCRAM-SHA-512 (the
broker's client listener offers nothing else); without one, plain PLAINTEXT (a broker that
authenticates nobody, not the local stack's). The password is a ``SecretStr`` until it is
handed to the client library, so neither a log line nor a repr shows it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from shared.kafka_credentials import ADMIN, MECHANISM, MissingCredentials, password_path, read_password, secrets_dir_of
from shared.settings import Settings

__all__ = ["KafkaAccess", "admin_access", "quiet_plaintext_sasl_warning", "secrets_dir"]


@dataclass(frozen=True)
class KafkaAccess:
    """Where the broker is and who this client is (no user name: no authentication)."""

    bootstrap: str
    username: str = ""
    password: SecretStr = field(default=SecretStr(""), repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaAccess:
        """The process's own access: ``PETITION_KAFKA_USERNAME`` with ``PETITION_KAFKA_PASSWORD``
        or, when that is empty, the password in ``PETITION_KAFKA_PASSWORD_FILE``.

        Raises MissingCredentials when a user name comes without a password."""
        username = settings.kafka_username
        if not username:
            return cls(settings.kafka_bootstrap)
        password = settings.kafka_password.get_secret_value()
        if not password:
            if settings.kafka_password_file is None:
                raise MissingCredentials(f"PETITION_KAFKA_USERNAME is {username!r} but neither "
                                         "PETITION_KAFKA_PASSWORD nor PETITION_KAFKA_PASSWORD_FILE is set")
            password = read_password(settings.kafka_password_file)
        return cls(settings.kafka_bootstrap, username, SecretStr(password))

    @classmethod
    def for_principal(cls, bootstrap: str, principal: str, folder: Path | str) -> KafkaAccess:
        """Access as `principal`, its password read from its file in `folder` (a secrets
        folder, :func:`secrets_dir`); MissingCredentials when the file does not exist."""
        return cls(bootstrap, principal, SecretStr(read_password(password_path(folder, principal))))

    @property
    def authenticated(self) -> bool:
        return bool(self.username)

    def options(self) -> dict[str, Any]:
        """``bootstrap_servers`` and the security settings, for aiokafka's and kafka-python's
        producers, consumers and admin clients alike."""
        if not self.username:
            return {"bootstrap_servers": self.bootstrap, "security_protocol": "PLAINTEXT"}
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value(),
        }

    def faust_credentials(self) -> Any:
        """faust's ``broker_credentials`` (None without a user name): SASL with SCRAM-SHA-512,
        which faust hands to every aiokafka client it makes (consumer, producer, admin)."""
        if not self.username:
            return None
        import faust  # deferred: only the faust workers need it, and it costs a second

        return faust.SASLCredentials(username=self.username, password=self.password.get_secret_value(),
                                     mechanism=MECHANISM)


def admin_access(settings: Settings, bootstrap: str | None = None) -> KafkaAccess:
    """The administrator, for tooling (petitionctl's admin commands, the demo's poison): the
    settings' own principal when one is set, else the admin with its password file in the
    secrets folder; no principal at all when neither exists (a broker that authenticates
    nobody). `bootstrap` replaces the settings' broker address."""
    if settings.kafka_username:
        access = KafkaAccess.from_settings(settings)
    elif password_path(secrets_dir(settings), ADMIN).exists():
        access = KafkaAccess.for_principal(settings.kafka_bootstrap, ADMIN, secrets_dir(settings))
    else:
        access = KafkaAccess(settings.kafka_bootstrap)
    return replace(access, bootstrap=bootstrap) if bootstrap else access


def secrets_dir(settings: Settings) -> Path:
    """The folder of the principals' password files: ``PETITION_KAFKA_SECRETS_DIR``, else
    ``<PETITION_RUN_DIR>/secrets/kafka`` (where the local stack writes them)."""
    return settings.kafka_secrets_dir or secrets_dir_of(settings.run_dir)


def quiet_plaintext_sasl_warning() -> None:
    """kafka-python warns on every SCRAM login over SASL_PLAINTEXT ("exchanging credentials in
    the clear"; SCRAM sends no password, only proofs): on a command's terminal that says nothing."""
    logging.getLogger("kafka.net.sasl.scram").setLevel(logging.ERROR)
