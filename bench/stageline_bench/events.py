"""Synthetic touchpoints: client events for HTTP, wire records for a preloaded topic.

Event names are the ones the default journeys (and tests/fixtures/journeys.yaml) stage on,
plus one that matches no rule.
"""

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from stageline_shared.contract.limits import WIRE_VERSION
from stageline_shared.contract.record import TouchpointRecord, decode_touchpoint

EVENT_NAMES = [
    "Ad Clicked", "Product Viewed", "Review Read", "Product Added", "Order Completed",
    "Ticket Resolved", "Review Written", "Newsletter Opened",
]
CHANNELS = ["web", "email", "store", "ads", "support"]
BASE_TIME = datetime(2026, 10, 1, tzinfo=UTC)
# Replaced per request by the load generators, so every event id is unique (the stager
# deduplicates by event_id: repeated ids would be skipped, not applied).
PLACEHOLDER = "XXXXXXXXXX"


def customer_id(prefix: str, number: int) -> str:
    return f"{prefix}-c-{number:07d}"


def client_event(
    event_id: str | None, customer: str, rng: random.Random, name: str | None = None
) -> dict[str, Any]:
    """A client event; without an event id when `event_id` is None (ingest assigns one)."""
    event = {
        "event_id": event_id,
        "customer_id": customer,
        "event": name or rng.choice(EVENT_NAMES),
        "channel": rng.choice(CHANNELS),
        "occurred_at": (BASE_TIME + timedelta(seconds=rng.randrange(86_400))).isoformat(),
        "properties": {"sku": f"SKU-{rng.randrange(1000)}"},
    }
    if event_id is None:
        del event["event_id"]
    return event


def batch_templates(
    tag: str, count: int, batch: int, customers: int, seed: int, with_ids: bool = True
) -> list[bytes]:
    """`count` request bodies {"batch": [...]} whose event ids hold PLACEHOLDER (or that carry
    no event ids: each is then unique because ingest assigns it)."""
    rng = random.Random(seed)
    bodies = []
    for template in range(count):
        events = [
            client_event(f"{tag}-{PLACEHOLDER}-{template:03d}{index:03d}" if with_ids else None,
                         customer_id(tag, rng.randrange(customers)), rng)
            for index in range(batch)
        ]
        bodies.append(orjson.dumps({"batch": events}))
    return bodies


def wire_records(tag: str, events: int, customers: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) records as ingest would have produced them: every customer, then random ones.

    Values are the TouchpointRecord JSON: version and type first, other defaults left out.
    """
    rng = random.Random(seed)
    received = BASE_TIME.isoformat()
    for index in range(events):
        number = index if index < customers else rng.randrange(customers)
        customer = customer_id(tag, number)
        value = orjson.dumps({
            "v": WIRE_VERSION,
            "type": "track",
            "event_id": f"{tag}-e-{index:09d}",
            "customer_id": customer,
            "event": rng.choice(EVENT_NAMES),
            "channel": rng.choice(CHANNELS),
            "occurred_at": (BASE_TIME + timedelta(seconds=rng.randrange(86_400))).isoformat(),
            "received_at": received,
            "properties": {"sku": f"SKU-{rng.randrange(1000)}"},
            "source": "bench",
        })
        yield customer.encode(), value


def check_wire_format(value: bytes) -> None:
    """Fail early if the contract changed and the stager would dead-letter our records, or read
    them on its slow path."""
    fast = isinstance(decode_touchpoint(value), TouchpointRecord)
    if not fast:
        raise ValueError(f"the stager would read this record on its slow path: {value[:200]!r}")


def raw_values(events: int, customers: int, seed: int) -> Iterator[tuple[bytes, bytes]]:
    """~200-byte keyed values for the raw producer reference."""
    rng = random.Random(seed)
    for index in range(events):
        customer = customer_id("raw", rng.randrange(customers))
        value = (f'{{"event_id":"raw-{index:09d}","customer_id":"{customer}",'
                 f'"event":"{rng.choice(EVENT_NAMES)}","channel":"web",'
                 f'"occurred_at":"2026-10-01T00:00:00+00:00","properties":{{"pad":"').encode()
        yield customer.encode(), value + b"x" * (196 - len(value)) + b'"}}'
