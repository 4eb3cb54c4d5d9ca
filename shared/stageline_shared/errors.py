"""One JSON error shape for every HTTP service: {"code": ..., "message": ...} (Segment's)."""

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from stageline_shared import postgres_errors
from stageline_shared.wording import describe_error, field_name

log = logging.getLogger(__name__)
DATABASE_RETRY_AFTER_S = 5


# FastAPI's own answer to a body it could not read (not UTF-8, say): named like ingest's.
_UNPARSABLE_BODY = "There was an error parsing the body"


class ErrorBody(BaseModel):
    """The body of every error answer; some errors add fields (`rejected`, say)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="What went wrong, for programs: malformed_json, invalid_key, …")
    message: str = Field(description="What went wrong, for people: names the field or limit")


def error_docs(described: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses: each documented with its meaning and ErrorBody."""
    return {status: {"model": ErrorBody, "description": text} for status, text in described.items()}


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


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> set[str]:
    """Every method some route takes at this path (Starlette's 405 names the first route's only).

    Each method is tried against every top-level route, included routers as a whole, through
    the routes' own `matches`."""
    routes = request.app.router.routes
    return {method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = [f"{field_name(error['loc'], 'request')}: {describe_error(error)}" for error in exc.errors()]
        return error_response(422, "invalid_request", "; ".join(parts))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and exc.detail == _UNPARSABLE_BODY:
            return error_response(400, "malformed_json", "request body is not valid JSON (UTF-8)")
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(sorted(allowed_methods(request)))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers)

    async def _database(request: Request, exc: Exception) -> Response:
        if not postgres_errors.unavailable(exc):
            raise exc  # a failing query is a bug: a 500, logged with its traceback
        log.warning("answered 503 to %s %s: database unavailable (%r)", request.method,
                    request.url.path, exc)
        return database_unavailable().response()

    for kind in (OSError, SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(kind, _database)
