"""Ingest as several uvicorn workers: /metrics sums every worker, whichever one answers it.

The service runs as a real process tree; requests spread over the workers through the shared
listening socket, and a worker killed with SIGKILL is replaced without losing its counts.
"""

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from stageline_devstack.processes import ServiceProcess
from tests.fixtures.polling import metric
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

GOOD = {"customer_id": "c-1", "event": "Product Viewed"}
BATCH = {"batch": [GOOD] * 9 + [{"customer_id": 5, "event": "x"}]}  # 9 accepted, 1 rejected


def workers(service: ServiceProcess) -> list[int]:
    """The uvicorn worker processes under the service (spawned children, not the tracker)."""
    assert service.process is not None
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == service.process.pid and b"multiprocessing.spawn" in cmdline \
                and b"resource_tracker" not in cmdline:
            found.append(int(entry))
    return sorted(found)


def metrics_dir_of(worker: int) -> Path:
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    [value] = [v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(value.split(b"=", 1)[1].decode())


def accepted_by(directory: Path, worker: int) -> float:
    """What one worker's own counter file says it accepted."""
    path = directory / f"counter_{worker}.db"
    if not path.exists():
        return 0.0
    return sum(value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))
               if '"stageline_ingest_events_accepted_total"' in key)


async def post(url: str, key: str) -> None:
    # A connection per request, so the kernel hands each one to whichever worker accepts first.
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url}/v1/events", json=BATCH, auth=(key, ""))
        assert response.status_code == 202, response.text


async def send_until_every_worker_served(url: str, key: str, directory: Path, pids: list[int]) -> int:
    """Rounds of concurrent requests until each worker accepted some; returns requests sent."""
    sent = 0
    deadline = time.monotonic() + 60
    while not all(accepted_by(directory, pid) for pid in pids) or sent < 40:
        assert time.monotonic() < deadline, f"not every worker got requests: {pids}"
        await asyncio.gather(*(post(url, key) for _ in range(20)))
        sent += 20
    return sent


async def assert_metrics_sum(url: str, requests: int) -> None:
    expected = {
        ("stageline_ingest_events_accepted_total", ()): 9 * requests,
        ("stageline_ingest_events_rejected_total", (("reason", "invalid"),)): requests,
        ("stageline_ingest_produce_duration_seconds_count", ()): requests,
        # Observed just after the answer is sent, so it may trail the last answers a moment.
        ("stageline_http_request_duration_seconds_count",
         (("service", "ingest"), ("route", "/v1/events"), ("method", "POST"), ("status", "202"))): requests,
    }
    answers = 0
    deadline = time.monotonic() + 10
    while answers < 6:  # fresh connections: answered by one worker or another, always the sum
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(f"{url}/metrics")).text
        found = {key: metric(text, key[0], **dict(key[1])) for key in expected}
        if found == expected:
            answers += 1
        else:
            assert time.monotonic() < deadline, f"metrics are not the sum: {found} != {expected}"
            await asyncio.sleep(0.1)


async def assert_process_metrics(url: str, pids: list[int]) -> None:
    """Each live worker's own process_* metrics, labelled by its pid, whoever answers."""
    for _ in range(4):
        async with httpx.AsyncClient(timeout=30) as client:
            text = (await client.get(f"{url}/metrics")).text
        for pid in pids:
            rss = metric(text, "process_resident_memory_bytes", pid=str(pid))
            assert 10 * 2**20 < rss < 2**31, (pid, rss)
            assert metric(text, "process_cpu_seconds_total", pid=str(pid)) > 0, pid
        served = {s.labels["pid"] for family in text_string_to_metric_families(text)
                  for s in family.samples if s.name == "process_resident_memory_bytes"}
        assert served == {str(pid) for pid in pids}, "only live workers, each once"
        # Measured by the answering worker for this scrape: one value each, not a sum.
        for dependency in ("broker", "database"):
            assert metric(text, "stageline_dependency_up", dependency=dependency) == 1, dependency


async def test_two_workers_share_the_load_and_metrics_are_summed(stack: Stack) -> None:
    url = stack.start_ingest(STAGELINE_INGEST_WORKERS="2")
    service = stack.processes[-1]
    pids = workers(service)
    assert len(pids) == 2, pids
    directory = metrics_dir_of(pids[0])

    requests = await send_until_every_worker_served(url, stack.write_key, directory, pids)
    await assert_metrics_sum(url, requests)
    await assert_process_metrics(url, pids)

    # A worker killed outright is replaced; the counts it made stay in the sum.
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while len(current := workers(service)) != 2 or pids[0] in current:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        await asyncio.sleep(0.2)
    # Listed as soon as it is spawned, the new worker has metrics only once it serves requests.
    requests += await send_until_every_worker_served(url, stack.write_key, directory, current)
    await assert_metrics_sum(url, requests)
    await assert_process_metrics(url, current)  # the killed worker's files stay; its pid does not

    # SIGTERM stops the workers and the parent cleanly, and the metrics directory goes with them.
    assert service.stop() == 0
    assert not directory.exists()


async def test_a_configured_metrics_dir_is_emptied_at_start(stack: Stack, tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"stale")
    url = stack.start_ingest(STAGELINE_INGEST_WORKERS="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    assert not (directory / "counter_1.db").exists()
    pids = workers(stack.processes[-1])
    requests = await send_until_every_worker_served(url, stack.write_key, directory, pids)
    await assert_metrics_sum(url, requests)
