"""The Postgres error taxonomy: unavailable, transient, refused data, raw or wrapped by SQLAlchemy."""

import asyncpg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from stageline_shared.postgres_errors import refused_data, transient, unavailable


def wrapped(error: Exception) -> DBAPIError:
    """The error as SQLAlchemy raises it: its DBAPI adapter's error, caused by asyncpg's."""
    adapter = Exception("the adapter's error")
    adapter.__cause__ = error
    adapter.sqlstate = getattr(error, "sqlstate", None)  # type: ignore[attr-defined]
    kind = IntegrityError if isinstance(error, asyncpg.IntegrityConstraintViolationError) else DBAPIError
    return kind("INSERT …", {}, adapter)


@pytest.mark.parametrize(("error", "is_unavailable", "is_transient", "state"), [
    (ConnectionRefusedError(), True, True, None),
    (asyncpg.exceptions.ConnectionDoesNotExistError(), True, True, "08003"),
    (asyncpg.exceptions.CannotConnectNowError(), True, True, "57P03"),
    (asyncpg.exceptions.AdminShutdownError(), True, True, "57P01"),
    (asyncpg.exceptions.DeadlockDetectedError(), False, True, None),
    (asyncpg.exceptions.SerializationError(), False, True, None),
    (asyncpg.exceptions.UniqueViolationError(), False, False, "23505"),
    (asyncpg.exceptions.UntranslatableCharacterError(), False, False, "22P05"),
    (asyncpg.exceptions.ProgramLimitExceededError(), False, False, "54000"),
    (asyncpg.exceptions.UndefinedTableError(), False, False, None),
    (asyncpg.InterfaceError("connection is closed"), True, False, None),
])
def test_raw_asyncpg_errors(error: Exception, is_unavailable: bool, is_transient: bool,
                            state: str | None) -> None:
    assert unavailable(error) is is_unavailable
    assert transient(error) is is_transient
    expected = state if state and state[:2] in ("22", "23", "54") else None
    assert refused_data(error) == expected


@pytest.mark.parametrize("error", [
    asyncpg.exceptions.UniqueViolationError(), asyncpg.exceptions.UntranslatableCharacterError(),
])
def test_refused_data_is_found_beneath_sqlalchemys_wrapper(error: Exception) -> None:
    assert refused_data(wrapped(error)) == error.sqlstate  # type: ignore[attr-defined]
    assert not unavailable(wrapped(error))


def test_any_error_sqlalchemy_wraps_is_transient_but_only_a_lost_database_unavailable() -> None:
    assert transient(wrapped(asyncpg.exceptions.UndefinedTableError()))
    assert not unavailable(wrapped(asyncpg.exceptions.UndefinedTableError()))
    assert unavailable(wrapped(asyncpg.exceptions.CannotConnectNowError()))
    assert transient(OperationalError("SELECT 1", {}, Exception("gone")))
    assert not transient(ValueError("a bug"))
