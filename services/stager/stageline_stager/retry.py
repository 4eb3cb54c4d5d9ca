"""Retrying a step through a passing outage of Postgres or the broker, until the stager stops."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError

from stageline_shared.postgres_errors import transient
from stageline_stager import metrics

log = logging.getLogger(__name__)


def reason(exc: BaseException) -> str:
    """The failure's label for stageline_stager_db_retries_total: the driver's error class."""
    return type(getattr(exc, "orig", exc)).__name__


class Retrier:
    """Runs a step again after a database or broker failure, every `delay_s`, until it succeeds
    or `stopping` is set: a passing outage must neither skip records nor crash-loop the process."""

    def __init__(self, stopping: asyncio.Event, delay_s: float) -> None:
        self.stopping = stopping
        self.delay_s = delay_s

    async def until_done(self, what: str, attempt: Callable[[], Awaitable[None]]) -> bool:
        """Run attempt() until it succeeds (True) or the stager is stopping (False)."""
        while True:
            try:
                await attempt()
                return True
            except Exception as exc:
                if not (transient(exc) or isinstance(exc, KafkaError)):
                    raise
                metrics.DB_RETRIES.labels(reason(exc)).inc()
                if self.stopping.is_set():
                    log.warning("%s failed while stopping; batch left for replay: %r", what, exc)
                    return False
                log.warning("%s failed (%s), retrying in %.1fs", what, reason(exc), self.delay_s)
                await asyncio.sleep(self.delay_s)
