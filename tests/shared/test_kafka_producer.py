"""Every service builds its producer with make_producer: acks=all, plus what that service tunes."""

from typing import Any

import pytest

from stageline_ingest.producer import TouchpointProducer
from stageline_ingest.settings import IngestSettings
from stageline_shared import kafka


class Recorder:
    """Stands in for AIOKafkaProducer: keeps the settings it was built with."""

    built: list[dict[str, Any]] = []

    def __init__(self, **settings: Any) -> None:
        self.built.append(settings)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    Recorder.built = []
    monkeypatch.setattr(kafka, "AIOKafkaProducer", Recorder)
    return Recorder.built


def test_a_producer_acks_all_with_the_callers_own_settings(built: list[dict[str, Any]]) -> None:
    kafka.make_producer("broker:9092", "stageline-test", linger_ms=5)
    assert built == [{"bootstrap_servers": "broker:9092", "client_id": "stageline-test",
                      "acks": "all", "linger_ms": 5}]


def test_ingest_passes_its_batching_compression_and_timeout(built: list[dict[str, Any]]) -> None:
    settings = IngestSettings(kafka_bootstrap_servers="broker:9092", linger_ms=7, compression="lz4",
                              produce_timeout_s=2.5)
    TouchpointProducer(settings)
    assert built == [{"bootstrap_servers": "broker:9092", "client_id": "stageline-ingest",
                      "acks": "all", "linger_ms": 7, "compression_type": "lz4",
                      "request_timeout_ms": 2500, "max_batch_size": 1024 * 1024}]
