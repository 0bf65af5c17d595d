"""How many copies of a topic a Kafka cluster keeps, and how many must be in sync for a write.

One rule for every topic the platform creates (``petitionctl topics ensure``, the router's
department queues) and for the broker's own defaults (the internal topics; the local stack's
server.properties, deploy/stack/kafka.py): min(brokers, 3) replicas, and from three replicas
``min.insync.replicas=2``, so with the producers' ``acks=all`` an acknowledged write is on two
brokers and any one broker may die while writes go on.

Standard library only: the local stack's ``make down`` imports it with the system Python.
"""

from __future__ import annotations

#: replicas of every topic on a cluster of three brokers or more
MAX_REPLICATION = 3
#: in-sync replicas an ``acks=all`` write needs with MAX_REPLICATION replicas
MIN_INSYNC_REPLICAS = 2


def replication_factor(brokers: int) -> int:
    """The replication factor of every topic on a cluster of `brokers` brokers: one copy per
    broker, at most :data:`MAX_REPLICATION`."""
    if brokers < 1:
        raise ValueError(f"a Kafka cluster has at least one broker, not {brokers}")
    return min(brokers, MAX_REPLICATION)


def min_insync_replicas(replication: int) -> int:
    """The ``min.insync.replicas`` of a topic with `replication` replicas: 2 from three
    replicas up; 1 below (with two replicas, 2 would stop every write while either broker is
    down)."""
    return MIN_INSYNC_REPLICAS if replication >= MAX_REPLICATION else 1


def replication_configs(replication: int) -> dict[str, str]:
    """The topic configs that go with `replication` replicas: ``min.insync.replicas`` where it
    is not Kafka's default 1 (a single broker's topics are created as they always were)."""
    isr = min_insync_replicas(replication)
    return {"min.insync.replicas": str(isr)} if isr > 1 else {}
