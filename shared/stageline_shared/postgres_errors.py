"""What a Postgres error means for the caller: the database is unavailable, the failure is
transient, or Postgres refused the data.

One taxonomy for every service: the API and ingest answer 503 while the database is
unavailable; the stager retries a transient failure and dead-letters a record whose data
Postgres refuses. Errors arrive either wrapped by SQLAlchemy (DBAPIError, the asyncpg error as
its `orig`) or, from statements sent on the raw asyncpg connection, as asyncpg's own.
"""

import asyncpg
from sqlalchemy.exc import DBAPIError

# Postgres down, restarting or unreachable: connection failures (SQLSTATE class 08), shutdowns
# and refusals while starting (class 57), a connection lost mid-statement, the socket refused.
_UNAVAILABLE = (OSError, asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
                asyncpg.InterfaceError)

# Worth running again: any error SQLAlchemy wraps, and from the raw asyncpg connection a
# deadlock or serialization failure (class 40), a lost connection (08), a shutdown or a
# cancel (57). Other errors of the raw connection are bugs or misuse and stop the stager.
_TRANSIENT = (
    DBAPIError,  # includes OperationalError
    OSError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)

# SQLSTATE classes of a statement Postgres refuses for the data in it (data exception, integrity
# constraint violation, program limit exceeded): retrying cannot help, leaving the record out can.
_DATA_CLASSES = ("22", "23", "54")


def unavailable(exc: BaseException) -> bool:
    """Is `exc` the database being down or out of reach (retry later), not a failing query?"""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        exc = (orig.__cause__ or orig) if orig is not None else exc  # the asyncpg error beneath
    return isinstance(exc, _UNAVAILABLE)


def transient(exc: BaseException) -> bool:
    """Could the same statements succeed if run again (after refused_data has been ruled out)?"""
    return isinstance(exc, _TRANSIENT)


def refused_data(exc: BaseException) -> str | None:
    """The SQLSTATE when Postgres refused a statement for its data, else None."""
    cause: BaseException | None = exc
    for _ in range(4):  # SQLAlchemy's error, its DBAPI error, asyncpg's
        if cause is None:
            break
        state = getattr(cause, "sqlstate", None)
        if isinstance(state, str):
            return state if state[:2] in _DATA_CLASSES else None
        cause = getattr(cause, "orig", None) or cause.__cause__
    return None
