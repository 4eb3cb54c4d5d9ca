"""Service processes: start one with its environment, wait for /healthz, stop or kill it."""

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

log = logging.getLogger(__name__)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class ServiceProcess:
    """`python -m <module>` with extra environment, healthy once `health_url` answers 200."""

    def __init__(
        self, name: str, module: str, env: dict[str, str], health_url: str,
        log_file: Path | None = None,
    ) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.health_url = health_url
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> "ServiceProcess":
        output = self.log_file.open("ab") if self.log_file else None
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module], env={**os.environ, **self.env},
            stdout=output, stderr=subprocess.STDOUT if output else None,
        )
        deadline = time.monotonic() + timeout_s
        while not http_ok(self.health_url):
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.process.returncode} at start")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} was not healthy within {timeout_s:.0f}s")
            time.sleep(0.1)
        log.info("%s started (pid %d)", self.name, self.process.pid)
        return self

    @property
    def base_url(self) -> str:
        return self.health_url.removesuffix("/healthz")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout_s; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM for %.0fs; killing it", self.name, timeout_s)
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
