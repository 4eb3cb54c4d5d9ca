"""Ports for the services and brokers that tests and the bench start: reserved, not just free.

Binding port 0 and closing the socket names a port that is free only for the moment: the kernel
hands the same ephemeral ports to outgoing connections (a client of the broker, say), and two
test runs side by side pick alike. So a port is taken below the kernel's ephemeral range, where
no outgoing connection lands, and held by this process with a lock file until it exits, so no
other run here takes it meanwhile.
"""

import fcntl
import os
import random
import socket
import tempfile
from pathlib import Path
from typing import IO

_LOCKS = Path(tempfile.gettempdir()) / "stageline-ports"
_held: dict[int, IO[bytes]] = {}  # port -> its lock file, open for the life of the process


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, reserved for this process until it exits."""
    _LOCKS.mkdir(exist_ok=True)
    low, high = 20000, max(20001, _ephemeral_start() - 1)
    rng = random.Random(os.getpid() ^ int.from_bytes(os.urandom(4), "big"))
    for _ in range(1000):
        port = rng.randint(low, high)
        if port in _held:
            continue
        lock = (_LOCKS / str(port)).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another run holds it
            lock.close()
            continue
        if _bindable(port):
            _held[port] = lock
            return port
        lock.close()
    raise RuntimeError(f"no free port between {low} and {high}")
