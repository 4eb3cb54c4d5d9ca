"""What the contract requires beyond types and lengths: printable ids, storable values (no NUL,
bounded nesting), RFC 3339 timestamps with an offset."""

import re
from datetime import UTC, datetime
from typing import Any

from stageline_shared.contract.limits import MAX_DEPTH

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
NUL_ESCAPED = b"\\u0000"  # how JSON writes U+0000 (msgspec, orjson), in a key or a value


def require_printable(value: str) -> str:
    """Ids and names travel in URLs and logs: no control characters, no blank values."""
    control = CONTROL_CHARACTERS.search(value)
    if control:
        raise ValueError(f"contains a control character (U+{ord(control.group()):04X})")
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def nests_deeper(value: dict[str, Any] | list[Any], levels: int = MAX_DEPTH) -> bool:
    """Do objects and arrays nest more than `levels` deep in `value` (itself the first level)?"""
    if levels <= 0:
        return True
    for item in value.values() if type(value) is dict else value:
        if (type(item) is dict or type(item) is list) and nests_deeper(item, levels - 1):
            return True
    return False


def require_storable(value: Any, path: str = "properties") -> None:
    """Refuse what cannot be stored and read back: U+0000, which Postgres text and jsonb cannot
    hold, and objects and arrays nested more than MAX_DEPTH levels deep."""
    if isinstance(value, dict | list) and nests_deeper(value):
        raise too_deep(path)
    reject_nul(value, path)


def too_deep(path: str) -> ValueError:
    return ValueError(f"{path} nests objects and arrays more than {MAX_DEPTH} levels deep")


def reject_nul(value: Any, path: str = "properties") -> None:
    """Postgres text and jsonb cannot hold U+0000."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path} contains a NUL character (U+0000)")
    elif isinstance(value, dict):
        for key, item in value.items():
            reject_nul(key, f"{path} key")
            reject_nul(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            reject_nul(item, f"{path}[{index}]")


def parse_timestamp(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; an offset (or Z) is required."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an RFC 3339 timestamp: {value[:64]!r}") from None
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a UTC offset, e.g. 2026-01-31T12:00:00Z")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp is out of range: {value[:64]!r}") from None
