"""One JSON error shape for every HTTP service: {"code": ..., "message": ...} (Segment's)."""

import logging
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from stageline_shared import database

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error the client can act on; rendered as JSON with its status."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> Response:
        """The JSON error answer: {"code", "message", ...extra} with the status and headers."""
        return error_response(self.status, self.code, self.message, self.headers, **self.extra)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    return json_response({"code": code, "message": message, **extra}, status, headers)


def database_unavailable() -> ApiError:
    """The 503 for a request the database could not serve: nothing was done, retry later."""
    return ApiError(503, "database_unavailable", "the database is unavailable; retry later",
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"])
            parts.append(f"{field}: {error['msg']}")
        return error_response(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    async def _database(request: Request, exc: Exception) -> Response:
        if not database.unavailable(exc):
            raise exc  # a failing query is a bug: a 500, logged with its traceback
        log.warning("answered 503 to %s %s: database unavailable (%r)", request.method,
                    request.url.path, exc)
        return database_unavailable().response()

    for kind in (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, _database)
