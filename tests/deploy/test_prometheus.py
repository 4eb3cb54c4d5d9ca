"""Debian's real Prometheus against a running stack: it scrapes every service, evaluates every
dashboard query without error, and fires the alerts when a record is dead-lettered and when a
stager is killed under load.

Prometheus runs with deploy/prometheus/prometheus.yml's jobs pointed at this test's processes,
scraping every 2 s and evaluating every second, and with alerts.yml's rules as they are but for
their `for:`, shortened to a few seconds (alerts_test.yml tests the production durations).
"""

import asyncio
import contextlib
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from stageline_devstack.ports import free_port
from stageline_devstack.processes import ServiceProcess
from tests.fixtures.events import make_events, post_events
from tests.fixtures.monitoring import (
    ALERTS,
    PENDING_METRICS,
    PROMETHEUS_CONFIG,
    Target,
    dashboard,
    targets,
    tool,
)
from tests.fixtures.polling import wait_for
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

# Scrapes 2 s apart, each allowed 2 s: on two shared cores a busy stager can answer one late.
SCRAPE = {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "1s"}
SHORT_FOR = "5s"  # three failed scrapes in a row, not one slow one
# A healthy stack under load has no series for these: their queries may answer empty (and the
# pending metrics until a service exports them). Every other query must return data.
# Queries with data only after a fault (or, for webhook attempts, once an endpoint is registered:
# this stack has none).
FAULT_ONLY = ('status="503"', 'status=~"5..', 'status=~"4..', "stageline_stager_db_retries_total",
              'ALERTS{alertstate="firing"}', "stageline_webhook_deliveries_total", *PENDING_METRICS)


def host_port(base_url: str) -> str:
    return urlsplit(base_url).netloc


