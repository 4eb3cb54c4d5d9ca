"""`stageline-api`: serve the read API with uvicorn."""

import logging
import sys

import uvicorn

from stageline_api.app import create_app
from stageline_api.settings import ApiSettings
from stageline_shared.gc_tuning import tune_gc
from stageline_shared.journeys import JourneyDefinitionError
from stageline_shared.logs import setup_logging


def main() -> None:
    settings = ApiSettings()
    setup_logging(settings.log_level, "api")
    try:
        app = create_app(settings)
    except JourneyDefinitionError as exc:
        logging.getLogger("stageline_api").error("invalid journey definition: %s", exc)
        sys.exit(2)
    tune_gc()
    uvicorn.run(app, host=settings.api_host, port=settings.api_port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
