"""What a shop's browser talks to in tests/integration/test_browser_sdks.py, on loopback only.

- `shop_site`: the shop, another origin than ingest: its pages (tests/sdk/browser/*.html), the
  SDKs' published bundles from node_modules, and the source config RudderStack's SDK would fetch
  from its control plane.
- `ingest_proxy`: a transparent proxy in front of ingest that answers the first event request
  with a 503 or a 429, as an overloaded ingest does, so the browser has to retry it. It records
  every exchange (preflights included) for the test to read.

Both are uvicorn servers in the test's event loop, each on a socket bound to a free port.
"""

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

BROWSER_DIR = Path(__file__).parents[1] / "sdk" / "browser"
NODE_MODULES = BROWSER_DIR / "node_modules"
BUNDLES = {  # the published UMD bundles, served as they are
    "segment": NODE_MODULES / "@segment" / "analytics-next" / "dist" / "umd",
    "rudderstack": NODE_MODULES / "@rudderstack" / "analytics-js" / "dist" / "npm" / "modern" / "bundled" / "umd",
}
# Ingest's event routes (both spellings of the Segment ones); anything else passes untouched.
EVENT_PATHS = {f"/v1/{p}" for p in ("track", "identify", "page", "screen", "group", "alias", "batch",
                                    "t", "i", "p", "s", "g", "a", "b")}
# Hop-by-hop and framing headers, which the proxy's own HTTP stacks set.
_NOT_FORWARDED = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}


@contextlib.asynccontextmanager
async def _serve(app: Starlette, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """Serve `app` on a free port of loopback; yields the port."""
    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.05)
        yield int(sock.getsockname()[1])
    finally:
        server.should_exit = True
        await task
        sock.close()


def rudderstack_source_config(write_key: str) -> dict[str, Any]:
    """The smallest source config RudderStack's SDK accepts: no device-mode destinations, and no
    error or metrics reporting (which would post to the data plane's /rsaMetrics)."""
    return {"isHosted": False, "source": {
        "id": "stageline-shop", "name": "Stageline test shop", "writeKey": write_key, "enabled": True,
        "workspaceId": "stageline", "destinations": [],
        "config": {"statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}},
    }}


@dataclass
class Site:
    origin: str
    settings: dict[str, Any] = field(default_factory=dict)  # the page's window.SHOP, set by the test
    config_requests: list[dict[str, str]] = field(default_factory=list)  # sourceConfig's query and auth


@contextlib.asynccontextmanager
async def shop_site() -> AsyncIterator[Site]:
    """The shop on its own origin, http://localhost:PORT; its pages read `settings`, which the test
    fills in before opening one, from /shop-config.js."""
    site = Site(origin="")

    async def shop_config(request: Request) -> Response:
        return Response(f"window.SHOP = {json.dumps(site.settings)};\n", media_type="text/javascript")

    async def source_config(request: Request) -> Response:
        site.config_requests.append({**request.query_params,
                                     "authorization": request.headers.get("authorization", "")})
        return JSONResponse(rudderstack_source_config(request.query_params.get("writeKey", "")))

    app = Starlette(routes=[
        Route("/shop-config.js", shop_config),
        # configUrl: the SDK asks for <configUrl>/sourceConfig/?p=…&v=…&writeKey=…
        Route("/rudderstack-config/sourceConfig/", source_config),
        *(Mount(f"/vendor/{name}", StaticFiles(directory=path)) for name, path in BUNDLES.items()),
        Mount("/", StaticFiles(directory=BROWSER_DIR, html=True)),
    ])
    async with _serve(app) as port:
        # localhost, not 127.0.0.1: a host name, as a shop has, and another origin than ingest's.
        site.origin = f"http://localhost:{port}"
        yield site


@dataclass
class Failure:
    """How the proxy answers the first event request: `status` with Retry-After. A 503 after the
    events reached ingest (`stored`, as a broker timeout after a partial write), a 429 before."""

    status: int
    retry_after_s: int
    stored: bool


@dataclass
class Exchange:
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    headers: dict[str, str]
    status: int
    message_ids: list[str]  # the body's messageIds, in order (none for a preflight)
    forced: bool  # answered with the Failure instead of ingest's answer


@dataclass
class Proxy:
    url: str
    failed: bool = False  # whether the failure was answered
    exchanges: list[Exchange] = field(default_factory=list)

    def posts(self) -> list[Exchange]:
        """Event POSTs in arrival order (`exchanges` is in answer order: answers overtake)."""
        posts = [e for e in self.exchanges if e.method == "POST" and e.path in EVENT_PATHS]
        return sorted(posts, key=lambda e: e.at)


def _message_ids(body: bytes) -> list[str]:
    try:
        document = json.loads(body)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    batch = document.get("batch")
    messages = batch if isinstance(batch, list) else [document]
    return [str(m.get("messageId")) for m in messages if isinstance(m, dict)]


@contextlib.asynccontextmanager
async def ingest_proxy(ingest: str, failure: Failure) -> AsyncIterator[Proxy]:
    """Forwards everything to `ingest`; the first event POST gets `failure` instead."""
    proxy = Proxy(url="")
    async with httpx.AsyncClient(base_url=ingest, timeout=30) as client:

        async def forward(request: Request) -> Response:
            arrived = time.monotonic()
            body = await request.body()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_FORWARDED}
            # Decided on arrival: requests sent at once must not all be the first.
            force = request.method == "POST" and request.url.path in EVENT_PATHS and not proxy.failed
            proxy.failed = proxy.failed or force
            # A forced answer still goes through ingest, so that its CORS headers are ingest's own:
            # with the body when the events are to be stored, else with an empty one (refused).
            sent = body if not force or failure.stored else b"{}"
            answer = await client.request(request.method, request.url.path, params=request.query_params,
                                          content=sent, headers=headers)
            status = failure.status if force else answer.status_code
            reply_headers = {k: v for k, v in answer.headers.items() if k.lower() not in _NOT_FORWARDED}
            content = answer.content
            if force:
                reply_headers["retry-after"] = str(failure.retry_after_s)
                code = "broker_unavailable" if failure.status == 503 else "rate_limited"
                content = json.dumps({"code": code, "message": "forced by the test's proxy"}).encode()
                reply_headers["content-type"] = "application/json"
            proxy.exchanges.append(Exchange(arrived, request.method, request.url.path, dict(request.headers),
                                            status, _message_ids(body), force))
            return Response(content, status_code=status, headers=reply_headers)

        app = Starlette(routes=[Route("/{path:path}", forward, methods=["GET", "POST", "OPTIONS"])])
        async with _serve(app) as port:
            proxy.url = f"http://127.0.0.1:{port}"
            yield proxy
