"""petitionctl's broker commands: ``topics ensure``, ``kafka-user add`` and ``queue``.

Who each one is on the broker (SASL/SCRAM, shared/kafka_client.py):

* ``topics ensure`` and ``kafka-user add`` administer, as the principal of
  ``PETITION_KAFKA_USERNAME`` when one is set, else as the local stack's admin with its
  password file in the secrets folder (``PETITION_KAFKA_SECRETS_DIR``, default
  ``$PETITION_RUN_DIR/secrets/kafka``);
* ``queue --department <code>`` reads as that department, ``dept-<code>``, with its password
  file in the same folder (``kafka-user add`` creates it), and may read nothing else.

Heavy imports (kafka-python, the routing table) happen when a command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from shared.kafka_client import KafkaAccess, admin_access, quiet_plaintext_sasl_warning, secrets_dir
from shared.kafka_credentials import ADMIN, MissingCredentials, password_path
from shared.settings import load_settings


def topics_ensure(args: argparse.Namespace) -> int:
    """Create the platform's topics (and department queues) and the services' ACLs."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    from petitionctl.kafka_admin import admin_client, apply_service_grants
    from shared import topics
    from shared.kafka_replication import replication_configs, replication_factor

    settings = load_settings()
    access = admin_access(settings, args.bootstrap)
    # one copy per broker (at most 3) and, from 3, min.insync.replicas=2: PETITION_KAFKA_BROKERS
    replication = replication_factor(settings.kafka_brokers)
    replicated = replication_configs(replication)
    with admin_client(access) as admin:
        existing = set(admin.list_topics())
        compacted = {"cleanup.policy": "compact"}
        wanted = [NewTopic(t, topics.PARTITIONS, replication,
                           topic_configs={**replicated, **(compacted if t in topics.WATCH_COMPACTED else {})})
                  for t in topics.CORE_TOPICS if t not in existing]
        if args.departments:
            from services.router.config import load_routing_table

            for dept in load_routing_table().departments():
                name = topics.department_topic(dept.code)
                if name not in existing:
                    wanted.append(NewTopic(name, 1, replication, topic_configs=dict(replicated)))
        for i in range(0, len(wanted), 100):
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted[i : i + 100])
        _wait_until_writable(admin, {t.name for t in wanted}, args.wait)
        print(f"topics: {len(wanted)} created (replication factor {replication}), {len(existing)} existed")
        if access.authenticated:
            print(f"ACLs: {apply_service_grants(admin)} created for the services")
        else:
            print("ACLs: not checked (no broker credentials: PETITION_KAFKA_USERNAME is not set and "
                  f"{password_path(secrets_dir(settings), ADMIN)} does not exist)")
    return 0


def _wait_until_writable(admin: Any, names: set[str], timeout: float) -> None:
    """Return once every topic in `names` has partition leaders (created is not yet usable)."""
    from shared import topics

    deadline = time.monotonic() + timeout
    pending = set(names)
    while pending:
        ordered = sorted(pending)
        described: list[dict[str, Any]] = []
        for i in range(0, len(ordered), 500):
            described += admin.describe_topics(ordered[i : i + 500])
        pending = topics.topics_not_ready(described, pending)
        if pending and time.monotonic() > deadline:
            raise SystemExit(f"error: {len(pending)} topics still have no leader after {timeout:.0f}s")
        if pending:
            time.sleep(0.25)


def kafka_user_add(args: argparse.Namespace) -> int:
    """A department's principal: password file, credentials on the broker, ACLs."""
    from petitionctl.kafka_admin import add_department_user, admin_client
    from shared.reference.files import load_directory

    settings = load_settings()
    code = args.department
    if code not in load_directory(settings.routing_table_path, settings.gazetteer_path).directory.codes():
        raise SystemExit(f"error: no department {code!r} in the routing table")
    access = admin_access(settings, args.bootstrap)
    if not access.authenticated:
        raise SystemExit("error: no admin credentials: set PETITION_KAFKA_USERNAME and its password, or keep the "
                         f"admin's password in {password_path(secrets_dir(settings), ADMIN)}")
    with admin_client(access) as admin:
        path, created = add_department_user(admin, secrets_dir(settings), code)
    print(f"dept-{code}: may read dept.{code}.assignments in its groups dept-{code} and dept.{code}.*"
          f" ({created} ACLs created); password in {path}")
    return 0


