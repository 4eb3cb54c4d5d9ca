"""Percentiles, and the figures and details a run collects for the report."""

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One measured number, e.g. ("ingest.c8.events_per_s", "Ingest, 8 connections", 8120.0)."""

    id: str
    label: str
    value: float
    unit: str


@dataclass
class Results:
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # phase -> what went wrong

    def add(self, id: str, label: str, value: float, unit: str) -> None:
        self.figures.append(Figure(id, label, float(value), unit))

    def add_latencies(self, prefix: str, label: str, seconds: Sequence[float]) -> None:
        """p50, p99 and max of latencies given in seconds, as milliseconds."""
        self.add(f"{prefix}.p50_ms", f"{label}, p50", percentile(seconds, 50) * 1000, "ms")
        self.add(f"{prefix}.p99_ms", f"{label}, p99", percentile(seconds, 99) * 1000, "ms")
        self.add(f"{prefix}.max_ms", f"{label}, max", max(seconds, default=0.0) * 1000, "ms")

    def value(self, id: str) -> float | None:
        return next((f.value for f in self.figures if f.id == id), None)

    def figures_as_dicts(self) -> list[dict[str, Any]]:
        return [asdict(f) for f in self.figures]
