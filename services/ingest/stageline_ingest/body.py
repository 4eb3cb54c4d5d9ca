"""Reading a request body within a byte limit, gzip-compressed or not, and parsing its JSON."""

import re
import zlib
from typing import Any

import msgspec
from fastapi import Request

from stageline_shared.errors import ApiError


def _too_large(limit: int, what: str = "request body") -> ApiError:
    return ApiError(413, "body_too_large", f"{what} exceeds the limit of {limit} bytes")


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body; 413 as soon as it (or its declared length) passes `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "body_too_large", f"request body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip (one or more members) without ever holding more than `limit` + 1 bytes.

    A few kilobytes of gzip can expand to gigabytes, so the output is capped while decompressing
    rather than checked afterwards.
    """
    out = bytearray()
    rest = data
    while True:
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            out += decompressor.decompress(rest, limit + 1 - len(out))
            if len(out) > limit:
                raise _too_large(limit, "decompressed request body")
            # All input was consumed below the budget, so what flush() returns is a small residue.
            out += decompressor.flush()
        except zlib.error as exc:
            raise ApiError(400, "malformed_gzip", f"request body is not valid gzip: {exc}") from None
        if len(out) > limit:
            raise _too_large(limit, "decompressed request body")
        if not decompressor.eof:
            raise ApiError(400, "malformed_gzip", "request body is truncated gzip")
        rest = decompressor.unused_data
        # Concatenated members are valid gzip; trailing zero padding (some writers add it) is not
        # a member and is ignored, as gzip(1) does.
        if not rest.strip(b"\x00"):
            return bytes(out)


def decode_body(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body as JSON bytes: gunzipped when Content-Encoding says gzip, whatever Content-Type says."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        return data
    if encoding in ("gzip", "x-gzip"):
        return gunzip(data, limit)
    raise ApiError(415, "unsupported_encoding",
                   f"Content-Encoding {encoding[:40]!r} is not supported; send gzip or identity")


_AT_BYTE = re.compile(r"\(byte (\d+)\)")
# A \uD800 to \uDBFF escape not followed by a \uDC00 to \uDFFF one, or one of those not preceded by the
# first kind: half a UTF-16 pair, which stands for no character.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _json_problem(body: bytes, exc: Exception) -> str:
    """What is wrong with a body msgspec could not decode, in our words (msgspec's own change
    between its releases): not UTF-8, empty, or not JSON (at the byte msgspec names, if any)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"request body is not valid UTF-8 (at byte {bad.start})"
    if not body.strip():
        return "request body is not valid JSON: it is empty"
    lone = _LONE_SURROGATE.search(body)
    if lone:
        return (f"request body is not valid JSON: a lone surrogate escape "
                f"{lone.group().decode()} (at byte {lone.start()}) stands for no character")
    at = _AT_BYTE.search(str(exc))
    return "request body is not valid JSON" + (f" (at byte {at.group(1)})" if at else "")


def parse_json(body: bytes) -> Any:
    """The body's JSON document, decoded as the hot path decodes it (integers stay exact); a 400
    naming the problem when it is not JSON (or not UTF-8) or nests too deeply to decode."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec < 0.23: UnicodeDecodeError
        raise ApiError(400, "malformed_json", _json_problem(body, exc)) from None
    except RecursionError:
        raise ApiError(400, "malformed_json", "request body is nested too deeply") from None
