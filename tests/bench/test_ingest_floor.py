"""The bench's ingest floor forwards each event of a batch as its own bytes, keyed by customer."""

from datetime import UTC, datetime

import msgspec
import orjson

from stageline_bench.ingest_floor import forward_unchecked


def test_each_event_is_forwarded_as_sent_under_its_customer() -> None:
    events = [
        {"event_id": "e-1", "customer_id": "c-1", "event": "Ad Clicked", "properties": {"a": [1, {"b": None}]}},
        {"customer_id": "c-2", "event": "Order Completed"},
        {"event_id": "e-3", "customer_id": "c-1", "event": "  ", "anything": "unchecked"},
    ]
    body = b'{"batch": [' + b", ".join(orjson.dumps(e) for e in events) + b"]}"

    intake = forward_unchecked(body, datetime.now(UTC))

    assert [r.key for r in intake.accepted] == [b"c-1", b"c-2", b"c-1"]
    assert [r.event_id for r in intake.accepted] == ["e-1", "", "e-3"]
    assert [msgspec.json.decode(r.value) for r in intake.accepted] == events
    assert [r.value for r in intake.accepted] == [orjson.dumps(e) for e in events]
    assert intake.rejected == [] and not any(r.clamped for r in intake.accepted)
