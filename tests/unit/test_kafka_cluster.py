"""PETITION_KAFKA_BROKERS without starting a broker: the nodes' ports and server.properties,
the replication every created topic gets, the bootstrap address the services get, and what
`make status` prints (deploy/stack/kafka.py, deploy/stack/config.py, shared/kafka_replication.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from deploy.stack import KafkaCluster, StackConfig, StackError, cli, service_env
from deploy.stack.config import kafka_ports
from deploy.stack.kafka import replication_properties, unfenced_brokers
from shared.kafka_replication import min_insync_replicas, replication_configs, replication_factor


def _cluster(tmp_path: Path, size: int) -> KafkaCluster:
    clients, controllers = kafka_ports(19092, 19192, size)
    return KafkaCluster(clients, controllers, tmp_path / "kafka", tmp_path / "secrets" / "kafka")


def test_one_broker_keeps_its_two_ports_and_three_never_collide() -> None:
    assert kafka_ports(9092, 9093, 1) == ([9092], [9093])
    # the adjacent defaults: a second broker would take 9093, so the controllers follow the brokers
    assert kafka_ports(9092, 9093, 3) == ([9092, 9093, 9094], [9095, 9096, 9097])
    assert kafka_ports(19092, 19192, 3) == ([19092, 19093, 19094], [19192, 19193, 19194])
    assert kafka_ports(9092, 9090, 3) == ([9092, 9093, 9094], [9095, 9096, 9097])
    assert kafka_ports(9092, 9089, 3) == ([9092, 9093, 9094], [9089, 9090, 9091])
    for size in range(1, 8):
        clients, controllers = kafka_ports(9092, 9093, size)
        assert len(set(clients + controllers)) == 2 * size
    with pytest.raises(ValueError, match="at least one broker"):
        kafka_ports(9092, 9093, 0)


def test_the_services_get_every_broker_and_the_broker_count() -> None:
    cfg = StackConfig.from_env({"PETITION_KAFKA_BROKERS": "3", "PETITION_KAFKA_PORT": "19092",
                                "PETITION_KAFKA_CONTROLLER_PORT": "19192"})
    assert cfg.kafka_brokers == 3
    assert cfg.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert cfg.port_env()["PETITION_KAFKA_BROKERS"] == "3"
    env = service_env(cfg.bootstrap, cfg.dsn, "k", cfg.port_env(), cfg.run_dir, base={})
    assert env["PETITION_KAFKA_BOOTSTRAP"] == cfg.bootstrap
    assert env["PETITION_KAFKA_BROKERS"] == "3"
    single = StackConfig.from_env({})
    assert (single.kafka_brokers, single.bootstrap) == (1, "127.0.0.1:9092")
    # a stack given no count gets 1, never the calling shell's
    assert service_env(single.bootstrap, single.dsn, "k", base={"PETITION_KAFKA_BROKERS": "3"})[
        "PETITION_KAFKA_BROKERS"] == "1"
    with pytest.raises(ValueError, match="PETITION_KAFKA_BROKERS"):
        StackConfig.from_env({"PETITION_KAFKA_BROKERS": "0"})


def test_replication_is_one_copy_per_broker_up_to_three_with_two_in_sync_from_three() -> None:
    assert [replication_factor(n) for n in (1, 2, 3, 5)] == [1, 2, 3, 3]
    assert [min_insync_replicas(r) for r in (1, 2, 3)] == [1, 1, 2]
    assert replication_configs(1) == replication_configs(2) == {}
    assert replication_configs(3) == {"min.insync.replicas": "2"}
    assert replication_properties(3) == {
        "default.replication.factor": "3", "min.insync.replicas": "2",
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3", "transaction.state.log.min.isr": "2",
        "share.coordinator.state.topic.replication.factor": "3", "share.coordinator.state.topic.min.isr": "2",
    }
    assert set(replication_properties(1).values()) == {"1"}


def test_one_broker_is_the_single_node_it_always_was(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, 1)
    (node,) = cluster.nodes
    assert node.data_dir == (tmp_path / "kafka").resolve() and node.name == "kafka"
    props = node.properties()
    assert props["node.id"] == "1"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19192"
    assert props["listeners"] == "SASL_PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19192"
    assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "1"
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "1"
    assert cluster.bootstrap == "127.0.0.1:19092"


def test_three_nodes_are_one_quorum_each_with_its_own_id_ports_and_folder(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, 3)
    voters = "1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"
    assert cluster.bootstrap == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert [n.name for n in cluster.nodes] == ["kafka-1", "kafka-2", "kafka-3"]
    assert len({n.data_dir for n in cluster.nodes}) == 3
    assert {n.cluster_id_file for n in cluster.nodes} == {(tmp_path / "kafka" / "cluster.id").resolve()}
    for i, node in enumerate(cluster.nodes):
        props = node.properties()
        assert props["node.id"] == str(i + 1)
        assert props["controller.quorum.voters"] == voters
        assert props["process.roles"] == "broker,controller"
        assert props["listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{19092 + i},CONTROLLER://127.0.0.1:{19192 + i}"
        assert props["advertised.listeners"] == f"SASL_PLAINTEXT://127.0.0.1:{19092 + i}"
        assert props["log.dirs"] == str(node.data_dir / "data")
        assert props["default.replication.factor"] == props["offsets.topic.replication.factor"] == "3"
        assert props["min.insync.replicas"] == props["share.coordinator.state.topic.min.isr"] == "2"
        # the same admin, and the same password file, on every node
        assert props["super.users"] == "User:admin"
        assert str(cluster.secrets_dir) in props["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]


def test_colliding_ports_and_a_storage_of_another_size_are_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="collide"):
        KafkaCluster([9092, 9093], [9093, 9094], tmp_path / "k", tmp_path / "s")
    single = _cluster(tmp_path, 1)
    (single.nodes[0].log_dirs).mkdir(parents=True)
    (single.nodes[0].log_dirs / "meta.properties").write_text("version=1\n")
    with pytest.raises(StackError, match="made for 1 broker"):
        _cluster(tmp_path, 3).start()
    (tmp_path / "kafka" / "cluster.size").write_text("3\n")
    with pytest.raises(StackError, match="made for 3 broker"):
        _cluster(tmp_path, 1).start()


def test_a_node_is_ready_once_the_cluster_lists_it_unfenced() -> None:
    described = {"brokers": [{"broker_id": 1, "is_fenced": False}, {"broker_id": 2, "is_fenced": True},
                             {"broker_id": 3}]}
    assert unfenced_brokers(described) == {1, 3}
    assert unfenced_brokers({}) == set()


def test_status_prints_a_line_per_broker(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = StackConfig.from_env({"PETITION_RUN_DIR": str(tmp_path), "PETITION_KAFKA_BROKERS": "3",
                                "PETITION_KAFKA_PORT": "19092", "PETITION_KAFKA_CONTROLLER_PORT": "19192"})
    assert cli.cmd_status(cfg) == 0
    lines = capsys.readouterr().out.splitlines()
    kafka = [line.split()[:3] for line in lines if line.startswith("kafka")]
    assert kafka == [["kafka-1", "stopped", "pid=-"], ["kafka-2", "stopped", "pid=-"], ["kafka-3", "stopped", "pid=-"]]
    assert cli.cmd_status(StackConfig.from_env({"PETITION_RUN_DIR": str(tmp_path)})) == 0
    assert capsys.readouterr().out.split()[0] == "kafka"


class _Admin:
    """kafka-python's admin client, as far as topics ensure uses it."""

    def __init__(self) -> None:
        self.created: list[Any] = []

    def list_topics(self) -> list[str]:
        return []

    def create_topics(self, topics: list[Any]) -> None:
        self.created += topics

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        return [{"name": n, "error_code": 0, "partitions": [{"error_code": 0, "leader": 1}]} for n in names]


