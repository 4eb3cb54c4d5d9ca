"""A shop's page in a real browser: Segment's analytics.js and RudderStack's JavaScript SDK, as
published on npm, in Debian's headless Chromium, deliver every event to ingest on another origin.

The page (tests/sdk/browser/) is served from http://localhost:PORT, ingest (behind a proxy that
fails the first event request with a 429 or a 503, so that the browser retries it) from
127.0.0.1: every request is a CORS request, preflighted (both SDKs send the write key as Basic
auth). Each SDK runs in both its delivery modes. The API then holds every call exactly once,
stitched to the user who logged in. `make test` installs Chromium (apt) and the SDKs (`npm ci`).
"""

import asyncio
import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.chromium import Browser, Page, chromium, chromium_path
from tests.fixtures.polling import metric, touchpoints_of, wait_applied, wait_for
from tests.fixtures.shop_site import BUNDLES, Exchange, Failure, Proxy, Site, ingest_proxy, shop_site
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Case:
    sdk: str  # the page: tests/sdk/browser/<sdk>.html
    mode: str  # "standard" (a request per call) or "batching"
    failure: Failure
    retry_header: str  # what the SDK's retry carries, with the attempt number

    def __str__(self) -> str:
        return f"{self.sdk}-{self.mode}-{self.failure.status}"


CASES = [
    # analytics.js honours a 429's Retry-After (when CORS lets it read the header): 2 s here.
    Case("segment", "standard", Failure(429, retry_after_s=2, stored=False), "x-retry-count"),
    Case("segment", "batching", Failure(503, retry_after_s=1, stored=True), "x-retry-count"),
    Case("rudderstack", "standard", Failure(503, retry_after_s=1, stored=True), "rsa-retry-attempt"),
    Case("rudderstack", "batching", Failure(429, retry_after_s=1, stored=False), "rsa-retry-attempt"),
]
CALLS = 4  # page, identify, track, alias: see the pages' shopDone


def _require_browser() -> None:
    if chromium_path() is None:
        pytest.fail("chromium is not installed: apt-get install chromium (`make system-deps` does)")
    for bundle in BUNDLES.values():
        if not (bundle / "index.js").is_file():
            pytest.fail(f"{bundle / 'index.js'} is missing: run `npm ci --prefix tests/sdk/browser` "
                        "(`make node-deps` does)")


async def _open_shop(browser: Browser, site: Site, sdk: str) -> tuple[Page, dict[str, Any]]:
    """The page, and what its script returned once every call was made (the anonymousId)."""
    page = await browser.new_page()
    await page.goto(f"{site.origin}/{sdk}.html")
    # Navigation returns before the page's scripts ran: wait for the promise they leave.
    done = await page.evaluate("""new Promise((resolve) => {
        const check = () => window.shopDone ? resolve(window.shopDone) : setTimeout(check, 50)
        check()
    })""")
    return page, done


def _resent(proxy: Proxy) -> bool:
    """Whether the forced request's messages were sent again and taken."""
    posts = proxy.posts()
    forced = {m for e in posts if e.forced for m in e.message_ids}
    return bool(forced) and any(forced <= set(e.message_ids) for e in posts if not e.forced and e.status == 200)


async def _timeline(stack: Stack, api: str, user_id: str, page: Page, proxy: Proxy) -> list[dict[str, Any]]:
    """The user's touchpoints once all the calls reached them and the failed request was resent
    (a 503's messages may be stored before the retry comes)."""
    touchpoints: list[dict[str, Any]] = []
    async with stack.client() as client:

        async def arrived() -> bool:
            nonlocal touchpoints
            response = await client.get(f"{api}/v1/customers/{user_id}/timeline", params={"limit": 500})
            if response.status_code == 404:
                return False
            assert response.status_code == 200, response.text
            touchpoints = [i for i in response.json()["items"] if i["type"] == "touchpoint"]
            return len(touchpoints) >= CALLS and _resent(proxy)

        try:
            await wait_for(arrived, 90, f"{CALLS} touchpoints of {user_id} and the retry", interval_s=0.25)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; got {touchpoints}\npage:\n{page.report()}\n"
                                 f"proxy: {[(e.method, e.path, e.status) for e in proxy.exchanges]}") from None
    return touchpoints