def shortened_rules(path: Path) -> Path:
    """alerts.yml with every `for:` at SHORT_FOR, written to `path`."""
    document = yaml.safe_load(ALERTS.read_text())
    for group in document["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = SHORT_FOR
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def scrape_config(targets_by_job: dict[str, list[str]], rules: Path) -> dict[str, Any]:
    """prometheus.yml with its jobs (names kept: the rules select them) on static targets."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"] = dict(SCRAPE)
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": targets_by_job.pop(job["job_name"])}]
    assert not targets_by_job, f"jobs prometheus.yml does not have: {sorted(targets_by_job)}"
    return config


@contextlib.contextmanager
def prometheus(config: dict[str, Any], port: int, workdir: Path) -> Iterator[str]:
    """Debian's prometheus with `config` on `port`, its data in `workdir`; yields its base URL."""
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    check = subprocess.run([tool("promtool"), "check", "config", str(config_file)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    with (workdir / "prometheus.log").open("ab") as log:
        process = subprocess.Popen(
            [tool("prometheus"), f"--config.file={config_file}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not ready(url):
            assert process.poll() is None, "prometheus exited: " + (workdir / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus was not ready within 60s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def query(client: httpx.AsyncClient, url: str, expr: str) -> list[dict[str, Any]]:
    """An instant query's result; fails on anything but status success."""
    response = await client.get(f"{url}/api/v1/query", params={"query": expr})
    body = response.json()
    assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def alerts(client: httpx.AsyncClient, url: str, name: str, state: str) -> list[dict[str, str]]:
    """The labels of every `name` alert in `state` (pending, firing)."""
    response = await client.get(f"{url}/api/v1/alerts")
    assert response.status_code == 200, response.text
    return [alert["labels"] for alert in response.json()["data"]["alerts"]
            if alert["labels"]["alertname"] == name and alert["state"] == state]


@contextlib.asynccontextmanager
async def steady_load(stack: Stack, ingest: str, api: str) -> AsyncIterator[list[int]]:
    """About 10 requests a second to ingest, 50 new events each; every fifth round also a request
    with a refused event and a duplicate, and a read from the API. Yields the count accepted."""
    accepted = [0]
    stopping = asyncio.Event()

    async def send() -> None:
        round_ = 0
        async with stack.client() as client:
            while not stopping.is_set():
                round_ += 1
                events = make_events(customers=40, events=50, seed=round_)
                accepted[0] += await post_events(client, ingest, events, stack.write_key, batch=50)
                if round_ % 5 == 0:
                    # One refused (customer_id not a string), one accepted again (a duplicate).
                    body = {"batch": [{"customer_id": 7, "event": "x"}, *events[:1]]}
                    refused = await client.post(f"{ingest}/v1/events", auth=(stack.write_key, ""), json=body)
                    assert refused.status_code == 202, refused.text
                    assert (await client.get(f"{api}/v1/journeys/shop/stages")).status_code == 200
                await asyncio.sleep(0.1)

    task = asyncio.create_task(send())
    try:
        yield accepted
    finally:
        stopping.set()
        await task  # raises what the load met: every request must have been answered 2xx


async def test_prometheus_scrapes_the_stack_evaluates_the_dashboard_and_alerts(
    stack: Stack, tmp_path: Path
) -> None:
    # Ingest as docker-compose runs it: two workers, /metrics summed over them.
    ingest = stack.start_ingest(STAGELINE_INGEST_WORKERS="2")
    api = stack.start_api()
    stagers: list[ServiceProcess] = [stack.start_stager(), stack.start_stager()]
    dispatcher = stack.start_dispatcher()
    port = free_port()
    jobs = {"prometheus": [f"127.0.0.1:{port}"], "stageline-ingest": [host_port(ingest)],
            "stageline-api": [host_port(api)], "stageline-stager": [host_port(s.base_url) for s in stagers],
            "stageline-dispatcher": [host_port(dispatcher.base_url)]}
    config = scrape_config(jobs, shortened_rules(tmp_path / "alerts.yml"))
    with prometheus(config, port, tmp_path) as url:
        async with steady_load(stack, ingest, api) as accepted, httpx.AsyncClient(timeout=30) as client:
            await until(client, url, lambda: every_target_up(client, url), 90, "every target scraped")
            applying = "sum(rate(stageline_stager_events_applied_total[15s])) > 0"
            await until(client, url, lambda: has_data(client, url, applying), 90, "applied events")
            await dead_letter_one(stack)
            dead_lettered = "sum(stageline_stager_dead_lettered_total) > 0"
            await until(client, url, lambda: has_data(client, url, dead_lettered), 60, "the dead letter")

            empty = [target for target in targets(dashboard())
                     if not await query(client, url, target.promql())]
            unexpected = [f"{t.panel} {t.ref_id}: {t.expr}" for t in empty if not fault_only(t)]
            assert not unexpected, f"dashboard queries without data on a loaded stack: {unexpected}"

            # Each process's broker and database check, one series each (ingest's two workers too).
            await until(client, url, lambda: dependencies_up(client, url), 30, "every dependency up")
            await until(client, url, lambda: alert_in(client, url, "DeadLettersAppearing", "firing",
                                                      reason="undecodable"),
                        60, "DeadLettersAppearing to fire")
            assert await alerts(client, url, "StagerDown", "firing") == [], await state(client, url)

            killed, survivor = (host_port(s.base_url) for s in stagers)
            stagers[0].kill()  # SIGKILL under load: the other stager takes its partitions
            before = accepted[0]
            await until(client, url, lambda: alert_in(client, url, "StagerDown", "firing", instance=killed),
                        90, "StagerDown to fire for the killed stager")
            [labels] = [a for a in await alerts(client, url, "StagerDown", "firing")
                        if a["instance"] == killed]
            assert labels["severity"] == "warning"
            await until(client, url, lambda: has_data(client, url, f'up{{instance="{survivor}"}} == 1'),
                        30, "the other stager up")
            assert await alerts(client, url, "NoStagerRunning", "firing") == []
            assert accepted[0] > before, "the load went on while the stager was down"


async def until(client: httpx.AsyncClient, url: str, predicate: Callable[[], Awaitable[bool]],
                timeout_s: float, what: str) -> None:
    """wait_for, saying on timeout what Prometheus saw: its targets' health and its alerts."""
    try:
        await wait_for(predicate, timeout_s, what, interval_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; {await state(client, url)}") from None


async def state(client: httpx.AsyncClient, url: str) -> str:
    active = (await client.get(f"{url}/api/v1/targets")).json()["data"]["activeTargets"]
    health = [(t["labels"]["job"], t["labels"]["instance"], t["health"], t["lastError"]) for t in active]
    found = (await client.get(f"{url}/api/v1/alerts")).json()["data"]["alerts"]
    return f"targets {health}, alerts {[(a['labels'], a['state']) for a in found]}"


async def dependencies_up(client: httpx.AsyncClient, url: str) -> bool:
    up = await query(client, url, "stageline_dependency_up")
    return {(r["metric"]["job"], r["metric"]["dependency"], r["value"][1]) for r in up} == {
        (job, dependency, "1")
        for job in ("stageline-ingest", "stageline-stager", "stageline-dispatcher", "stageline-api")
        for dependency in ("broker", "database")}


def fault_only(target: Target) -> bool:
    return any(fragment in target.expr for fragment in FAULT_ONLY)


async def every_target_up(client: httpx.AsyncClient, url: str) -> bool:
    """Prometheus itself, ingest, both stagers, the dispatcher and the API, each scraped successfully."""
    response = await client.get(f"{url}/api/v1/targets")
    active = response.json()["data"]["activeTargets"]
    healthy = sorted(t["labels"]["job"] for t in active if t["health"] == "up")
    return healthy == ["prometheus", "stageline-api", "stageline-dispatcher", "stageline-ingest",
                       "stageline-stager", "stageline-stager"]


async def has_data(client: httpx.AsyncClient, url: str, expr: str) -> bool:
    return bool(await query(client, url, expr))


async def alert_in(client: httpx.AsyncClient, url: str, name: str, state: str, **labels: str) -> bool:
    return any(all(found.get(k) == v for k, v in labels.items())
               for found in await alerts(client, url, name, state))


async def dead_letter_one(stack: Stack) -> None:
    """A record that is not JSON, written to the topic around ingest."""
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(stack.topic, b"\xff not a touchpoint")
    finally:
        await producer.stop()
