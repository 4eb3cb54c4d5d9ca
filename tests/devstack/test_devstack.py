"""`make run` (`python -m stageline_devstack run`) as on a fresh machine: its own broker and embedded
PostgreSQL, the four services used through HTTP with the keys it prints (a webhook to a receiver
on this machine included), and a clean stop by Ctrl-C or when the process that started it dies."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import httpx
import pytest

from stageline_devstack.broker import port_open
from stageline_devstack.ports import free_port

pytestmark = pytest.mark.integration

BANNER_END = "Ctrl-C stops everything."
STARTUP_S = 120.0
STOP_S = 60.0


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    output: Path
    data_dir: Path
    ports: dict[str, int]

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def key(self, kind: str) -> str:
        match = re.search(rf"^\s+{kind}\s+(\S+)", self.text(), re.MULTILINE)
        assert match, f"no {kind} key in the output of make run:\n{self.text()}"
        return match.group(1)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def all_stopped(self) -> bool:
        return not any(port_open("127.0.0.1", port) for port in self.ports.values()) and not (
            self.data_dir / "pgdata" / "postmaster.pid").exists()


def _wait(condition: Callable[[], bool], timeout_s: float, what: str, output: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s:.0f}s; output:\n{output.read_text(errors='replace')}")
        time.sleep(0.2)


def _start(tmp_path: Path, through_shell: bool) -> DevStack:
    """Start the stack with the defaults of a fresh machine (no DATABASE_URL, no broker), on free
    ports; `through_shell` puts a shell between it and this test, as make is in `make run`."""
    ports = {name: free_port() for name in ("broker", "api", "ingest", "stager", "dispatcher")}
    data_dir = tmp_path / "data"
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS") and not name.startswith("STAGELINE_")}
    env |= {f"STAGELINE_{name.upper()}_PORT": str(port) for name, port in ports.items()}
    env |= {"STAGELINE_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "stageline_devstack", "run"]
    if through_shell:  # `; true` keeps the shell from exec-ing python: it stays the parent
        command = ["sh", "-c", '"$0" "$@"; true', *command]
    output = tmp_path / "make-run.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    stack = DevStack(process, output, data_dir, ports)
    _wait(lambda: BANNER_END in stack.text() or process.poll() is not None, STARTUP_S,
          "make run did not come up", output)
    assert process.poll() is None, f"make run exited with {process.returncode}:\n{stack.text()}"
    return stack


@pytest.fixture
def make_run(tmp_path: Path) -> Iterator[Callable[[bool], DevStack]]:
    started: list[DevStack] = []

    def start(through_shell: bool = False) -> DevStack:
        started.append(_start(tmp_path, through_shell))
        return started[-1]

    yield start
    for stack in started:  # a failed test must not leave a stack running, orphaned or not
        with contextlib.suppress(ProcessLookupError):  # every process of the group is gone
            os.killpg(stack.process.pid, signal.SIGINT)
        _wait(stack.all_stopped, STOP_S, "the stack did not stop after the test", stack.output)


@contextlib.contextmanager
def receiver() -> Iterator[tuple[str, list[dict]]]:
    """A webhook receiver on this machine (make run allows loopback): the payloads it got."""
    received: list[dict] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Hook)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


def test_make_run_serves_the_whole_system_and_stops_on_ctrl_c(make_run: Callable[[bool], DevStack]) -> None:
    stack = make_run(False)
    write, read, admin = stack.key("write"), stack.key("read"), stack.key("admin")
    events = [
        {"customer_id": "c-1", "event": "Ad Clicked", "channel": "ads", "occurred_at": "2026-11-01T10:00:00Z"},
        {"customer_id": "c-1", "event": "Product Added", "channel": "web", "occurred_at": "2026-11-01T10:05:00Z"},
        {"customer_id": "c-2", "event": "Order Completed", "channel": "web", "occurred_at": "2026-11-02T09:00:00Z"},
        {"customer_id": "c-2", "event": "Order Completed", "channel": "web", "occurred_at": "2026-11-03T09:00:00Z"},
    ]
    with httpx.Client(timeout=10) as http, receiver() as (hook_url, received):
        registered = http.post(f"{stack.url('api')}/v1/admin/webhooks", json={"url": hook_url},
                               headers={"Authorization": f"Bearer {admin}"})
        assert registered.status_code == 201, registered.text
        answer = http.post(f"{stack.url('ingest')}/v1/events", json={"batch": events}, auth=(write, ""))
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 4
        reader = {"Authorization": f"Bearer {read}"}
        expected = {"journey": "ecommerce", "total": 2,
                    "stages": [{"stage": stage, "customers": {"intent": 1, "loyalty": 1}.get(stage, 0)}
                               for stage in ("awareness", "interest", "consideration", "intent",
                                             "purchase", "retention", "loyalty", "advocacy")]}

        def counted() -> bool:
            counts = http.get(f"{stack.url('api')}/v1/journeys/ecommerce/stages", headers=reader)
            assert counts.status_code == 200, counts.text
            return bool(counts.json() == expected)

        _wait(counted, 30, "the stage counts did not show the 4 events", stack.output)
        timeline = http.get(f"{stack.url('api')}/v1/customers/c-1/timeline", headers=reader).json()
        touchpoints = [item["event"] for item in timeline["items"] if item["type"] == "touchpoint"]
        assert sorted(touchpoints) == ["Ad Clicked", "Product Added"]
        metrics = http.get(f"{stack.url('ingest')}/metrics").text
        assert re.search(r"^stageline_ingest_events_accepted_total 4\.0$", metrics, re.MULTILINE), metrics
        audience = http.get(f"{stack.url('api')}/v1/journeys/ecommerce/stages/intent/customers",
                            headers=reader).json()
        assert [c["customer_id"] for c in audience["customers"]] == ["c-1"]
        # ecommerce alone moves the two customers four times; each change of every journey is in
        # the feed and reaches the receiver.
        def delivered() -> bool:
            feed = http.get(f"{stack.url('api')}/v1/changes", headers=reader).json()["changes"]
            return len([c for c in feed if c["journey"] == "ecommerce"]) == 4 and \
                sorted(r["data"]["position"] for r in received) == [c["position"] for c in feed]

        _wait(delivered, 30, "every change in the feed and at the receiver", stack.output)

    stack.process.send_signal(signal.SIGINT)  # Ctrl-C
    assert stack.process.wait(STOP_S) == 0
    _wait(stack.all_stopped, 10, "ports or Postgres still up after Ctrl-C", stack.output)
    assert "all stopped" in stack.text()


def test_make_run_stops_when_what_started_it_dies(make_run: Callable[[bool], DevStack]) -> None:
    """make killed with SIGKILL (or a closed terminal's shell) must not leave the stack running."""
    stack = make_run(True)
    stack.process.kill()  # the shell standing in for make
    stack.process.wait()
    _wait(lambda: "all stopped" in stack.text(), STOP_S, "the orphaned stack did not stop", stack.output)
    assert "the process that started the stack" in stack.text()
    assert stack.all_stopped()
