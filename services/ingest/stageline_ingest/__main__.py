"""`stageline-ingest`: serve the ingest API with uvicorn."""

import uvicorn

from stageline_ingest.app import create_app
from stageline_ingest.settings import IngestSettings
from stageline_shared.logs import setup_logging


def main() -> None:
    settings = IngestSettings()
    setup_logging(settings.log_level, "ingest")
    uvicorn.run(
        create_app(settings), host=settings.ingest_host, port=settings.ingest_port,
        log_level="warning", access_log=False,
    )


if __name__ == "__main__":
    main()
