"""What happens after a delivery attempt: delivered, retried later, or given up. Pure."""

from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal

Verdict = Literal["delivered", "retry", "gone", "given_up"]
RETRY_AFTER_CAP_S = 86400.0  # a receiver may ask for a day's pause, not more


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    retry_in_s: float | None = None  # for "retry"


def retry_after_s(value: str | None, now: datetime) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date); None if absent or
    unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def decide(status: int | None, attempts: int, schedule: tuple[float, ...],
           retry_after: float | None = None) -> Outcome:
    """The outcome of attempt number `attempts` (1 = the first) that got HTTP `status` (None:
    no answer: refused, timed out, reset).

    2xx is delivered and 410 Gone disables the endpoint; anything else is retried after the
    schedule's wait for this attempt, or the receiver's Retry-After if longer (up to a day),
    until the schedule is spent.
    """
    if status is not None and 200 <= status < 300:
        return Outcome("delivered")
    if status == 410:
        return Outcome("gone")
    if attempts > len(schedule):
        return Outcome("given_up")
    wait = schedule[attempts - 1]
    if retry_after is not None:
        wait = max(wait, min(retry_after, RETRY_AFTER_CAP_S))
    return Outcome("retry", wait)
