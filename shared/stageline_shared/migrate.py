"""Apply Alembic migrations (`stageline-migrate`); services never create tables themselves."""

import logging
import sys
from pathlib import Path

from alembic import command
from alembic.config import Config

from stageline_shared.database import async_url
from stageline_shared.logs import setup_logging
from stageline_shared.settings import CommonSettings

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", async_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str) -> None:
    """Bring the database to the latest schema (blocking; run outside an event loop)."""
    command.upgrade(alembic_config(database_url), "head")


def main() -> None:
    settings = CommonSettings()
    setup_logging(settings.log_level, "migrate")
    upgrade(settings.database_url)
    log.info("database schema is at the latest revision")
    sys.exit(0)
