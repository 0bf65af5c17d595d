"""The local broker's security configuration (deploy/stack/kafka.py), without starting it: what
server.properties says, that it holds no secret, and how a storage of an older make up is told
apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.stack import KafkaNode, StackError
from shared.kafka_credentials import ensure_password, read_password


def _node(tmp_path: Path) -> KafkaNode:
    return KafkaNode(19092, 19093, tmp_path / "kafka", tmp_path / "secrets" / "kafka")


def test_clients_must_authenticate_and_nobody_but_the_admin_passes_without_an_acl(tmp_path: Path) -> None:
    props = _node(tmp_path).properties()
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092"
    assert "PLAINTEXT:PLAINTEXT" not in props["listener.security.protocol.map"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["super.users"] == "User:admin"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    # the controller listener (loopback) knows the admin alone
    assert "user_admin=" in props["listener.name.controller.plain.sasl.jaas.config"]


def test_the_written_configuration_holds_no_password(tmp_path: Path) -> None:
    node = _node(tmp_path)
    path, _ = ensure_password(node.secrets_dir, "admin")
    node.write_config()
    text = node.config_file.read_text()
    assert read_password(path) not in text
    assert f"${{dir:{node.secrets_dir}:admin.password}}" in text  # read by the broker itself


def test_an_older_make_ups_storage_is_told_apart(tmp_path: Path) -> None:
    node = _node(tmp_path)
    assert not node.needs_credentials()  # nothing formatted yet: format writes them
    node.log_dirs.mkdir(parents=True)
    (node.log_dirs / "meta.properties").write_text("version=1\n")
    assert node.needs_credentials()  # formatted, no credentials: an older make up
    node.credentials_marker.write_text("admin, intake, router, escalation\n")
    assert node.needs_credentials()  # credentials written, but the admin's password is lost
    ensure_password(node.secrets_dir, "admin")
    assert not node.needs_credentials()
    unsecured = node.properties(secured=False)
    assert unsecured["listeners"].startswith("PLAINTEXT://") and "authorizer.class.name" not in unsecured


def test_a_running_broker_of_an_older_make_up_asks_for_make_down(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    node = _node(tmp_path)
    node.log_dirs.mkdir(parents=True)
    (node.log_dirs / "meta.properties").write_text("version=1\n")
    monkeypatch.setattr(node, "is_running", lambda: True)
    with pytest.raises(StackError, match="run `make down`, then `make up`"):
        node.start()


def test_a_secrets_folder_that_cannot_go_into_the_jaas_line_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="must not contain"):
        KafkaNode(19092, 19093, tmp_path / "kafka", tmp_path / "a:b")
