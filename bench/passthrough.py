"""A bare consume-and-produce passthrough: the baseline the router's throughput is compared to.

Same framework and settings as the router (faust, raw codecs, batches of the same size, the
same garbage-collector settings: ``shared.runtime.tune_gc`` once started) and the same
publishing code as the router's outbox relay (``shared.outbox.Publisher``: idempotent
acks=all producers, one record batch per partition), but no work and no database: each record
of ``petition.submitted`` is produced unchanged to the router's output topics, the way the
router writes two records per petition: one to ``petition.routed`` and one to a department
queue (``dept.<code>.assignments``: the department the router's decision code picks for the
petition, read from the JSON file ``BENCH_PASSTHROUGH_ROUTES``, petition key -> code).
``BENCH_PASSTHROUGH_OUTPUTS=routed`` produces to ``petition.routed`` only;
``BENCH_PASSTHROUGH_GROUP`` names the consumer group (a fresh one reads from the start).

Run: ``python -m bench.passthrough``.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from shared import topics
from shared.kafka_client import KafkaAccess
from shared.outbox import Publisher, Record
from shared.runtime import tune_gc
from shared.settings import load_settings
from shared.worker import make_app, run_worker


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level="WARNING")
    with_queues = os.environ.get("BENCH_PASSTHROUGH_OUTPUTS", "routed,department") != "routed"
    # one consumer group per mode, so each run reads the whole topic from the start
    group = os.environ.get("BENCH_PASSTHROUGH_GROUP") or f"bench-passthrough{'-queues' if with_queues else ''}"
    kafka = KafkaAccess.from_settings(settings)
    app = make_app(group, settings, kafka=kafka, web_port=settings.router_port)
    publisher = Publisher(kafka)
    routes: dict[str, str] = {}
    if with_queues:
        with open(os.environ["BENCH_PASSTHROUGH_ROUTES"], encoding="utf-8") as f:
            routes = {k: topics.department_topic(v) for k, v in json.load(f).items()}
    source = app.topic(topics.PETITION_SUBMITTED, key_type=bytes, value_type=bytes)

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> None:
        await publisher.start()
        tune_gc()  # as the router does once it has started
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            records = []
            for e in events:
                key, value = e.message.key, e.message.value
                records.append(Record(topics.PETITION_ROUTED, key, value))
                if with_queues:
                    records.append(Record(routes[(key or b"").decode()], key, value))
            await publisher.publish(records)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        return web.json({"ready": True})

    run_worker(app, "warning")


if __name__ == "__main__":
    main()
