"""A steady load through ingest, as a careful client sends it, for the fault tests.

Events go out at a fixed rate in small batches from several lanes; each customer belongs to one
lane, so its events are sent in order, with increasing times (what tests/integration/oracle.py
needs). A batch is resent, with the same event ids, until ingest acknowledges it (a 503, a 429,
a refused or dropped connection all mean "not stored, retry"), so every event sent is in the end
acknowledged, and `sent` lists each one once, in the order its lane sent it.
"""

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.integration.support import EVENT_NAMES

log = logging.getLogger(__name__)


class SteadyLoad:
    """`rate` events a second to `targets` (ingest base URLs; a lane moves to the next one when
    its connection fails) until stop(); then every batch in flight is resent until acknowledged."""

    def __init__(
        self, targets: Sequence[str], write_key: str, *, rate: float = 300, customers: int = 200,
        batch: int = 10, lanes: int = 6, seed: int = 0, prefix: str = "load",
    ) -> None:
        self.targets = list(targets)
        self.write_key = write_key
        self.batch = batch
        self.lanes = lanes
        self.interval_s = batch * lanes / rate  # each lane sends a batch this often
        self.customers = [f"{prefix}-c{index:04d}" for index in range(customers)]
        self.sent: list[dict[str, Any]] = []  # acknowledged, in each lane's order
        self.answers: Counter[str] = Counter()  # "202", "503", "ConnectError", …
        self._rng = random.Random(seed)
        self._prefix = prefix
        self._times = dict.fromkeys(self.customers, datetime(2026, 10, 1, tzinfo=UTC))
        self._serial = 0
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> "SteadyLoad":
        self._tasks = [asyncio.create_task(self._lane(index)) for index in range(self.lanes)]
        return self

    async def stop(self, timeout_s: float = 120) -> None:
        """Stop making new batches; wait until every batch in flight is acknowledged."""
        self._stopping.set()
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*self._tasks)
        log.info("load stopped: %d events acknowledged; answers %s", len(self.sent), dict(self.answers))

    async def wait_for_acknowledged(self, events: int, timeout_s: float = 60) -> None:
        """Until at least `events` more events than now are acknowledged."""
        goal = len(self.sent) + events
        async with asyncio.timeout(timeout_s):
            while len(self.sent) < goal:
                await asyncio.sleep(0.05)

    def _next_batch(self, lane: int) -> list[dict[str, Any]]:
        mine = self.customers[lane::self.lanes]
        events = []
        for _ in range(self.batch):
            customer = self._rng.choice(mine)
            self._times[customer] += timedelta(seconds=self._rng.randrange(1, 120))
            self._serial += 1
            events.append({
                "event_id": f"{self._prefix}-{self._serial:07d}", "customer_id": customer,
                "event": self._rng.choice(EVENT_NAMES), "occurred_at": self._times[customer].isoformat(),
                "properties": {"n": self._serial},
            })
        return events

    async def _lane(self, lane: int) -> None:
        target = lane % len(self.targets)
        async with httpx.AsyncClient(timeout=15, auth=(self.write_key, "")) as client:
            next_at = time.monotonic()
            while not self._stopping.is_set():
                events = self._next_batch(lane)
                while True:  # until acknowledged, even while stopping
                    try:
                        response = await client.post(f"{self.targets[target]}/v1/events",
                                                     json={"batch": events})
                    except httpx.TransportError as exc:
                        self.answers[type(exc).__name__] += 1
                        target = (target + 1) % len(self.targets)
                    else:
                        self.answers[str(response.status_code)] += 1
                        if response.status_code == 202:
                            body = response.json()
                            assert body["event_ids"] == [e["event_id"] for e in events], body
                            break
                        assert response.status_code in (429, 503), response.text
                    await asyncio.sleep(0.2)
                self.sent += events
                next_at += self.interval_s
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
