"""What follows an attempt: delivered, retried on the schedule or after Retry-After, gone, given up."""

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from stageline_dispatcher.schedule import decide, retry_after_s
from stageline_dispatcher.settings import STANDARD_SCHEDULE, DispatcherSettings

NOW = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert decide(status, 1, STANDARD_SCHEDULE).verdict == "delivered"


def test_410_is_gone_on_any_attempt() -> None:
    assert decide(410, 1, STANDARD_SCHEDULE).verdict == "gone"
    assert decide(410, 10, STANDARD_SCHEDULE).verdict == "gone"


@pytest.mark.parametrize("status", [None, 301, 400, 404, 429, 500, 503])
def test_anything_else_is_retried_on_the_standard_schedule(status: int | None) -> None:
    waits = [decide(status, attempt, STANDARD_SCHEDULE).retry_in_s for attempt in range(1, 10)]
    assert waits == [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400]
    assert decide(status, 10, STANDARD_SCHEDULE).verdict == "given_up"


def test_retry_after_lengthens_a_wait_up_to_a_day() -> None:
    assert decide(503, 1, STANDARD_SCHEDULE, retry_after=60).retry_in_s == 60
    assert decide(503, 3, STANDARD_SCHEDULE, retry_after=60).retry_in_s == 1800
    assert decide(503, 1, STANDARD_SCHEDULE, retry_after=10**9).retry_in_s == 86400
    assert decide(503, 1, (0.2, 0.4), retry_after=2).retry_in_s == 2


def test_retry_after_as_seconds_or_an_http_date() -> None:
    assert retry_after_s("120", NOW) == 120
    assert retry_after_s(format_datetime(NOW + timedelta(seconds=90), usegmt=True), NOW) == 90
    assert retry_after_s(format_datetime(NOW - timedelta(seconds=90), usegmt=True), NOW) == 0
    for unreadable in (None, "", "soon", "-5", "1.5"):
        assert retry_after_s(unreadable, NOW) is None


def test_the_schedule_is_a_comma_separated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STAGELINE_WEBHOOK_RETRY_SCHEDULE_S", "0.2, 0.5,1")
    assert DispatcherSettings().webhook_retry_schedule_s == (0.2, 0.5, 1.0)
    monkeypatch.delenv("STAGELINE_WEBHOOK_RETRY_SCHEDULE_S")
    assert DispatcherSettings().webhook_retry_schedule_s == STANDARD_SCHEDULE
