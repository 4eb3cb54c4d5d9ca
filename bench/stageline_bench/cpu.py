"""Where the machine's CPU went during a phase: all of it (/proc/stat) and each service's share.

A throughput figure says how fast; this says why not faster. When the machine is busy on every
core, the CPU time each component spends per event sets the ceiling: cores * 1 s / (CPU µs per event).
"""

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from stageline_bench.stack import Service


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all CPUs since boot."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


@dataclass
class CpuMeter:
    """Started before a phase's load, read after it."""

    services: Sequence[Service]
    # CPU seconds so far of the broker and Postgres, when the bench started them
    infrastructure: Callable[[], dict[str, float]] = dict
    _started: float = 0.0
    _machine: tuple[int, int] = (0, 0)
    _service_s: dict[str, float] | None = None

    def start(self) -> "CpuMeter":
        self._started = time.monotonic()
        self._machine = _machine_jiffies()
        self._service_s = self._services_cpu()
        return self

    def _services_cpu(self) -> dict[str, float]:
        """CPU seconds so far per kind of service (all stagers together), broker and Postgres."""
        by_kind: dict[str, float] = dict(self.infrastructure())
        for service in self.services:
            if service.process.running:
                by_kind[service.kind] = by_kind.get(service.kind, 0.0) + service.cpu_s()
        return by_kind

    def read(self, events: int) -> dict[str, float]:
        """Busy cores, and CPU µs per event: the services measured, everything else, in all."""
        seconds = time.monotonic() - self._started
        busy, total = _machine_jiffies()
        cores = os.cpu_count() or 1
        busy_fraction = (busy - self._machine[0]) / max(1, total - self._machine[1])
        machine_s = busy_fraction * cores * seconds
        before, now = self._service_s or {}, self._services_cpu()
        spent = {kind: now[kind] - before.get(kind, 0.0) for kind in now}
        per_event = 1e6 / max(1, events)
        return {
            "seconds": seconds,
            "machine_busy_cores": busy_fraction * cores,
            "cpu_us_per_event_total": machine_s * per_event,
            **{f"cpu_us_per_event_{kind}": s * per_event for kind, s in spent.items()},
            # the load generator, the bench itself, the system (and Postgres and the broker when
            # they were not started by the bench)
            "cpu_us_per_event_rest": (machine_s - sum(spent.values())) * per_event,
            "ceiling_events_per_s": cores * 1e6 / max(1e-9, machine_s * per_event),
        }
