"""A target of the benchmark: the figure (or ratio of figures) the issue states a bar for."""

from collections.abc import Callable
from dataclasses import dataclass

from stageline_bench.results import Results


@dataclass(frozen=True)
class Target:
    id: str
    text: str  # as the issue states it
    value: Callable[[Results], float | None]  # what is compared (a ratio or a figure)
    met: Callable[[float], bool]
    ratio: bool  # the value is a ratio to a reference measured in the same run


def ratio(numerator: str, denominator: str) -> Callable[[Results], float | None]:
    def compute(results: Results) -> float | None:
        top, bottom = results.value(numerator), results.value(denominator)
        return top / bottom if top is not None and bottom else None
    return compute


def figure(id: str) -> Callable[[Results], float | None]:
    return lambda results: results.value(id)
