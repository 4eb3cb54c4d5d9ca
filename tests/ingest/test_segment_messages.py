"""Segment calls → touchpoints, one call at a time: what each type maps to and must carry (no I/O)."""

from typing import Any

import pytest

from stageline_ingest.segment.intake import SegmentType
from stageline_shared.contract.record import links
from stageline_shared.journeys import load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE
from stageline_stager.engine import matches
from tests.fixtures.segment_intake import RECEIVED, read, refused


def test_track_maps_event_properties_and_ids() -> None:
    touchpoint = read("track", userId="u-1", anonymousId="a-1", event="Order Completed",
                      properties={"total": 42.5}, messageId="m-1", context={"ip": "1.2.3.4"})

    assert touchpoint.type == "track"
    assert touchpoint.event_id == "m-1"
    assert touchpoint.customer_id == "u-1"
    assert (touchpoint.user_id, touchpoint.anonymous_id) == ("u-1", "a-1")
    assert touchpoint.event == "Order Completed"
    assert touchpoint.properties == {"total": 42.5}
    assert touchpoint.context == {"ip": "1.2.3.4"}
    assert touchpoint.channel is None
    assert touchpoint.source == "site"
    assert touchpoint.occurred_at == RECEIVED == touchpoint.received_at
    assert not touchpoint.clamped


def test_customer_is_the_anonymous_id_without_a_user_id() -> None:
    touchpoint = read("track", anonymousId="a-1", event="Ad Clicked")
    assert touchpoint.customer_id == "a-1"
    assert touchpoint.user_id is None


def test_page_is_page_viewed_with_name_and_category() -> None:
    touchpoint = read("page", anonymousId="a-1", name="Pricing", category="Docs",
                      properties={"url": "https://shop.example/pricing", "name": "old"})

    assert touchpoint.type == "page"
    assert touchpoint.event == "Page Viewed"
    assert touchpoint.properties == {"url": "https://shop.example/pricing", "name": "Pricing",
                                     "category": "Docs"}
    assert touchpoint.channel == "web"


def test_page_without_name_keeps_properties_only() -> None:
    touchpoint = read("page", anonymousId="a-1", name=None, properties={"path": "/"})
    assert touchpoint.properties == {"path": "/"}


def test_screen_is_screen_viewed_on_mobile() -> None:
    touchpoint = read("screen", userId="u-1", name="Cart")
    assert (touchpoint.event, touchpoint.channel, touchpoint.properties) == \
        ("Screen Viewed", "mobile", {"name": "Cart"})


def test_channel_comes_from_context_when_a_string() -> None:
    assert read("page", userId="u", context={"channel": "email"}).channel == "email"
    assert read("page", userId="u", context={"channel": {"x": 1}}).channel == "web"
    assert read("track", userId="u", event="E", context={"channel": 5}).channel is None
    assert "context.channel" in refused("track", userId="u", event="E",
                                        context={"channel": "a\nb"}).message
    assert "context.channel" in refused("track", userId="u", event="E",
                                        context={"channel": "x" * 51}).message


def test_identify_merges_context_traits_under_top_level_traits() -> None:
    touchpoint = read("identify", userId="u-1", traits={"plan": "pro", "name": "Ada"},
                      context={"traits": {"plan": "free", "email": "ada@example.com"}})

    assert touchpoint.event == "Identified"
    assert touchpoint.properties == {"plan": "pro", "name": "Ada", "email": "ada@example.com"}


def test_identify_with_traits_only_in_context() -> None:
    # rudder-sdk-python puts identify traits in context.traits.
    touchpoint = read("identify", anonymousId="a-1", context={"traits": {"email": "x@example.com"}})
    assert touchpoint.properties == {"email": "x@example.com"}
    assert "context.traits" in refused("identify", userId="u", context={"traits": [1]}).message


def test_group_joined_with_group_traits() -> None:
    touchpoint = read("group", userId="u-1", groupId=77, traits={"employees": 40},
                      context={"traits": {"email": "user@example.com"}})

    assert touchpoint.event == "Group Joined"
    assert touchpoint.group_id == "77"
    assert touchpoint.properties == {"employees": 40}


def test_group_without_a_group_id_updates_the_current_groups_traits() -> None:
    # rudderanalytics.group(traits) sends no groupId (RudderStack's sanity suite, group7).
    touchpoint = read("group", anonymousId="a-1", userId="", traits={"groupName": "Anime fan club"})
    assert (touchpoint.event, touchpoint.group_id) == ("Group Joined", None)
    assert touchpoint.properties == {"groupName": "Anime fan club"}


def test_alias_sets_previous_id() -> None:
    touchpoint = read("alias", userId="u-1", previousId="a-1")

    assert touchpoint.event == "Alias"
    assert (touchpoint.customer_id, touchpoint.previous_id) == ("u-1", "a-1")
    assert links(touchpoint) == [("a-1", "u-1")]


def test_previous_and_group_ids_belong_to_their_calls() -> None:
    touchpoint = read("track", userId="u", event="E", previousId="p", groupId="g")
    assert (touchpoint.previous_id, touchpoint.group_id) == (None, None)


@pytest.mark.parametrize(
    ("route", "fields", "fragment"),
    [
        ("track", {"event": "E"}, "userId: required (or anonymousId)"),
        ("track", {"userId": "u"}, "event: required for track"),
        ("track", {"userId": "u", "event": ""}, "event: must not be empty"),
        ("track", {"userId": "u", "event": "x" * 201}, "event: must be at most 200 characters"),
        ("track", {"userId": "u", "event": "a\tb"}, "event: contains a control character (U+0009)"),
        ("page", {"name": "Home"}, "userId: required (or anonymousId)"),
        ("alias", {"userId": "u"}, "previousId: required for alias"),
        ("alias", {"anonymousId": "a", "previousId": "p"}, "userId: required for alias"),
        ("page", {"userId": "u", "name": 5}, "name: must be a string"),
        ("track", {"userId": "u", "event": "E", "properties": [1]}, "properties: must be a JSON object"),
        ("identify", {"userId": "u", "traits": "x"}, "traits: must be a JSON object"),
        ("track", {"userId": "u", "event": "E", "type": "page"}, "type: 'page' does not match the route /v1/track"),
    ],
)
def test_missing_or_wrong_fields_are_named(route: SegmentType, fields: dict[str, Any], fragment: str) -> None:
    rejection = refused(route, **fields)
    assert fragment in rejection.message
    assert (rejection.status, rejection.code, rejection.reason) == (400, "invalid_event", "invalid")


def test_extra_fields_from_sdks_are_tolerated() -> None:
    touchpoint = read("track", userId="u", event="E", type="track", writeKey="k", version=2,
                      _metadata={"nodeVersion": "20"}, library={"name": "x"}, channel="server",
                      integrations={"All": True})
    assert touchpoint.event == "E"
    # Stageline stores every event whatever `integrations` routes to, so its shape is not checked.
    assert read("track", userId="u", event="E", integrations=["Amplitude"]).event == "E"


# --- the default journeys see page views --------------------------------------------------------------


def test_a_pricing_page_view_is_consideration_in_the_default_journey() -> None:
    journey = load_journeys(DEFAULT_JOURNEYS_FILE)["ecommerce"]
    pricing = read("page", anonymousId="a", name="Pricing")
    home = read("page", anonymousId="a", name="Home")

    matched = [rule.stage for rule in journey.rules if matches(rule.match, pricing)]
    assert matched == ["consideration"]
    assert not [rule for rule in journey.rules if matches(rule.match, home)]
