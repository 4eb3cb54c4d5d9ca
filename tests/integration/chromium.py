"""Debian's headless Chromium (`/usr/bin/chromium`), driven over the DevTools protocol.

One browser process per `chromium()` block, with a fresh profile, so nothing an SDK stored
(cookies, localStorage queues) leaks from one test into the next. The page records what the tests
read: console messages, uncaught exceptions and every network request with its outcome.
"""

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

# The machine has no internet for the browser: these keep Chromium from reaching for it.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--remote-debugging-port=0"]


def chromium_path() -> str | None:
    return shutil.which("chromium")


class CdpError(Exception):
    """A DevTools command the browser refused, or a script that threw."""


@dataclass
class Request:
    """One network request the page made, as the DevTools protocol reported it."""

    url: str
    method: str
    status: int | None = None
    failure: str | None = None  # net::ERR_…, with the CORS reason when there is one


@dataclass
class Page:
    """One tab, attached through the browser's connection (flat sessions)."""

    browser: "Browser"
    session_id: str
    console: list[str] = field(default_factory=list)
    requests: dict[str, Request] = field(default_factory=dict)

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, params, self.session_id)

    async def goto(self, url: str) -> None:
        answer = await self.send("Page.navigate", url=url)
        if answer.get("errorText"):
            raise CdpError(f"{url}: {answer['errorText']}")

    async def evaluate(self, expression: str) -> Any:
        """The expression's value (a promise is awaited), or CdpError with the script's error."""
        answer = await self.send("Runtime.evaluate", expression=expression, awaitPromise=True,
                                 returnByValue=True)
        if "exceptionDetails" in answer:
            details = answer["exceptionDetails"]
            raise CdpError(details.get("exception", {}).get("description") or details.get("text"))
        return answer["result"].get("value")

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
            self.console.append(f"{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append(f"exception: {details.get('exception', {}).get('description')}")
        elif method == "Network.requestWillBeSent":
            request = params["request"]
            self.requests[params["requestId"]] = Request(request["url"], request["method"])
        elif method == "Network.responseReceived" and params["requestId"] in self.requests:
            self.requests[params["requestId"]].status = params["response"]["status"]
        elif method == "Network.loadingFailed" and params["requestId"] in self.requests:
            cors = params.get("corsErrorStatus", {}).get("corsError")
            self.requests[params["requestId"]].failure = params["errorText"] + (f" ({cors})" if cors else "")

    def report(self) -> str:
        """What the page said and fetched, for an assertion's message."""
        lines = [*self.console, *(f"{r.method} {r.url} -> {r.status or r.failure}" for r in self.requests.values())]
        return "\n".join(lines)


class Browser:
    """A DevTools connection: commands answered by id, events dispatched to their page."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._pages: dict[str, Page] = {}
        self._reader = asyncio.create_task(self._read())

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session_id: str | None = None) -> dict[str, Any]:
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if session_id:
            message["sessionId"] = session_id
        answer = self._waiting[command_id] = asyncio.get_running_loop().create_future()
        await self._connection.send(json.dumps(message))
        async with asyncio.timeout(60):
            return await answer

    async def new_page(self) -> Page:
        """A blank tab with console, exception and network reporting on."""
        target = await self.send("Target.createTarget", {"url": "about:blank"})
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        page = self._pages[attached["sessionId"]] = Page(self, attached["sessionId"])
        for domain in ("Runtime", "Network", "Page"):
            await page.send(f"{domain}.enable")
        return page

    async def _read(self) -> None:
        async for raw in self._connection:
            message = json.loads(raw)
            if "id" in message:
                answer = self._waiting.pop(message["id"])
                if "error" in message:
                    answer.set_exception(CdpError(f"{message['error'].get('message')}"))
                else:
                    answer.set_result(message.get("result", {}))
            elif message.get("sessionId") in self._pages:
                self._pages[message["sessionId"]].on_event(message["method"], message.get("params", {}))
        for answer in self._waiting.values():  # the browser went away mid-command
            answer.set_exception(CdpError("the browser closed its DevTools connection"))

    async def close(self) -> None:
        await self._connection.close()
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._reader


@contextlib.asynccontextmanager
async def chromium(profile: Path) -> AsyncIterator[Browser]:
    """Headless Chromium with a fresh profile in `profile` (a new directory in an existing one; the
    log beside it), stopped (and reaped) at the end."""
    executable = chromium_path()
    if executable is None:
        raise CdpError("chromium is not installed (apt-get install chromium; `make system-deps` does)")
    with (profile.parent / f"{profile.name}.log").open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            executable, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )
    try:
        # With port 0 Chromium picks a free port and writes it, and the browser's path, here.
        active = profile / "DevToolsActivePort"
        async with asyncio.timeout(60):
            while not (active.exists() and len(active.read_text().split()) == 2):
                if process.returncode is not None:
                    raise CdpError(f"chromium exited with {process.returncode}; see {log.name}")
                await asyncio.sleep(0.1)
        port, path = active.read_text().split()
        connection = await websockets.connect(f"ws://127.0.0.1:{port}{path}", max_size=None)
        browser = Browser(connection)
        try:
            yield browser
        finally:
            await browser.close()
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                async with asyncio.timeout(10):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
