"""Consumed records as the platform takes them: checked before decoding, dead-lettered whole.

Transport-neutral: a faust agent or an aiokafka loop turns each record into a
:class:`RawMessage` with :func:`raw_message` (which never raises: what cannot be taken as it
should be is recorded as its ``defect``). :func:`check_record` says why a record cannot be an
event of the platform before it is even decoded (no value, no key, bad headers, oversized),
:func:`decode_failure` why a decoded one is refused, and :func:`dead_letter_message` builds the
dead letter: the stable reason, the error, the origin and the original bytes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.messages import OutboxMessage

__all__ = [
    "DEAD_LETTER_INLINE_BYTES",
    "DEAD_LETTER_PREFIX_BYTES",
    "DEAD_LETTER_REASONS",
    "DEFAULT_MAX_RECORD_BYTES",
    "Headers",
    "RawMessage",
    "check_record",
    "dead_letter_message",
    "decode_failure",
    "raw_message",
]

#: Records larger than this (key + value + headers) are dead-lettered as ``oversized``
#: (``PETITION_MAX_RECORD_BYTES``); no event of the platform comes near it.
DEFAULT_MAX_RECORD_BYTES = 1024 * 1024
#: A dead letter carries the original value in full up to this size; a larger one carries
#: its first `DEAD_LETTER_PREFIX_BYTES`, its length and SHA-256 (base64 inflates by a third,
#: and a dead letter must stay under the broker's 1 MiB message limit to be published).
DEAD_LETTER_INLINE_BYTES = 512 * 1024
DEAD_LETTER_PREFIX_BYTES = 64 * 1024

#: Every reason a record is dead-lettered for (stable codes: alerts and runbooks use them);
#: a handler's :class:`shared.errors.PetitionError` may add its own (e.g. ``unknown_petition``).
DEAD_LETTER_REASONS = frozenset({
    "null_value", "null_key", "bad_headers", "oversized",
    "undecodable", "invalid_schema", "unsupported_schema_version", "unexpected_event_type",
    "bad_input", "handler_error", "processing_error",
})

Headers = tuple[tuple[str, bytes | None], ...]


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A consumed Kafka record, as the broker delivered it.

    `value` is None for a record with a null value (a tombstone); `defect` is set by
    :func:`raw_message` when part of the record could not be taken as it should be
    (``(reason, detail)``), and the record is dead-lettered for it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    headers: Headers = ()
    defect: tuple[str, str] | None = None

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (what ``oversized`` is judged by)."""
        return (len(self.key or b"") + len(self.value or b"")
                + sum(len(k.encode("utf-8", "replace")) + len(v or b"") for k, v in self.headers))


