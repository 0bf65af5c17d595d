"""The broker's principals and ACLs, through kafka-python's admin client.

Used by ``petitionctl topics ensure`` (the services' ACLs), ``petitionctl kafka-user add``
(a department's principal, password and ACLs), and the local stack and the test broker
(deploy/stack), always as the broker's super user. What must hold:

* every operation is idempotent: an ACL that exists is not created again, a principal whose
  credentials the broker knows keeps them unless its password file is new;
* a password travels only from its file to the broker (salted by the client, SCRAM's
  ``UserScramCredentialUpsertion``); nothing here prints or logs one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    KafkaAdminClient,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)

from shared.kafka_acl import SERVICE_GRANTS, Grant, department_grants, department_principal
from shared.kafka_client import KafkaAccess, quiet_plaintext_sasl_warning
from shared.kafka_credentials import MECHANISM, ensure_password, password_path, read_password

_RESOURCES = {"topic": ResourceType.TOPIC, "group": ResourceType.GROUP, "cluster": ResourceType.CLUSTER}
_PATTERNS = {"literal": ACLResourcePatternType.LITERAL, "prefixed": ACLResourcePatternType.PREFIXED}


class BrokerAdminError(RuntimeError):
    """The broker refused an administrative change (credentials or ACLs)."""


@contextlib.contextmanager
def admin_client(access: KafkaAccess, *, client_id: str = "petitionctl",
                 request_timeout_ms: int = 30000) -> Iterator[Any]:
    """A kafka-python admin client authenticated as `access`'s principal, closed afterwards."""
    quiet_plaintext_sasl_warning()
    admin = KafkaAdminClient(**access.options(), client_id=client_id, request_timeout_ms=request_timeout_ms)
    try:
        yield admin
    finally:
        admin.close()


def acl_of(principal: str, grant: Grant) -> Any:
    """The broker's ACL for one grant of `principal` (an ALLOW from any host)."""
    return ACL(f"User:{principal}", "*", ACLOperation[grant.operation], ACLPermissionType.ALLOW,
               ResourcePattern(_RESOURCES[grant.resource], grant.name, _PATTERNS[grant.pattern]))


def apply_grants(admin: Any, principal: str, grants: Iterable[Grant]) -> int:
    """Create the ACLs of `grants` that `principal` lacks; returns how many were created."""
    wanted = {acl_of(principal, g) for g in grants}
    everything = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    existing, _error = admin.describe_acls(
        ACLFilter(f"User:{principal}", None, ACLOperation.ANY, ACLPermissionType.ANY, everything))
    missing = sorted(wanted - set(existing), key=repr)
    if missing:
        result = admin.create_acls(missing)
        if result.get("failed"):
            raise BrokerAdminError(f"the broker refused ACLs of {principal}: {result['failed']}")
    return len(missing)


def apply_service_grants(admin: Any, table: Mapping[str, Iterable[Grant]] = SERVICE_GRANTS) -> int:
    """The services' ACLs (shared.kafka_acl); returns how many were created."""
    return sum(apply_grants(admin, principal, grants) for principal, grants in table.items())


def scram_users(admin: Any) -> set[str]:
    """The principals the broker has SCRAM credentials for."""
    return {user for user, info in admin.describe_user_scram_credentials().items() if not info.get("error")}


def upsert_passwords(admin: Any, folder: Path | str, principals: Iterable[str]) -> None:
    """Tell the broker each principal's password, read from its file in `folder`."""
    alterations = [UserScramCredentialUpsertion(p, MECHANISM, read_password(password_path(folder, p)))
                   for p in principals]
    if not alterations:
        return
    refused = {user: error for user, error in admin.alter_user_scram_credentials(alterations).items() if error}
    if refused:
        raise BrokerAdminError(f"the broker refused credentials: {refused}")


def ensure_principals(admin: Any, folder: Path | str, principals: Iterable[str]) -> list[str]:
    """Give each principal a password file (kept when it exists) and the broker its
    credentials, where the broker has none or the file is new; returns those it told."""
    names = list(principals)
    new = {p for p in names if ensure_password(folder, p)[1]}
    told = sorted(new | (set(names) - scram_users(admin)))
    upsert_passwords(admin, folder, told)
    return told


def add_department_user(admin: Any, folder: Path | str, code: str) -> tuple[Path, int]:
    """Department `code`'s principal: its password file, its credentials on the broker and
    its ACLs (read its own queue, in its own groups); returns (password file, ACLs created)."""
    principal = department_principal(code)
    path, created = ensure_password(folder, principal)
    if created or principal not in scram_users(admin):
        upsert_passwords(admin, folder, [principal])
    return path, apply_grants(admin, principal, department_grants(code))
