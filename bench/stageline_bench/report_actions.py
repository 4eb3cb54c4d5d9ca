"""The report's targets and rows for acting on stages (issue 21): audiences, the dispatcher's
throughput against raw HTTP, and 2xx → webhook."""

from typing import Any

from stageline_bench.results import Results
from stageline_bench.target import Target, figure


def targets() -> list[Target]:
    return [
        Target("webhooks.dispatcher", "≥ 5,000 deliveries/s",
               figure("webhooks.dispatcher.deliveries_per_s"), lambda v: v >= 5000, ratio=False),
        Target("webhooks.e2e", "p99 < 1 s", figure("webhooks.e2e.p99_ms"), lambda v: v < 1000, ratio=False),
        Target("api.audience", "p99 < 10 ms", figure("api.audience.p99_ms"), lambda v: v < 10, ratio=False),
    ]


def rows(report: dict[str, Any], results: Results, number: Any, latency: Any) -> list[tuple[str, str, str]]:
    """(measurement, result, check id or reference); `number` and `latency` format as report.py's."""
    v = results.value
    raw, rate = v("webhooks.raw_http.requests_per_s"), v("webhooks.dispatcher.deliveries_per_s")
    share = f" ({rate / raw:.0%} of raw HTTP)" if raw and rate else ""
    details = report["details"].get("webhooks", {})
    cpu = details.get("cpu", {})
    cpu_text = (f"; dispatcher {cpu['cpu_us_per_event_dispatcher']:,.0f} µs and Postgres "
                f"{cpu.get('cpu_us_per_event_postgres', 0):,.0f} µs CPU per delivery") \
        if "cpu_us_per_event_dispatcher" in cpu else ""
    config = report["config"]
    return [
        ("Raw HTTP: aiohttp POSTs of one webhook body to the bench's receiver, 256 in flight",
         number(raw, "requests/s"), "reference"),
        (f"Dispatcher: {details.get('deliveries', 0):,} deliveries waiting, {details.get('dispatchers', 1)} "
         "dispatcher process(es), to that receiver", number(rate, "deliveries/s") + share + cpu_text,
         "webhooks.dispatcher"),
        (f"2xx → webhook received, at {config['rate']:,} events/s (an endpoint on the probes' stage)",
         latency(results, "webhooks.e2e"),
         "webhooks.e2e"),
        (f"API audience page of 100, {config['api_customers']:,} customers in the stage",
         latency(results, "api.audience"), "api.audience"),
        (f"API CSV export of a stage of {config['api_customers']:,} customers",
         number(v("api.export.rows_per_s"), "rows/s"), "—"),
    ]