@pytest.mark.parametrize(("brokers", "replication", "configs"), [
    ("1", 1, {}), ("3", 3, {"min.insync.replicas": "2"}),
])
def test_topics_ensure_replicates_every_topic_as_the_cluster_allows(
        brokers: str, replication: int, configs: dict[str, str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from petitionctl import broker, kafka_admin
    from shared import topics

    admin = _Admin()

    @contextlib.contextmanager
    def fake_client(access: Any, **_: Any) -> Iterator[_Admin]:
        yield admin

    monkeypatch.setattr(kafka_admin, "admin_client", fake_client)
    monkeypatch.setenv("PETITION_KAFKA_BROKERS", brokers)
    monkeypatch.setenv("PETITION_KAFKA_SECRETS_DIR", str(tmp_path))  # no admin password: no ACLs
    monkeypatch.delenv("PETITION_KAFKA_USERNAME", raising=False)
    assert broker.topics_ensure(argparse.Namespace(bootstrap=None, departments=True, wait=5.0)) == 0
    by_name = {t.name: t for t in admin.created}
    assert set(topics.CORE_TOPICS) <= set(by_name)
    assert any(name.startswith("dept.") for name in by_name)
    assert {t.replication_factor for t in admin.created} == {replication}
    for t in admin.created:
        assert {k: v for k, v in t.topic_configs.items() if k != "cleanup.policy"} == configs
    assert by_name[topics.WATCH_COMPACTED[0]].topic_configs["cleanup.policy"] == "compact"


def test_the_router_creates_department_queues_with_the_clusters_replication(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.router import topics_admin
    from shared.kafka_client import KafkaAccess

    created: list[Any] = []

    class FakeAdmin:
        def __init__(self, **_: Any) -> None:
            pass

        async def start(self) -> None:
            pass

        async def close(self) -> None:
            pass

        async def list_topics(self) -> list[str]:
            return []

        async def create_topics(self, new: list[Any]) -> Any:
            created.extend(new)
            return argparse.Namespace(topic_errors=[(t.name, 0, None) for t in new])

        async def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
            return [{"topic": n, "error_code": 0, "partitions": [{"error_code": 0, "leader": 1}]} for n in names]

    monkeypatch.setattr(topics_admin, "AIOKafkaAdminClient", FakeAdmin)
    asyncio.run(topics_admin.DepartmentQueues(KafkaAccess("127.0.0.1:1"), brokers=3).ensure({"A01"}))
    asyncio.run(topics_admin.DepartmentQueues(KafkaAccess("127.0.0.1:1")).ensure({"B02"}))
    assert [(t.name, t.replication_factor, t.topic_configs) for t in created] == [
        ("dept.A01.assignments", 3, {"min.insync.replicas": "2"}),
        ("dept.B02.assignments", 1, {}),
    ]


def test_down_stops_the_brokers_of_any_size_that_ran_from_the_folder(tmp_path: Path) -> None:
    for n in (1, 2, 3):
        (tmp_path / "kafka" / f"node-{n}").mkdir(parents=True)
    single = _cluster(tmp_path, 1)
    found = single._nodes_on_disk()
    assert [(n.name, n.data_dir.name) for n in found] == [
        ("kafka", "kafka"), ("kafka-1", "node-1"), ("kafka-2", "node-2"), ("kafka-3", "node-3")]
    assert not single.stop()  # nothing runs: nothing stopped
