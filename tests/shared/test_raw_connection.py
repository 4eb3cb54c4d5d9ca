"""The Connection protocol (stageline_shared.raw_connection) matches asyncpg's Connection
(asyncpg ships no type hints, so mypy cannot check it)."""

import inspect

import asyncpg

from stageline_shared.raw_connection import Connection


def test_every_method_of_the_protocol_is_asyncpgs_with_the_same_parameters() -> None:
    methods = [name for name in vars(Connection) if not name.startswith("_")]
    assert sorted(methods) == ["copy_records_to_table", "execute", "fetch", "fetchrow", "fetchval",
                               "is_in_transaction"]
    for name in methods:
        ours = inspect.signature(getattr(Connection, name)).parameters
        theirs = inspect.signature(getattr(asyncpg.Connection, name)).parameters
        for parameter in ours.values():
            assert parameter.name in theirs, (name, parameter.name)
            assert parameter.kind == theirs[parameter.name].kind, (name, parameter.name)
        assert inspect.iscoroutinefunction(getattr(Connection, name)) == \
            inspect.iscoroutinefunction(getattr(asyncpg.Connection, name)), name