def _check_login(access: KafkaAccess, password_file: Path) -> None:
    """One connection and SASL login to the first bootstrap server, so a refused password is
    said at once (kafka-python would retry it in silence for 30 s)."""
    import asyncio

    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed

    host, _, port = access.bootstrap.split(",")[0].strip().rpartition(":")
    options = {k: v for k, v in access.options().items() if k != "bootstrap_servers"}

    async def login() -> None:
        conn = await create_conn(host, int(port), request_timeout_ms=10000, **options)
        conn.close()

    try:
        asyncio.run(login())
    except SaslAuthenticationFailed:
        raise SystemExit(f"error: the broker at {access.bootstrap} refused {access.username}'s password "
                         f"({password_file})") from None
    except (OSError, TimeoutError, KafkaError) as exc:
        raise SystemExit(f"error: cannot reach the broker at {access.bootstrap}: {exc!r}") from None


def queue(args: argparse.Namespace) -> int:
    """Print a department's assignments as JSON lines, as the department's own system would."""
    from kafka import KafkaConsumer
    from kafka.errors import GroupAuthorizationFailedError, KafkaTimeoutError

    from shared import topics
    from shared.kafka_acl import department_principal

    settings = load_settings()
    code = args.department
    try:
        principal = department_principal(code)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
    try:
        access = KafkaAccess.for_principal(args.bootstrap or settings.kafka_bootstrap, principal, secrets_dir(settings))
    except MissingCredentials:
        raise SystemExit(f"error: department {code} has no Kafka credentials yet "
                         f"({password_path(secrets_dir(settings), principal)} does not exist): "
                         f"create them with `petitionctl kafka-user add --department {code}`") from None
    quiet_plaintext_sasl_warning()
    _check_login(access, password_path(secrets_dir(settings), principal))
    topic = topics.department_topic(code)
    try:
        consumer = KafkaConsumer(
            **access.options(),
            group_id=args.group or principal,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=int(args.idle_timeout * 1000) if args.idle_timeout else float("inf"),
        )
    except KafkaTimeoutError as exc:
        raise SystemExit(f"error: cannot reach the broker at {access.bootstrap} as {principal}: it is down, or it "
                         f"refused the password in {password_path(secrets_dir(settings), principal)} ({exc})") from None
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    printed = 0
    try:
        if topic not in consumer.topics():  # kafka-python would wait on a refused topic in silence
            raise SystemExit(f"error: {principal} cannot read {topic}: the queue does not exist yet (the router "
                             f"creates it), or {principal} has no ACLs (petitionctl kafka-user add --department "
                             f"{code})")
        consumer.subscribe([topic])
        for record in consumer:
            try:
                body = json.loads(record.value)
            except ValueError:
                print(f"skipping undecodable record at offset {record.offset}", file=sys.stderr)
                continue
            sys.stdout.write(json.dumps(body, ensure_ascii=False) + "\n")
            sys.stdout.flush()
            consumer.commit()
            printed += 1
            if stop or (args.max_messages and printed >= args.max_messages):
                break
    except GroupAuthorizationFailedError:
        raise SystemExit(f"error: {principal} may not use the consumer group {args.group!r}: its groups are "
                         f"{principal} and dept.{code}.*") from None
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0


def add_parsers(sub: Any) -> None:
    """The broker commands' parsers, on petitionctl's subcommand parser `sub`."""
    topics_p = sub.add_parser("topics", help="Kafka topics")
    topics_sub = topics_p.add_subparsers(dest="topics_command", required=True)
    ensure = topics_sub.add_parser("ensure", help="create every topic the platform uses and the services' "
                                                  "ACLs (idempotent)")
    ensure.add_argument("--bootstrap")
    ensure.add_argument("--no-departments", dest="departments", action="store_false",
                        help="skip the department assignment queues")
    ensure.add_argument("--wait", type=float, default=180.0, metavar="SECONDS",
                        help="how long to wait for new topics' partition leaders (default 180)")
    ensure.set_defaults(func=topics_ensure)

    users = sub.add_parser("kafka-user", help="principals on the broker")
    users_sub = users.add_subparsers(dest="kafka_user_command", required=True)
    add = users_sub.add_parser("add", help="create a department's principal, password file and ACLs (idempotent)")
    add.add_argument("--department", required=True, help="a department code of the routing table")
    add.add_argument("--bootstrap")
    add.set_defaults(func=kafka_user_add)

    queue_p = sub.add_parser("queue", help="print a department's assignment queue as JSON lines, read with "
                                           "the department's own credentials (kafka-user add)")
    queue_p.add_argument("--department", required=True)
    queue_p.add_argument("--bootstrap")
    queue_p.add_argument("--group", help="consumer group (default dept-<code>; else one starting dept.<code>.)")
    queue_p.add_argument("--max-messages", type=int, default=0)
    queue_p.add_argument("--idle-timeout", type=float, default=0.0,
                         help="exit after this many seconds without a new assignment (0: never)")
    queue_p.set_defaults(func=queue)
