"""Erasure on request (admin key): DELETE /v1/customers/{id}.

The request travels through Kafka like any event, keyed by the id, so the stager applies it in
order with that id's events; the stager then erases the customer and suppresses all its ids.
"""

import asyncio
import logging
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Request

from stageline_api.auth import AUTH_ERRORS, require_admin_key
from stageline_api.params import CustomerIdPath
from stageline_api.paths import CUSTOMER
from stageline_api.schemas import EraseQueued
from stageline_shared.contract.client_event import new_event_id
from stageline_shared.contract.record import Touchpoint
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.kafka import make_producer

log = logging.getLogger(__name__)
router = APIRouter(tags=["privacy"], dependencies=[Depends(require_admin_key)], responses=AUTH_ERRORS)


class EraseProducer:
    """Produces erase requests; connects on first use so the API starts without a broker."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self._bootstrap_servers = bootstrap_servers
        self.topic = topic
        self._producer: AIOKafkaProducer | None = None

    async def send(self, erase: Touchpoint) -> None:
        if self._producer is None:
            producer = make_producer(self._bootstrap_servers, "stageline-api")
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        await self._producer.send_and_wait(self.topic, erase.to_json(),
                                           key=erase.customer_id.encode())

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


@router.delete(CUSTOMER, status_code=202,
               responses=error_docs({
                   422: "A customer id that breaks its rules: it could not be a customer's",
                   503: "The broker or the database is unavailable; retry after Retry-After",
               }))
async def erase_customer(request: Request, customer_id: CustomerIdPath) -> EraseQueued:
    """Erase a customer (any of its ids): touchpoints, stages, transitions, identity links.

    202 once the broker holds the request; the stager applies it in order with the id's events.
    Later events for any of the customer's ids are counted and not stored.
    """
    now = datetime.now(UTC)
    erase = Touchpoint(type="erase", event_id=f"erase-{new_event_id()}", customer_id=customer_id,
                       event="Customer Erased", occurred_at=now, received_at=now)
    producer: EraseProducer = request.app.state.producer
    try:
        async with asyncio.timeout(request.app.state.settings.produce_timeout_s):
            await producer.send(erase)
    except (TimeoutError, KafkaError):
        raise ApiError(503, "broker_unavailable", "the erase request was not stored; retry",
                       headers={"Retry-After": "5"}) from None
    log.info("erase request %s queued", erase.event_id)
    return EraseQueued(erase_event_id=erase.event_id)
