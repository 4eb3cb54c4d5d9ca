"""The asyncpg connection under a SQLAlchemy one, typed (asyncpg ships no type hints): what the
stager's stores and the dispatcher write on where COPY, arrays or row locks need the driver."""

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncConnection

from stageline_shared.database import driver_connection


class Row(Protocol):
    """An asyncpg Record: its values by position or column name."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of asyncpg.Connection the stores use."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetch(self, query: str, *args: Any) -> list[Row]: ...

    async def fetchrow(self, query: str, *args: Any) -> Row | None: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...

    async def copy_records_to_table(
        self, table_name: str, *, records: Iterable[Sequence[Any]], columns: Sequence[str]
    ) -> str: ...

    def is_in_transaction(self) -> bool: ...


async def connection(conn: AsyncConnection) -> Connection:
    """The asyncpg connection under a SQLAlchemy one, inside its transaction."""
    return cast(Connection, await driver_connection(conn))


def pairs(rows: Iterable[Row]) -> dict[Any, Any]:
    """Two-column rows as a dict, first column to second, as asyncpg's Records build one."""
    return dict(cast(Iterable[tuple[Any, Any]], rows))
