"""Metrics every service exports (prometheus-client, default registry).

Names follow Prometheus conventions: base units, ``_total`` counters, no per-petition labels.
Service-specific metrics live in each service's own ``metrics.py``.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_CONSUMED = Counter(
    "petition_events_consumed_total",
    "Events a consumer handled (applied or skipped as a repeat).",
    ["service", "topic", "outcome"],
)
DEAD_LETTERS = Counter(
    "petition_dead_letters_total",
    "Messages sent to a dead-letter topic, by source topic and reason.",
    ["service", "topic", "reason"],
)
OUTBOX_BACKLOG = Gauge(
    "petition_outbox_backlog_messages",
    "Outbox rows not yet published to Kafka.",
    ["service"],
)
OUTBOX_PUBLISHED = Counter(
    "petition_outbox_published_total", "Outbox rows published to Kafka.", ["service"]
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "petition_outbox_publish_errors_total", "Failed attempts to publish the outbox.", ["service"]
)
BATCH_SECONDS = Histogram(
    "petition_consumer_batch_duration_seconds",
    "Time to apply one batch of consumed events, including the database commit.",
    ["service"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
TRANSIENT_RETRIES = Counter(
    "petition_consumer_retries_total",
    "Batches retried after a transient failure (database or broker unavailable).",
    ["service"],
)
OUTBOX_OLDEST_AGE = Gauge(
    "petition_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row not yet on Kafka (0 when none waits). Computed when scraped"
    " from the oldest row the relay last saw, so it keeps growing while the relay is stuck.",
    ["service"],
)
BACKGROUND_RESTARTS = Counter(
    "petition_background_task_restarts_total",
    "Background loops (outbox relay, read model, timers, lag) restarted after they crashed"
    " or ended.",
    ["service", "task"],
)
BACKGROUND_UP = Gauge(
    "petition_background_task_up",
    "1 while a background loop of the service runs and reports itself healthy, else 0.",
    ["service", "task"],
)
