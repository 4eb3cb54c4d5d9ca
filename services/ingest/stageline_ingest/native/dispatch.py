"""POST /v1/events dispatched straight to its endpoint, before FastAPI's routing.

A pure ASGI middleware that calls the route's own endpoint function with the same key check and
the same error responses, skipping routing, dependency solving and the request/response
wrappers (an eighth of ingest's CPU per event). It sits inside the request metric
and CORS middlewares, so those apply as to any route; every other path or method, and anything
but an ApiError, goes on as before (the route stays declared for OpenAPI).
"""

from collections.abc import Sequence

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from stageline_ingest.auth import require_write_key
from stageline_ingest.native.routes import post_events
from stageline_shared.errors import ApiError

PATH = "/v1/events"


class EventsDispatch:
    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # as the router would record it: the request metric's label
        request = Request(scope, receive)
        try:
            response = await post_events(request, await require_write_key(request))
        except ApiError as exc:
            response = exc.response()
        await response(scope, receive, send)


def events_route(routes: Sequence[BaseRoute]) -> APIRoute:
    """The app's POST /v1/events route."""
    return next(route for route in routes
                if isinstance(route, APIRoute) and route.path == PATH and "POST" in (route.methods or ()))
