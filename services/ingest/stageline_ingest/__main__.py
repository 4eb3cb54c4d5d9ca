"""`stageline-ingest`: serve the ingest API with uvicorn, in one process or several workers."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from stageline_ingest.app import create_app
from stageline_ingest.settings import IngestSettings
from stageline_shared.gc_tuning import tune_gc
from stageline_shared.logs import setup_logging

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_dir() -> Iterator[Path]:
    """An empty directory for the workers' metric files, named in the environment they inherit.

    PROMETHEUS_MULTIPROC_DIR when set (its old files are removed: counts restart with the
    service), else a temporary directory removed at exit. Workers are spawned, so they import
    prometheus_client afresh with the variable set.
    """
    configured = os.environ.get(MULTIPROC_ENV)
    if configured:
        directory = Path(configured)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):
            stale.unlink()
        yield directory
        return
    directory = Path(tempfile.mkdtemp(prefix="stageline-ingest-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    try:
        yield directory
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    settings = IngestSettings()
    setup_logging(settings.log_level, "ingest")
    if settings.ingest_workers == 1:
        app = create_app(settings)
        tune_gc()
        uvicorn.run(app, host=settings.ingest_host, port=settings.ingest_port,
                    log_level="warning", access_log=False)
        return
    serve_workers("stageline_ingest.app:create_worker_app", settings)


def serve_workers(factory: str, settings: IngestSettings) -> None:
    """Serve the app `factory` (an import string) makes in `settings.ingest_workers` uvicorn
    workers, which share the port and their metrics; each builds its own app (producer, key
    cache, rate limiter) from the environment."""
    with metrics_dir():
        uvicorn.run(factory, factory=True, workers=settings.ingest_workers, host=settings.ingest_host,
                    port=settings.ingest_port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
