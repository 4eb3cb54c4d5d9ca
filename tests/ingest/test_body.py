"""Request bodies: gzip decoded up to a size limit; malformed gzip and unknown encodings refused (no I/O)."""

import gzip
import zlib

import pytest

from stageline_ingest.body import decode_body, gunzip
from stageline_ingest.segment.intake import MAX_REQUEST_BYTES
from stageline_shared.errors import ApiError


def test_gunzip_round_trip_and_concatenated_members() -> None:
    assert gunzip(gzip.compress(b'{"a": 1}'), 100) == b'{"a": 1}'
    assert gunzip(gzip.compress(b"ab") + gzip.compress(b"cd"), 100) == b"abcd"
    assert gunzip(gzip.compress(b"ab") + b"\x00" * 8, 100) == b"ab"
    assert decode_body(b"plain", None, 10) == b"plain"
    assert decode_body(gzip.compress(b"z"), "GZIP", 10) == b"z"


def test_gzip_bomb_stops_at_the_limit() -> None:
    bomb = gzip.compress(b"\0" * (50 * 1024 * 1024))  # ~50 KB that inflates to 50 MB
    assert len(bomb) < MAX_REQUEST_BYTES
    with pytest.raises(ApiError) as info:
        gunzip(bomb, MAX_REQUEST_BYTES)
    assert (info.value.status, info.value.code) == (413, "body_too_large")
    with pytest.raises(ApiError):
        gunzip(gzip.compress(b"x" * 60) * 2, 100)  # over the limit only across members


def test_exactly_the_limit_decompresses() -> None:
    assert len(gunzip(gzip.compress(b"x" * 1000), 1000)) == 1000


# mtime=0: the header holds no clock, so every xdist worker collects the same test ids.
@pytest.mark.parametrize(
    "data",
    [b"", b"not gzip at all", gzip.compress(b"x" * 100, mtime=0)[:-6], zlib.compress(b"deflate, not gzip"),
     gzip.compress(b"ok", mtime=0) + b"trailing garbage"],
)
def test_malformed_gzip_is_a_400(data: bytes) -> None:
    with pytest.raises(ApiError) as info:
        gunzip(data, 1000)
    assert (info.value.status, info.value.code) == (400, "malformed_gzip")


def test_unknown_content_encoding_is_refused() -> None:
    with pytest.raises(ApiError) as info:
        decode_body(b"x", "br", 10)
    assert (info.value.status, info.value.code) == (415, "unsupported_encoding")
