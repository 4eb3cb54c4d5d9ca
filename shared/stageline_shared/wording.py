"""Our own words for validation errors.

Clients read these in 4xx answers, so they are part of the API: each is chosen here from
pydantic's error *type* (a stable code), never its message text, so a library upgrade cannot
change what a client reads. A type not listed gets a plain "is not valid".
"""

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

_FIXED = {
    "missing": "required",
    "extra_forbidden": "unknown field",
    "string_type": "must be a string",
    "string_unicode": "must be valid Unicode (no lone surrogates)",
    "dict_type": "must be a JSON object",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "list_type": "must be a JSON array",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "datetime_type": "must be an RFC 3339 timestamp",
    "datetime_parsing": "must be an RFC 3339 timestamp",
    "datetime_from_date_parsing": "must be an RFC 3339 timestamp",
    "timezone_aware": "needs a UTC offset, e.g. 2026-01-31T12:00:00Z",
    "json_invalid": "is not valid JSON",
    "json_type": "must be JSON",
    "recursion_loop": "nests too deeply",
}


def _plural(count: Any, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_error(error: ErrorDetails) -> str:
    """One error's problem in our words, without its field."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in ("value_error", "assertion_error"):
        return str(ctx.get("error", "is not valid"))  # raised by our own validators, our words
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else \
            f"must be at least {_plural(ctx.get('min_length'), 'character')}"
    if kind == "string_too_long":
        return f"must be at most {_plural(ctx.get('max_length'), 'character')}"
    if kind == "too_short":
        return f"must have at least {_plural(ctx.get('min_length'), 'item')}"
    if kind == "too_long":
        return f"must have at most {_plural(ctx.get('max_length'), 'item')}"
    if kind == "string_pattern_mismatch":
        return f"must match the pattern {ctx.get('pattern')}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}"
    bounds = {"greater_than": "greater than", "greater_than_equal": "at least",
              "less_than": "less than", "less_than_equal": "at most"}
    if kind in bounds:
        limit = next(iter(ctx.values()), "the limit")
        return f"must be {bounds[kind]} {limit}"
    return "is not valid"


def field_name(loc: Sequence[int | str], default: str = "event") -> str:
    """A location as a dotted field path (`properties.a.0`), or `default` for the whole value."""
    return ".".join(str(part) for part in loc) or default


def describe_validation_error(exc: ValidationError, default_field: str = "event") -> str:
    """All of a validation error's problems on one line, each naming its field."""
    return "; ".join(
        f"{field_name(error['loc'], default_field)}: {describe_error(error)}"
        for error in exc.errors(include_url=False, include_input=False)
    )
