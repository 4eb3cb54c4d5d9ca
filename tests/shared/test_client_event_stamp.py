"""How stamp completes a client event: the event id it assigns, occurred_at kept or clamped."""

import time
import uuid
from datetime import UTC, datetime, timedelta

from stageline_shared.contract.client_event import TouchpointIn, stamp
from stageline_shared.contract.limits import MAX_FUTURE_SKEW
from tests.fixtures.client_event import RECEIVED, event


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_event_id_assigned_when_missing() -> None:
    first = stamp(TouchpointIn.model_validate(event()), RECEIVED)
    second = stamp(TouchpointIn.model_validate(event()), RECEIVED)

    assert uuid.UUID(first.event_id)
    assert first.event_id != second.event_id


def test_assigned_event_ids_are_time_ordered_uuid7() -> None:
    """Sorted as made (new touchpoints append to the primary-key index), and RFC 9562's layout:
    version 7, the RFC's variant, the time of making in the leading 48 bits."""
    before = int(time.time() * 1000)
    ids = [stamp(TouchpointIn.model_validate(event()), RECEIVED).event_id for _ in range(2000)]
    after = int(time.time() * 1000)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for value in (uuid.UUID(ids[0]), uuid.UUID(ids[-1])):
        assert (value.version, value.variant) == (7, uuid.RFC_4122)
        assert before <= value.int >> 80 <= after


def test_event_id_kept_when_given() -> None:
    touchpoint = stamp(TouchpointIn.model_validate(event(event_id="evt-42")), RECEIVED)
    assert touchpoint.event_id == "evt-42"


def test_stamp_copies_fields() -> None:
    incoming = TouchpointIn.model_validate(
        event(channel="web", properties={"sku": "A-1", "price": 9.5, "tags": ["x"]})
    )
    touchpoint = stamp(incoming, RECEIVED)

    assert touchpoint.customer_id == "cust-1"
    assert touchpoint.event == "Product Viewed"
    assert touchpoint.channel == "web"
    assert touchpoint.properties == {"sku": "A-1", "price": 9.5, "tags": ["x"]}
    assert touchpoint.received_at == RECEIVED
    assert touchpoint.v == 1


def test_occurred_at_defaults_to_received_at() -> None:
    touchpoint = stamp(TouchpointIn.model_validate(event()), RECEIVED)

    assert touchpoint.occurred_at == RECEIVED
    assert touchpoint.clamped is False


def test_occurred_at_in_the_past_is_kept() -> None:
    earlier = RECEIVED - timedelta(days=30)
    touchpoint = stamp(TouchpointIn.model_validate(event(occurred_at=_rfc3339(earlier))), RECEIVED)

    assert touchpoint.occurred_at == earlier
    assert touchpoint.clamped is False


def test_occurred_at_offset_is_normalised_to_utc() -> None:
    touchpoint = stamp(
        TouchpointIn.model_validate(event(occurred_at="2026-01-31T13:30:00+02:00")), RECEIVED
    )

    assert touchpoint.occurred_at == datetime(2026, 1, 31, 11, 30, tzinfo=UTC)
    assert touchpoint.occurred_at.utcoffset() == timedelta(0)


def test_more_than_24h_in_the_future_is_clamped_and_flagged() -> None:
    future = RECEIVED + MAX_FUTURE_SKEW + timedelta(seconds=1)
    touchpoint = stamp(TouchpointIn.model_validate(event(occurred_at=_rfc3339(future))), RECEIVED)

    assert touchpoint.clamped is True
    assert touchpoint.occurred_at == RECEIVED


def test_far_future_is_clamped() -> None:
    touchpoint = stamp(
        TouchpointIn.model_validate(event(occurred_at="2099-01-01T00:00:00Z")), RECEIVED
    )
    assert touchpoint.clamped is True
    assert touchpoint.occurred_at == RECEIVED


def test_exactly_24h_in_the_future_is_not_clamped() -> None:
    future = RECEIVED + timedelta(hours=24)
    touchpoint = stamp(TouchpointIn.model_validate(event(occurred_at=_rfc3339(future))), RECEIVED)

    assert touchpoint.clamped is False
    assert touchpoint.occurred_at == future


def test_future_within_skew_in_other_offset_is_not_clamped() -> None:
    # 2026-02-01T13:00+02:00 is 23h after RECEIVED.
    touchpoint = stamp(
        TouchpointIn.model_validate(event(occurred_at="2026-02-01T13:00:00+02:00")), RECEIVED
    )
    assert touchpoint.clamped is False
    assert touchpoint.occurred_at == RECEIVED + timedelta(hours=23)
