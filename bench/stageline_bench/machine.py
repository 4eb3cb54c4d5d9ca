"""What the numbers were measured on: machine, versions, load generator."""

import os
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def wrk_version() -> str | None:
    """`wrk 4.1.0` when wrk is installed, else None."""
    if shutil.which("wrk") is None:
        return None
    result = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    words = (result.stdout + result.stderr).split()
    return " ".join(words[:2]) if words else "wrk"


def machine_info(postgres_version: str, broker: str) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_mb": _memory_mb(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "aiokafka": _version("aiokafka"),
        "asyncpg": _version("asyncpg"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "postgres": postgres_version,
        "broker": broker,
        "wrk": wrk_version(),
    }
