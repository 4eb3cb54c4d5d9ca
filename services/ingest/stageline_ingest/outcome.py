"""What reading one request's events gives, whichever protocol it speaks."""

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass
class Intake(Generic[T]):
    """The outcome of validating one request: what was accepted (touchpoints or wire records)."""

    accepted: list[T] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
