"""`python -m stageline_bench.ingest_floor`: ingest with its per-event work taken out, the bench's
measure of what the rest of ingest (HTTP, auth, the shared batcher, aiokafka, the broker's acks)
allows on this machine.

It is the real ingest service, workers and all, except that the app factory is given another
`read_events`, which splits a batch body into its events' own JSON and forwards each one
unchecked, keyed by its customer: no checks, no timestamps, no re-encoding, and values smaller
than the records ingest writes. No ingest that checks its events can go faster, so a ratio
ingest cannot reach at its floor is out of reach of this stack on this machine, whatever
ingest's own code does. Never a service to deploy.
"""

from datetime import datetime

import msgspec
from fastapi import FastAPI

from stageline_ingest import app as ingest_app
from stageline_ingest.__main__ import serve_workers
from stageline_ingest.outcome import Intake
from stageline_ingest.settings import IngestSettings
from stageline_shared.contract.record import WireRecord


class _Keys(msgspec.Struct):
    customer_id: str
    event_id: str = ""


class _KeysBatch(msgspec.Struct):
    batch: list[_Keys]


class _RawBatch(msgspec.Struct):
    batch: list[msgspec.Raw]


_KEYS = msgspec.json.Decoder(_KeysBatch)
_RAW = msgspec.json.Decoder(_RawBatch)


def forward_unchecked(body: bytes, received_at: datetime, source: str | None = None) -> Intake[WireRecord]:
    """Each event of `{"batch": [...]}` as its own bytes, keyed by its customer_id."""
    keys = _KEYS.decode(body).batch
    return Intake(accepted=[WireRecord(k.customer_id.encode(), bytes(raw), k.event_id, False)
                            for k, raw in zip(keys, _RAW.decode(body).batch, strict=True)])


def create_worker_app() -> FastAPI:
    """One uvicorn worker's ingest app, reading events with `forward_unchecked`."""
    return ingest_app.create_worker_app(read_events=forward_unchecked)


if __name__ == "__main__":
    serve_workers("stageline_bench.ingest_floor:create_worker_app", IngestSettings())