def _as_bytes(data: Any) -> bytes | None:
    """`data` as bytes (None stays None); raises TypeError for anything else."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode()
    raise TypeError(f"{type(data).__name__} where bytes were expected")


def _as_headers(headers: Any) -> Headers:
    """Kafka headers as (text key, bytes-or-None value) pairs; raises ValueError/TypeError
    for anything else (keys that are not UTF-8 text, values that are not bytes, no pairs)."""
    if not headers:
        return ()
    items: Iterable[Any] = headers.items() if isinstance(headers, Mapping) else headers
    out: list[tuple[str, bytes | None]] = []
    for item in items:
        name, value = item  # not a pair: ValueError / TypeError
        if isinstance(name, (bytes, bytearray, memoryview)):
            name = bytes(name).decode("utf-8")
        if not isinstance(name, str) or not name:
            raise TypeError(f"header name {name!r} is not text")
        if value is not None and not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"header {name!r} has a {type(value).__name__} value, not bytes")
        out.append((name, None if value is None else bytes(value)))
    return tuple(out)


def raw_message(
    *, topic: str, partition: int, offset: int, key: Any, value: Any,
    timestamp_ms: int | None = None, headers: Any = None,
) -> RawMessage:
    """A :class:`RawMessage` from what a Kafka client delivered. Never raises: what cannot be
    taken as it should be is recorded in ``defect`` (and the record dead-lettered for it)."""
    defect: tuple[str, str] | None = None
    try:
        hdrs = _as_headers(headers)
    except Exception as exc:  # noqa: BLE001 - any malformed header list is the same defect
        hdrs, defect = (), ("bad_headers", f"{type(exc).__name__}: {exc}")
    try:
        key_bytes = _as_bytes(key)
    except Exception as exc:  # noqa: BLE001
        key_bytes, defect = None, defect or ("processing_error", f"key: {exc}")
    try:
        value_bytes = _as_bytes(value)
    except Exception as exc:  # noqa: BLE001
        value_bytes, defect = None, defect or ("processing_error", f"value: {exc}")
    try:
        stamp = int(timestamp_ms) if timestamp_ms is not None else None
    except (TypeError, ValueError):
        stamp = None
    return RawMessage(topic, partition, offset, key_bytes, value_bytes, stamp, hdrs, defect)


def check_record(message: RawMessage, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES) -> tuple[str, str] | None:
    """Why `message` cannot be an event of the platform before it is even decoded
    (``(reason, detail)``), or None. Every platform record has a value and is keyed by
    the petition id (or the unit of a zero report)."""
    if message.defect is not None and message.defect[0] != "bad_headers":
        return message.defect
    if message.value is None:
        return ("null_value", "the record has a null value")
    if not message.key:
        return ("null_key", "the record has a null or empty key; every platform record is keyed")
    if message.defect is not None:
        return message.defect
    size = message.size
    if size > max_record_bytes:
        return ("oversized", f"{size} bytes, over the {max_record_bytes}-byte limit")
    return None


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def dead_letter_message(
    *, service: str, dead_letter_topic: str, message: RawMessage, reason: str, error: str
) -> OutboxMessage:
    """The dead-letter record: reason, error text, origin and the original bytes (base64;
    a null key or value stays null; a value over `DEAD_LETTER_INLINE_BYTES` is cut to its
    first `DEAD_LETTER_PREFIX_BYTES`, with its length and SHA-256)."""
    value = message.value
    truncated = value is not None and len(value) > DEAD_LETTER_INLINE_BYTES
    key = message.key if message.key is None or len(message.key) <= DEAD_LETTER_PREFIX_BYTES else None
    body = {
        "service": service,
        "reason": reason,
        "error": error[:2000],
        "source_topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "timestamp_ms": message.timestamp_ms,
        "key_b64": _b64(message.key[:DEAD_LETTER_PREFIX_BYTES] if message.key is not None else None),
        "value_b64": _b64(value[:DEAD_LETTER_PREFIX_BYTES] if truncated and value is not None else value),
        "value_bytes": len(value) if value is not None else None,
        "headers": [[k, _b64(v[:DEAD_LETTER_PREFIX_BYTES] if v is not None else None)]
                    for k, v in message.headers[:64]],
        "failed_at": datetime.now(UTC).isoformat(),
    }
    if truncated and value is not None:
        body["value_truncated"] = True
        body["value_sha256"] = hashlib.sha256(value).hexdigest()
    return OutboxMessage(
        topic=dead_letter_topic,
        key=key,
        value=json.dumps(body, ensure_ascii=False).encode(),
        headers={"reason": reason, "source_topic": message.topic},
    )


def decode_failure(exc: ValidationError) -> str:
    """The dead-letter reason of an event that did not validate: ``undecodable`` (not JSON),
    ``unsupported_schema_version`` (a newer producer's envelope), ``unexpected_event_type``
    (a type no event contract has) or ``invalid_schema`` (the rest)."""
    try:
        errors = exc.errors()
    except Exception:  # noqa: BLE001 - classifying the error must not fail
        return "invalid_schema"
    types = {e.get("type") for e in errors}
    if "json_invalid" in types:
        return "undecodable"
    if "union_tag_invalid" in types:
        return "unexpected_event_type"
    if any(e.get("loc", ())[-1:] == ("schema_version",) and e.get("type") == "value_error" for e in errors):
        return "unsupported_schema_version"
    return "invalid_schema"
