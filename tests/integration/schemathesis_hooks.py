"""Schemathesis hooks for test_openapi_contract.py: hostile path and query values, mixed in.

Schemathesis draws parameters from each document's schemas and rarely strays far from them: in
25 examples a customer id with a NUL, which made Postgres fail the request with a 500, never
came up. These hooks make about half of the generated cases carry hostile values instead:
control characters and NULs, blank and over-long strings, cursors that are not ours, numbers
that are not limits, and parameters given twice. Loaded with SCHEMATHESIS_HOOKS=<this file>.

Only text can be generated here (schemathesis percent-encodes path values as UTF-8), so lone
surrogates and invalid UTF-8 are left to test_bad_params.py, which writes the escapes itself.
"""

import base64
import json
from typing import Any

import schemathesis
from hypothesis import strategies as st

CONTROL = st.characters(codec="utf-8", categories=["Cc"])
TEXT = st.text(max_size=20)

# Text that no id or name may be; blank, control characters or over-long.
HOSTILE_TEXT = st.one_of(
    st.sampled_from(["\x00", "a\x00b", "\x01", "\x1f", "\x7f", "a\nb", "\t", " ", "\u00a0\u2003",
                     "a" * 256, "a" * 10_000]),
    st.tuples(TEXT, CONTROL, TEXT).map("".join),
    st.text(st.sampled_from(" \t\u00a0\u2003\u3000"), min_size=1, max_size=4),
    st.text(min_size=256, max_size=600),
)
HOSTILE_LIMIT = st.one_of(
    st.sampled_from(["-1", "0", "501", "1e9", "1.5", "", "NaN", "inf", "0x10", "9" * 5000, "\u0661"]),
    st.integers().map(str),
    HOSTILE_TEXT,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
                    max_leaves=6)
POSITION = st.lists(st.one_of(st.text(), st.integers(), st.floats(), st.none(),
                              st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())),
                    min_size=3, max_size=3)
HOSTILE_CURSOR = st.one_of(
    HOSTILE_TEXT,
    st.binary(max_size=64).map(_b64),  # base64 of junk
    JSON.map(lambda value: _b64(json.dumps(value).encode())),  # of JSON that is not a position
    POSITION.map(lambda value: _b64(json.dumps(value).encode())),  # of positions not ours
)
BY_NAME = {"limit": HOSTILE_LIMIT, "cursor": HOSTILE_CURSOR}


def _hostile(name: str) -> st.SearchStrategy[Any]:
    one = BY_NAME.get(name, HOSTILE_TEXT)
    return st.one_of(one, st.lists(one, min_size=2, max_size=2))  # a list is sent repeated


@schemathesis.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> Any:
    if not path_parameters:
        return st.just(path_parameters)
    hostile = st.fixed_dictionaries({name: HOSTILE_TEXT for name in path_parameters})
    return st.one_of(st.just(path_parameters), hostile)


@schemathesis.hook
def flatmap_query(context: Any, query: dict[str, Any] | None) -> Any:
    names = [parameter.name for parameter in context.operation.query] if context.operation else []
    # A route without query parameters gets an unknown one, which it must ignore.
    names = names or ["x-hostile"]
    hostile = st.fixed_dictionaries({}, optional={name: _hostile(name) for name in names}).filter(bool)
    return st.one_of(st.just(query), hostile.map(lambda values: {**(query or {}), **values}))
