"""Reading the times in a Segment message the way Segment's and RudderStack's servers read them.

Both take a time without an offset as UTC (Segment's spec: its times are UTC; RudderStack's
lenient parser reads it in the server's zone, UTC) and keep a message whose time they cannot read,
as if it had none (RudderStack's processor falls back; Segment's API did so for analytics-swift
1.0's `…27.029:Z`, segmentio/analytics-swift#75). Apps have sent times in the device's locale
(`10:06:21 am+0400`, artsy/eigen#957): losing such an event would cost more than losing its time.
"""

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

MAX_TIME_LENGTH = 64  # what a readable time can take; longer is not parsed at all

# ISO 8601 as SDKs and people have written it where Python's parser refuses it: a month, day or
# hour of one digit (Segment's own batch example has "2015-2-02T00:30:12.984Z") and a stray colon
# before the zone (analytics-swift 1.0's "2021-10-16T16:00:27.029:Z").
_LOOSE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})[Tt ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r":?(?:([Zz])|([+-])(\d{2}):?(\d{2})?)?"
)


def _loose(text: str) -> datetime | None:
    match = _LOOSE.fullmatch(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, zulu, sign, zone_h, zone_m = match.groups()
    try:
        zone = None
        if zulu:
            zone = UTC
        elif sign:
            offset = timedelta(hours=int(zone_h), minutes=int(zone_m or 0))
            zone = timezone(-offset if sign == "-" else offset)
        return datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                        int((fraction or "0").ljust(6, "0")[:6]), tzinfo=zone)
    except ValueError:  # a 13th month, an offset of 24 h or more, …
        return None


def read_time(value: Any) -> datetime | None:
    """A Segment time in UTC, or None when there is none to read (then it counts as absent)."""
    if not isinstance(value, str) or len(value) > MAX_TIME_LENGTH:
        return None
    try:
        moment: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        moment = _loose(value)
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is before the first UTC moment Python has
        return None
