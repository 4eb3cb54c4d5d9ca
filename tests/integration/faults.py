"""Faults for the tests to inject: a TCP proxy that can cut a service off, and a wait for a
Postgres transaction of a given process, to kill it inside one."""

import asyncio
import logging
import threading
from collections.abc import Coroutine
from typing import Any

import asyncpg

from tests.integration.support import plain_url

log = logging.getLogger(__name__)


class TcpProxy:
    """Forwards 127.0.0.1:`port` to 127.0.0.1:`target`. cut() drops every connection and refuses
    new ones, as a stopped broker does (without losing its data); restore() listens again.

    It runs its own event loop in a thread: the tests start service processes with blocking
    calls, which would stall a proxy in their loop."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"proxy:{port}", daemon=True)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    def start(self) -> "TcpProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        self._call(self._cut())
        log.info("proxy :%d cut from :%d", self.port, self.target)

    def restore(self) -> None:
        self._call(self._listen())
        log.info("proxy :%d forwarding to :%d again", self.port, self.target)

    def close(self) -> None:
        self._call(self._cut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, upstream_writer}
        try:
            await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))
        finally:
            self._open -= {writer, upstream_writer}

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.transport.abort()


async def wait_inside_transaction(database_url: str, pid: int, timeout_s: float = 30) -> None:
    """Until the stager with this pid has a transaction open that has written (mid-batch)."""
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        async with asyncio.timeout(timeout_s):
            while not await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 "
                "AND backend_xid IS NOT NULL", f"stageline-stager[{pid}]"
            ):
                await asyncio.sleep(0.002)
    finally:
        await conn.close()
