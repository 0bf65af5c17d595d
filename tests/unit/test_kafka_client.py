"""Every Kafka client's security settings from one place (shared.kafka_client), the password
files they come from (shared.kafka_credentials), and the local stack's wiring of them."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from shared.kafka_client import KafkaAccess, admin_access
from shared.kafka_credentials import MissingCredentials, ensure_password, password_path, read_password
from shared.settings import Settings


def test_a_principal_speaks_sasl_scram_and_no_principal_plaintext() -> None:
    access = KafkaAccess("127.0.0.1:9092", "router", SecretStr("s3cret"))
    assert access.options() == {
        "bootstrap_servers": "127.0.0.1:9092", "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "router", "sasl_plain_password": "s3cret",
    }
    assert "s3cret" not in repr(access) and "s3cret" not in str(access)
    assert KafkaAccess("127.0.0.1:9092").options() == {"bootstrap_servers": "127.0.0.1:9092",
                                                        "security_protocol": "PLAINTEXT"}


async def test_aiokafka_takes_the_settings_for_every_kind_of_client() -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient

    options = KafkaAccess("127.0.0.1:1", "intake", SecretStr("pw")).options()
    producer, consumer, admin = AIOKafkaProducer(**options), AIOKafkaConsumer(**options), AIOKafkaAdminClient(**options)
    try:
        for client in (producer.client, consumer._client, admin._client):  # what each connects with
            assert (client._security_protocol, client._sasl_mechanism, client._sasl_plain_username,
                    client._sasl_plain_password) == ("SASL_PLAINTEXT", "SCRAM-SHA-512", "intake", "pw")
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


def test_faust_gets_scram_credentials(tmp_path: Path) -> None:
    from shared.worker import make_app

    access = KafkaAccess("127.0.0.1:1", "escalation", SecretStr("pw"))
    credentials = access.faust_credentials()
    assert (credentials.username, credentials.password) == ("escalation", "pw")
    assert credentials.mechanism.value == "SCRAM-SHA-512" and credentials.protocol.value == "SASL_PLAINTEXT"
    assert KafkaAccess("127.0.0.1:1").faust_credentials() is None
    app = make_app("unit-creds", Settings(run_dir=tmp_path), kafka=access, web_port=1)
    assert getattr(app.conf.broker_credentials, "username", None) == "escalation"


def test_settings_give_the_password_itself_or_its_file(tmp_path: Path) -> None:
    path, _ = ensure_password(tmp_path, "intake")
    from_file = KafkaAccess.from_settings(Settings(kafka_username="intake", kafka_password_file=path))
    assert from_file.password.get_secret_value() == read_password(path)
    given = KafkaAccess.from_settings(Settings(kafka_username="intake", kafka_password=SecretStr("given"),
                                               kafka_password_file=path))
    assert given.password.get_secret_value() == "given"
    assert KafkaAccess.from_settings(Settings()).authenticated is False
    with pytest.raises(MissingCredentials, match="PETITION_KAFKA_PASSWORD_FILE"):
        KafkaAccess.from_settings(Settings(kafka_username="intake"))
    with pytest.raises(MissingCredentials, match="no Kafka password file"):
        KafkaAccess.from_settings(Settings(kafka_username="intake", kafka_password_file=tmp_path / "none"))


def test_password_files_are_private_generated_once_and_never_overwritten(tmp_path: Path) -> None:
    folder = tmp_path / "secrets" / "kafka"
    path, created = ensure_password(folder, "dept-A3")
    assert created and path == password_path(folder, "dept-A3") == folder / "dept-A3.password"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert len(first) >= 40 and not first.endswith("\n")  # the broker reads the file's bytes as they are
    again, created_again = ensure_password(folder, "dept-A3")
    assert (again, created_again, again.read_text()) == (path, False, first)
    assert ensure_password(folder, "dept-K1")[0].read_text() != first
    for bad in ("../admin", "a/b", "", "x y"):
        with pytest.raises(ValueError, match="principal"):
            password_path(folder, bad)


def test_admin_tooling_uses_the_settings_principal_else_the_admins_file(tmp_path: Path) -> None:
    assert admin_access(Settings(run_dir=tmp_path)).authenticated is False
    ensure_password(tmp_path / "secrets" / "kafka", "admin")
    local = admin_access(Settings(run_dir=tmp_path), "127.0.0.1:19092")
    assert (local.username, local.bootstrap) == ("admin", "127.0.0.1:19092")
    own = admin_access(Settings(run_dir=tmp_path, kafka_username="ops", kafka_password=SecretStr("x")))
    assert own.username == "ops"


def test_the_stack_runs_each_service_as_itself_and_its_commands_as_the_admin(tmp_path: Path) -> None:
    from deploy.stack.config import service_env, service_process

    inherited = {"PATH": "/usr/bin", "PETITION_KAFKA_USERNAME": "admin", "PETITION_KAFKA_PASSWORD": "leaked"}
    env = service_env("127.0.0.1:9092", "postgresql://x", "00", run_dir=tmp_path, base=inherited)
    assert "PETITION_KAFKA_USERNAME" not in env and "PETITION_KAFKA_PASSWORD" not in env
    assert env["PETITION_KAFKA_SECRETS_DIR"] == str(tmp_path / "secrets" / "kafka")
    for name in ("intake", "router", "escalation"):
        proc_env = service_process(name, env, tmp_path).env or {}
        assert proc_env["PETITION_KAFKA_USERNAME"] == name
        assert proc_env["PETITION_KAFKA_PASSWORD"] == ""
        assert proc_env["PETITION_KAFKA_PASSWORD_FILE"] == str(tmp_path / "secrets" / "kafka" / f"{name}.password")
