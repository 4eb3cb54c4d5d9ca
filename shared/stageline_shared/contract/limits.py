"""The contract's numbers: change one here, and every model and check that uses it follows."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
from pydantic import Field


@dataclass(frozen=True)
class Length:
    """A string's length bounds (in characters), stated once for both validation libraries."""

    min: int
    max: int

    def field(self) -> Any:
        """The bounds as pydantic `Annotated` metadata."""
        return Field(min_length=self.min, max_length=self.max)

    def meta(self) -> msgspec.Meta:
        """The bounds as msgspec `Annotated` metadata."""
        return msgspec.Meta(min_length=self.min, max_length=self.max)


EVENT_ID = Length(1, 128)
CUSTOMER_ID = Length(1, 255)  # also every other id: user, anonymous, previous, group
EVENT_NAME = Length(1, 200)
CHANNEL = Length(1, 50)
TIME_TEXT = Length(0, 64)  # an occurred_at as sent, before it is parsed

MAX_EVENT_BYTES = 32 * 1024  # one record value on the topic
MAX_REQUEST_BYTES = 512 * 1024
MAX_BATCH_EVENTS = 1000
MAX_FUTURE_SKEW = timedelta(hours=24)  # later occurred_at values are clamped to received_at
MAX_DEPTH = 32  # how deep objects and arrays may nest in properties and context
WIRE_VERSION = 1
