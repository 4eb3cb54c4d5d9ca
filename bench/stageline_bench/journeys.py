"""The journeys the services run with (the packaged default unless --journeys-file)."""

from pathlib import Path

from stageline_shared.journeys import load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE


def journey_stages(path: Path | None) -> list[tuple[str, list[str]]]:
    """(journey, ordered stages) for every journey in the file."""
    journeys = load_journeys(path or DEFAULT_JOURNEYS_FILE)
    return [(name, list(journey.stages)) for name, journey in journeys.items()]
