"""The departments' queues on the broker (``dept.<code>.assignments``), created through the
Kafka admin client when a department gets its first work (topics are explicit)."""

from __future__ import annotations

import asyncio
import time

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from shared import topics
from shared.kafka_client import KafkaAccess
from shared.kafka_replication import replication_configs, replication_factor


class DepartmentQueues:
    """Creates the queues of departments getting their first work (a
    :class:`services.router.handlers.DepartmentQueues`).

    One admin round trip for all of a batch's new departments; known topics cost nothing.
    Each queue gets the replication of the platform's other topics on a cluster of `brokers`
    (``PETITION_KAFKA_BROKERS``): min(brokers, 3) replicas, ``min.insync.replicas=2`` from 3
    (shared.kafka_replication). Given explicitly: aiokafka's CreateTopics (v3 at most) cannot ask for
    the broker's default replication factor (-1 needs v4).
    """

    def __init__(self, kafka: KafkaAccess, brokers: int = 1) -> None:
        self._kafka = kafka
        self._replication = replication_factor(brokers)
        self._configs = replication_configs(self._replication)
        self._known_topics: set[str] = set()
        self._admin: AIOKafkaAdminClient | None = None

    async def ensure(self, codes: set[str]) -> None:
        missing = {topics.department_topic(c) for c in codes} - self._known_topics
        if not missing:
            return
        if self._admin is None:
            admin = AIOKafkaAdminClient(**self._kafka.options())
            await admin.start()
            self._admin = admin
        try:
            self._known_topics.update(await self._admin.list_topics())
            missing -= self._known_topics
            names = sorted(missing)
            for i in range(0, len(names), 500):
                try:
                    response = await self._admin.create_topics(
                        [NewTopic(n, num_partitions=1, replication_factor=self._replication,
                                  topic_configs=dict(self._configs))
                         for n in names[i : i + 500]]
                    )
                except TopicAlreadyExistsError:
                    continue
                for topic, code, *_ in getattr(response, "topic_errors", getattr(response, "topics", [])):
                    if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
                        raise RuntimeError(f"cannot create topic {topic}: error code {code}")
            await self._wait_until_writable(set(names))
            self._known_topics.update(missing)
        except Exception:
            admin, self._admin = self._admin, None
            if admin is not None:
                await admin.close()
            raise

    async def _wait_until_writable(self, names: set[str], timeout: float = 120.0) -> None:
        """Wait until every new queue has a partition leader, so the relay's first writes to
        them land instead of bouncing between retries and metadata refreshes."""
        assert self._admin is not None  # noqa: S101 - narrows the type: never None here
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            described = []
            ordered = sorted(pending)
            for i in range(0, len(ordered), 500):
                described += await self._admin.describe_topics(ordered[i : i + 500])
            pending = topics.topics_not_ready(described, pending)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} new department queues have no leader after {timeout:.0f}s")
            await asyncio.sleep(0.25)