def _retry_of(forced: Exchange, posts: list[Exchange]) -> Exchange:
    """The request that resent the forced one's messages."""
    retries = [e for e in posts if not e.forced and set(forced.message_ids) & set(e.message_ids)]
    assert len(retries) == 1, [(e.path, e.status, e.message_ids) for e in posts]
    [retry] = retries
    assert set(forced.message_ids) <= set(retry.message_ids), (forced, retry)
    return retry


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_a_shop_page_delivers_every_event_once(stack: Stack, tmp_path: Path, case: Case) -> None:
    _require_browser()
    user_id = f"{case.sdk}-{uuid.uuid4().hex[:8]}"
    async with shop_site() as site:
        ingest = stack.start_ingest(STAGELINE_CORS_ORIGINS=json.dumps([site.origin]))
        stack.start_stager()
        api = stack.start_api()
        async with ingest_proxy(ingest, case.failure) as proxy:
            site.settings.update(writeKey=stack.write_key, ingestHost=proxy.url.removeprefix("http://"),
                                 userId=user_id, mode=case.mode)
            async with chromium(tmp_path / "chromium-profile") as browser:
                page, done = await _open_shop(browser, site, case.sdk)
                touchpoints = await _timeline(stack, api, user_id, page, proxy)
    anonymous_id = done["anonymousId"]
    assert anonymous_id and anonymous_id != user_id, done

    # The browser: every request went to the shop or to ingest (nothing to a CDN or a control
    # plane), none was refused by CORS, and the only failure was the forced one.
    report = page.report()
    for request in page.requests.values():
        assert request.url.startswith((site.origin, proxy.url)), report
        assert request.failure is None, report
    refused = [r.status for r in page.requests.values() if r.status is not None and r.status >= 400]
    assert refused == [case.failure.status], report

    # The wire: preflights all allowed, one forced failure, retried once with the retry header.
    preflights = [e for e in proxy.exchanges if e.method == "OPTIONS"]
    assert preflights and {e.status for e in preflights} == {200}, preflights
    posts = proxy.posts()
    [forced] = [e for e in posts if e.forced]
    assert forced is posts[0] and forced.status == case.failure.status
    retry = _retry_of(forced, posts)
    assert retry.status == 200 and retry.headers.get(case.retry_header) == "1", retry
    assert all(e.status == 200 for e in posts if not e.forced), posts
    if case.sdk == "segment" and case.failure.status == 429:
        assert retry.at - forced.at >= case.failure.retry_after_s, "Retry-After was not honoured"
    sent = {m for e in posts for m in e.message_ids}
    assert len(sent) == CALLS, posts
    if case.sdk == "rudderstack":
        basic = "Basic " + base64.b64encode(f"{stack.write_key}:".encode()).decode()
        assert [(c["writeKey"], c["authorization"]) for c in site.config_requests] == [(stack.write_key, basic)]

    # Ingest took the forced request's messages twice when they were stored before the 503; the
    # stager kept each message once.
    duplicates = len(forced.message_ids) if case.failure.stored else 0
    async with stack.client() as client:
        metrics = (await client.get(f"{ingest}/metrics")).text
        assert metric(metrics, "stageline_ingest_events_accepted_total") == CALLS + duplicates
        await wait_applied(stack.database_url, stack.topic, CALLS + duplicates)
        touchpoints = await touchpoints_of(client, api, user_id)
        profile = (await client.get(f"{api}/v1/customers/{anonymous_id}", params={"journey": "shop"})).json()
        counts = (await client.get(f"{api}/v1/journeys/shop/stages")).json()
    assert sorted(t["event_id"] for t in touchpoints) == sorted(sent), touchpoints
    _assert_touchpoints(touchpoints, site, case)
    assert profile["customer_id"] == user_id, profile
    assert profile["aliases"] == sorted([anonymous_id, f"{user_id}-old"]), profile
    assert [s["stage"] for s in profile["stages"]] == ["purchase"], profile
    assert counts["total"] == 1, counts  # one shopper, counted once


def _assert_touchpoints(touchpoints: list[dict[str, Any]], site: Site, case: Case) -> None:
    by_event = {t["event"]: t for t in touchpoints}
    assert sorted(by_event) == ["Alias", "Identified", "Order Completed", "Page Viewed"], touchpoints
    page = by_event["Page Viewed"]
    assert page["channel"] == "web"
    url = f"{site.origin}/{case.sdk}.html"
    assert {k: page["properties"].get(k) for k in ("name", "category", "plan_shown", "path", "url", "title")} == {
        "name": "Pricing", "category": "Docs", "plan_shown": "pro", "path": f"/{case.sdk}.html", "url": url,
        "title": "Pricing | Stageline test shop"}, page
    assert by_event["Identified"]["properties"] == {"plan": "pro"}, by_event["Identified"]
    assert by_event["Order Completed"]["properties"] == {"total": 42.5, "currency": "EUR"}
    assert by_event["Alias"]["properties"] == {}


async def test_chromium_is_driven_over_devtools(tmp_path: Path) -> None:
    """The driver itself: a script's value, its console and its requests are read back."""
    _require_browser()
    async with chromium(tmp_path / "profile") as browser:
        page = await browser.new_page()
        await page.goto("data:text/html,<title>t</title><script>console.log('hello', 42)</script>")
        assert await page.evaluate("new Promise((r) => setTimeout(() => r(document.title), 10))") == "t"
        await asyncio.sleep(0.1)
    assert "log: hello 42" in page.console
    assert [r.status for r in page.requests.values()] == [200]
