"""Decoding records and routing the ones that break the contract to the dead-letter topic."""

import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer, ConsumerRecord

from stageline_shared.contract.record import TouchpointFields, UndecodableRecord, decode_touchpoint
from stageline_stager.metrics import DEAD_LETTERED

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejected:
    record: ConsumerRecord[bytes, bytes]
    reason: str  # low-cardinality label: undecodable | contract | unstorable
    detail: str


def decode(record: ConsumerRecord[bytes, bytes]) -> TouchpointFields | Rejected:
    """A touchpoint, or why the record is not one."""
    if record.value is None:
        return Rejected(record, "undecodable", "record has no value")
    try:
        return decode_touchpoint(record.value)
    except UndecodableRecord as exc:
        return Rejected(record, "undecodable", str(exc)[:1000])
    except ValueError as exc:
        return Rejected(record, "contract", str(exc)[:1000])


async def send_to_dead_letter(
    producer: AIOKafkaProducer, topic: str, rejected: list[Rejected]
) -> None:
    """Produce each rejected record's original bytes with the reason; waits for the acks."""
    futures = []
    for item in rejected:
        record = item.record
        headers = [
            ("error", item.detail.encode()),
            ("reason", item.reason.encode()),
            ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        futures.append(
            await producer.send(topic, value=record.value, key=record.key, headers=headers)
        )
        log.warning(
            "dead-lettered %s/%d@%d (%s): %s",
            record.topic, record.partition, record.offset, item.reason, item.detail[:200],
        )
    for future in futures:
        await future
    for item in rejected:
        DEAD_LETTERED.labels(item.reason).inc()
