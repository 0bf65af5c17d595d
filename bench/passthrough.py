"""A bare consume-and-produce passthrough: the baseline the router's throughput is compared to.

Same framework and settings as the router (faust, raw codecs, batches of the same size,
an idempotent acks=all producer) but no work: each record of ``petition.submitted`` is
produced unchanged to ``petition.routed``. Run: ``python -m bench.passthrough``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from shared import topics
from shared.outbox import make_producer
from shared.settings import load_settings
from shared.worker import make_app, run_worker


def main() -> None:
    settings = load_settings()
    logging.basicConfig(level="WARNING")
    app = make_app("bench-passthrough", settings, web_port=settings.router_port)
    producer_box: dict[str, Any] = {}
    source = app.topic(topics.PETITION_SUBMITTED, key_type=bytes, value_type=bytes)

    @app.agent(source, name="passthrough")
    async def passthrough(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            producer = producer_box.get("p")
            if producer is None:
                producer = make_producer(settings.kafka_bootstrap)
                await producer.start()
                producer_box["p"] = producer
            futures = [
                await producer.send(topics.PETITION_ROUTED, value=e.message.value, key=e.message.key)
                for e in events
            ]
            await asyncio.gather(*futures)

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        return web.json({"ready": True})

    run_worker(app, "warning")


if __name__ == "__main__":
    main()
