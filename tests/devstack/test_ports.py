"""Ports for test services are reserved below the ephemeral range and held by a lock."""

import fcntl
import socket

import pytest

from stageline_devstack import ports


def test_ports_are_distinct_bindable_and_below_the_ephemeral_range() -> None:
    taken = {ports.free_port() for _ in range(20)}
    assert len(taken) == 20
    for port in taken:
        assert 20000 <= port < ports._ephemeral_start()
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_reserved_port_is_held_against_other_runs() -> None:
    port = ports.free_port()
    with (ports._LOCKS / str(port)).open("ab") as other, pytest.raises(BlockingIOError):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another run
