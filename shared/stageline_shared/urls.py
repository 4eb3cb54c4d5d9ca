"""Refuse, before routing, a URL that is not UTF-8 once percent-decoded.

Servers decode such a URL with replacement characters (uvicorn turns `%ff` into U+FFFD), so a
path or query parameter would name something the client never sent: `DELETE /v1/customers/%ff`
would erase a customer "\ufffd". Every service answers 400 `malformed_url` instead.
"""

from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Receive, Scope, Send

from stageline_shared.errors import error_docs, error_response

MALFORMED_URL = "The path or query string is not UTF-8 once percent-decoded"
# For FastAPI(responses=...): every route of a service may answer it.
URL_ERRORS = error_docs({400: MALFORMED_URL})


def undecodable_at(raw: bytes) -> int | None:
    """The position (in the percent-decoded bytes) where `raw` stops being UTF-8, else None."""
    if b"%" not in raw and raw.isascii():
        return None  # nearly every request: nothing to decode
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None


class Utf8Urls:
    """Pure ASGI middleware: 400 `malformed_url` for a path or query string that is not UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for part, raw in (("path", scope.get("raw_path")), ("query string", scope.get("query_string"))):
                at = undecodable_at(raw) if raw else None
                if at is not None:
                    response = error_response(
                        400, "malformed_url", f"the URL's {part} is not UTF-8 once percent-decoded "
                                              f"(at byte {at})")
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
