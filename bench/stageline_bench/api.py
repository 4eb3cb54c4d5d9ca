"""Phase "api": stage counts, a 100-item timeline page and a 100-customer audience page, p50/p99,
on a large dataset; and the CSV export of a stage holding every customer, in rows/s.

Latency is measured closed loop over --api-connections connections (default one, so it is
latency, not queueing), after a short warm-up, with the load generator in its own process.
"""

import asyncio
import random
import time
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from stageline_bench.config import BenchConfig
from stageline_bench.dataset import api_customer, load_dataset
from stageline_bench.http import HttpConnection, get_json
from stageline_bench.journeys import journey_stages
from stageline_bench.loadgen import LoadResult, LoadSpec, run_load
from stageline_bench.progress import log
from stageline_bench.results import Results
from stageline_bench.stack import BenchStack, plain_url

PAGE = 100


async def _check(base_url: str, read_key: str, journey: str, customers: int) -> int:
    """The dataset is what the API serves: every customer counted, a full first page."""
    api = HttpConnection(base_url, {"Authorization": f"Bearer {read_key}"})
    try:
        counts = await get_json(api, f"/v1/journeys/{journey}/stages")
        if counts["total"] != customers:
            raise RuntimeError(f"stage counts total {counts['total']}, expected {customers}")
        page = await get_json(api, f"/v1/customers/{api_customer(0)}/timeline?limit={PAGE}")
        return len(page["items"])
    finally:
        await api.close()


def _measure(base_url: str, read_key: str, paths: list[str], config: BenchConfig) -> LoadResult:
    spec = LoadSpec(base_url=base_url, method="GET", paths=paths, connections=config.api_connections,
                    duration_s=config.api_seconds, expect_status=200,
                    headers={"Authorization": f"Bearer {read_key}"})
    run_load(replace(spec, duration_s=min(2.0, config.api_seconds / 2)), config.generator)  # warm-up
    result = run_load(spec, config.generator)
    if result.ok == 0 or result.failed:
        raise RuntimeError(f"API answered {result.ok} requests with 200 and failed {result.failed}")
    return result


def _export(base_url: str, read_key: str, path: str) -> tuple[int, float]:
    """Rows of a CSV export read to the end, and the seconds it took."""
    request = urllib.request.Request(base_url + path, headers={
        "Authorization": f"Bearer {read_key}", "Accept": "text/csv"})
    started, lines = time.monotonic(), 0
    with urllib.request.urlopen(request, timeout=600) as answer:
        while chunk := answer.read(1 << 20):
            lines += chunk.count(b"\n")
    return lines - 1, time.monotonic() - started  # less the header


def _audiences(base_url: str, read_key: str, journeys: list[tuple[str, list[str]]],
               config: BenchConfig, results: Results) -> None:
    """Pages of 100 at random depths of the stage holding every customer, then its export."""
    journey, stage = journeys[-1][0], journeys[-1][1][0]
    path = f"/v1/journeys/{journey}/stages/{stage}/customers"
    rng = random.Random(4)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    pages = [f"{path}?limit={PAGE}&entered_after="
             f"{(start + timedelta(seconds=rng.randrange(31_000_000))).strftime('%Y-%m-%dT%H:%M:%SZ')}"
             for _ in range(2000)]
    page = _measure(base_url, read_key, pages, config)
    label = f"API audience page of {PAGE} ({config.api_customers:,} customers in the stage)"
    results.add("api.audience.p50_ms", f"{label}, p50", page.p50_ms, "ms")
    results.add("api.audience.p99_ms", f"{label}, p99", page.p99_ms, "ms")
    results.add("api.audience.requests_per_s", f"{label}, throughput", page.ok_per_s, "requests/s")
    rows, seconds = _export(base_url, read_key, path)
    if rows != config.api_customers:
        raise RuntimeError(f"the CSV export has {rows} rows, not {config.api_customers}")
    results.add("api.export.rows_per_s", f"API CSV export of a {rows:,}-customer stage", rows / seconds,
                "rows/s")
    log.info("%s: p50 %.2f ms, p99 %.2f ms; CSV export %d rows in %.1fs", label, page.p50_ms,
             page.p99_ms, rows, seconds)


def run(stack: BenchStack, config: BenchConfig, results: Results) -> None:
    url = stack.database("api")
    journeys = journey_stages(config.journeys_file)
    log.info("API dataset: %d customers (%d hot), %d touchpoints, %d journeys", config.api_customers,
             config.hot, config.touchpoints, len(journeys))
    started = time.monotonic()
    timings = asyncio.run(load_dataset(plain_url(url), config.api_customers, config.touchpoints,
                                       config.hot, journeys))
    log.info("API dataset loaded in %.0fs%s", time.monotonic() - started,
             "; checkpoint done" if stack.checkpoint() else "")
    api = stack.start_service("api", "api", url, stack.topic("api"))
    read_key = stack.keys[url]["read"]
    journey = journeys[0][0]
    items = asyncio.run(_check(api.base_url, read_key, journey, config.api_customers))
    if items != PAGE:
        raise RuntimeError(f"a hot customer's first timeline page has {items} items, not {PAGE}")

    counts = _measure(api.base_url, read_key, [f"/v1/journeys/{journey}/stages"], config)
    hot = list(range(config.hot))
    random.Random(9).shuffle(hot)
    timeline = _measure(api.base_url, read_key,
                        [f"/v1/customers/{api_customer(n)}/timeline?limit={PAGE}" for n in hot], config)
    for prefix, label, result in (
        ("api.counts", f"API stage counts ({config.api_customers:,} customers)", counts),
        ("api.timeline", f"API timeline page of {PAGE} ({config.touchpoints:,} touchpoints)", timeline),
    ):
        results.add(f"{prefix}.p50_ms", f"{label}, p50", result.p50_ms, "ms")
        results.add(f"{prefix}.p99_ms", f"{label}, p99", result.p99_ms, "ms")
        results.add(f"{prefix}.requests_per_s", f"{label}, throughput", result.ok_per_s, "requests/s")
        log.info("%s: p50 %.2f ms, p99 %.2f ms, %.0f requests/s (%s)", label, result.p50_ms,
                 result.p99_ms, result.ok_per_s, result.generator)
    _audiences(api.base_url, read_key, journeys, config, results)
    results.details["api"] = {"load_seconds": timings, "journey": journey, "hot_customers": config.hot,
                              "connections": config.api_connections, "page_items": items}
    stack.stop_services("api")
