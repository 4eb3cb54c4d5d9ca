"""Garbage-collector settings for long-running services, applied once start-up is done."""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Fewer, cheaper garbage collections, for a process whose start-up objects live forever.

    With the defaults, full collections walked every object of FastAPI, pydantic, SQLAlchemy and
    aiokafka (the latency spikes of ingest's p99), and collections triggered by a batch's
    short-lived objects took a large share of the stager's CPU.
    Objects made at start are frozen out of the collector's walk, and the young generation may
    grow larger before it is collected (work units free their containers as they go).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 20)


@contextmanager
def collections_paused() -> Iterator[None]:
    """No collections while a batch is in hand.

    A batch's objects all live until it is done and are then freed by reference counting, so
    collecting during it only walks them again and again; any cycles it leaves are collected
    after it, by the normal thresholds.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
