"""Real SDK payloads (tests/fixtures/segment_payloads) read as Segment's servers read them (no I/O).

Each fixture says what Segment's API and RudderStack's gateway do with it and what ingest does:
its status, and for an accepted one the customer, event and event_id of every touchpoint. Where
ingest's answer is not the servers', the fixture names the README row that says why.
"""

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stageline_ingest.segment.intake import (
    TYPES,
    Rejection,
    SegmentType,
    parse_document,
    read_batch,
    read_message,
)
from stageline_shared.errors import ApiError
from tests.fixtures.segment_payloads import body_of, load_fixtures

README = Path(__file__).parents[2] / "README.md"
RECEIVED = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
ROUTES: dict[str, SegmentType | None] = {f"/v1/{name}": kind for kind in TYPES
                                         for name in (kind, kind[0])} | {"/v1/batch": None, "/v1/b": None}


def difference_rows() -> set[str]:
    """The first cells of the README's table of differences from Segment and RudderStack."""
    section = README.read_text().split("### Differences from Segment and RudderStack", 1)[1]
    section = section.split("\n#", 1)[0]
    return {match.group(1).strip() for match in re.finditer(r"^\| ([^|]+) \|", section, re.M)} - \
        {"difference", "---"}


def outcome(fixture: dict[str, Any]) -> dict[str, Any]:
    """What ingest answers: the status, and the touchpoints or the error, as the routes do."""
    route = ROUTES[fixture["path"]]
    try:
        document = parse_document(body_of(fixture))
        if route is not None:
            touchpoints = [read_message(document, route, RECEIVED)]
        else:
            intake = read_batch(document, RECEIVED)
            if not intake.accepted:  # the batch route's answer when nothing is left to accept
                return {"status": 400, "error": "no valid messages: " + intake.rejected[0]["error"]}
            assert not intake.rejected, intake.rejected  # fixtures are accepted or refused whole
            touchpoints = intake.accepted
    except Rejection as exc:
        return {"status": exc.status, "error": exc.message}
    except ApiError as exc:
        return {"status": exc.status, "error": exc.message}
    return {"status": 200, "touchpoints": [
        {"customer_id": t.customer_id, "event": t.event, "event_id": t.event_id} for t in touchpoints
    ]}


FIXTURE_LIST = load_fixtures()


def test_the_fixtures_are_a_few_dozen_from_both_vendors() -> None:
    assert len(FIXTURE_LIST) >= 40
    sources = {fixture["source"].split("@")[0].split()[0] for fixture in FIXTURE_LIST}
    assert {"rudderlabs/rudder-sdk-js", "rudderlabs/rudder-server", "segmentio/segment-docs",
            "segmentio/analytics-next"} <= sources


@pytest.mark.parametrize("fixture", FIXTURE_LIST, ids=[f["name"] for f in FIXTURE_LIST])
def test_real_payloads_are_read_as_expected(fixture: dict[str, Any]) -> None:
    got = outcome(fixture)
    expected = fixture["stageline"]
    assert got["status"] == expected["status"], got
    if expected["status"] == 200:
        touchpoints = got["touchpoints"]
        assert [{**t, "event_id": t["event_id"] if want["event_id"] else None}
                for t, want in zip(touchpoints, expected["touchpoints"], strict=True)] == \
            expected["touchpoints"]
        # An event_id the payload did not give is assigned, not left out.
        assert all(t["event_id"] for t in touchpoints)
    else:
        assert 400 <= got["status"] < 500
        assert expected["error"] in got["error"], got


@pytest.mark.parametrize("fixture", FIXTURE_LIST, ids=[f["name"] for f in FIXTURE_LIST])
def test_where_ingest_differs_from_the_servers_the_readme_says_why(fixture: dict[str, Any]) -> None:
    ours = "accept" if fixture["stageline"]["status"] == 200 else "refuse"
    differs = {server for server, verdict in fixture["servers"].items() if verdict != ours}
    if differs:
        assert fixture.get("difference") in difference_rows(), (
            f"ingest does not do what {', '.join(sorted(differs))} does: name the README row")
    else:
        assert "difference" not in fixture, "ingest does what both servers do: no difference to name"


def test_what_both_servers_accept_ingest_accepts() -> None:
    both = [f["name"] for f in FIXTURE_LIST if set(f["servers"].values()) == {"accept"}]
    refused = [name for name in both if next(f for f in FIXTURE_LIST if f["name"] == name)
               ["stageline"]["status"] != 200]
    assert len(both) >= 30 and refused == []
