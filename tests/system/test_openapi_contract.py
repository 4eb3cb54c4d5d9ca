"""Every answer is one the OpenAPI documents promise: schemathesis generates requests, valid and
invalid, from each service's own document and checks every response's status, body, content
type and headers against it, and that none is a 5xx. Its hooks (schemathesis_hooks.py) mix
hostile path and query values into about half of the cases: NULs, control characters, blank
and over-long values, cursors that are not ours, parameters given twice.

Two of its checks are left out: the schemas cannot state every rule (blank or control-character
ids, timestamps, nesting depth, sizes), so a schema-valid request may be refused with a
documented 4xx, and a schema-invalid one may be refused with a status schemathesis does not
expect (413 for a body over the limit).
"""

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from stageline_shared.contract.client_event import TouchpointIn
from tests.fixtures.polling import topic_values
from tests.fixtures.stack import Stack

pytestmark = pytest.mark.integration

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXCLUDED = "positive_data_acceptance,negative_data_rejection"
HOOKS = Path(__file__).parents[1] / "fixtures" / "schemathesis_hooks.py"


def _fuzz(base_url: str, key: str, report: Path) -> tuple[subprocess.CompletedProcess[str], Counter[tuple[str, int]]]:
    """One schemathesis run; returns it and how often each (method path, status) was answered."""
    run = subprocess.run(
        [str(SCHEMATHESIS), "run", f"{base_url}/openapi.json", "-H", f"Authorization: Bearer {key}",
         "--checks", "all", "--exclude-checks", EXCLUDED, "--max-examples", "25", "--seed", "7",
         "--report", "har", "--report-har-path", str(report), "--no-color"],
        capture_output=True, text=True, timeout=300,
        cwd=report.parent,  # its example database too stays out of the checkout
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
    )
    answers: Counter[tuple[str, int]] = Counter()
    for entry in json.loads(report.read_text())["log"]["entries"]:
        path = urlsplit(entry["request"]["url"]).path
        answers[(f"{entry['request']['method']} {path}", entry["response"]["status"])] += 1
    return run, answers


def _statuses(answers: Counter[tuple[str, int]], request: str) -> set[int]:
    """The statuses answered to `request`: that path exactly, or under it when it ends in "/"
    (so "POST /v1/t" is not answered by POST /v1/track)."""
    return {status for (sent, status) in answers
            if sent == request or (request.endswith("/") and sent.startswith(request))}


async def test_every_answer_is_documented_and_none_is_a_server_error(stack: Stack, tmp_path: Path) -> None:
    ingest, api = stack.start_ingest(), stack.start_api()
    runs = [  # the admin run last: it may revoke the other keys (it lists and deletes keys)
        ("ingest", ingest, stack.keys["write"], ["POST /v1/events", "POST /v1/track", "POST /v1/batch",
                                                   "POST /v1/t", "POST /v1/b"]),
        ("read", api, stack.keys["read"], ["GET /v1/journeys", "GET /v1/customers/"]),
        ("admin", api, stack.keys["admin"], ["GET /v1/admin/keys", "POST /v1/admin/keys"]),
    ]
    for name, base_url, key, answered in runs:
        run, answers = _fuzz(base_url, key, tmp_path / f"{name}.har")
        assert run.returncode == 0, f"{name}: schemathesis found problems:\n{run.stdout[-6000:]}"
        assert not [a for a in answers if a[1] >= 500], name
        # Not vacuous: requests got through to the routes, not only refusals of the key.
        for request in answered:
            assert any(200 <= s < 300 for s in _statuses(answers, request)), (name, request, answers)
        assert sum(answers.values()) > 100, name
    # The admin run erased customers: only ids the contract lets an event carry reached the topic.
    records = [json.loads(value) for value in await topic_values(stack.bootstrap, stack.topic)]
    erased = [record["customer_id"] for record in records if record.get("type") == "erase"]
    assert erased, "no erase request was accepted"
    for customer_id in erased:
        TouchpointIn.model_validate({"customer_id": customer_id, "event": "Customer Erased"})


async def test_wrong_methods_and_unreadable_bodies_get_clear_errors(stack: Stack) -> None:
    api = stack.start_api()
    admin = {"Authorization": f"Bearer {stack.keys['admin']}"}
    async with stack.client(base_url=api) as client:
        # 405 names every method the path takes, not only those of the first route matched.
        refused = await client.put("/v1/admin/keys", headers=admin)
        assert (refused.status_code, refused.json()["code"]) == (405, "method_not_allowed")
        assert refused.headers["allow"] == "GET, POST"
        # A timeline is not erased on its own, and no customer "c-1/timeline" is erased instead.
        refused = await client.delete("/v1/customers/c-1/timeline", headers=admin)
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET")
        erased = await client.delete("/v1/customers/a%2Fb", headers=admin)  # ids may hold "/"
        assert erased.status_code == 202, erased.text
        # A body that is not UTF-8 is named as such, as ingest names it.
        unreadable = await client.post("/v1/admin/keys", headers={**admin, "Content-Type": "application/json"},
                                       content=b'{"kind": "\xff"}')
        assert unreadable.status_code == 400
        assert unreadable.json() == {"code": "malformed_json",
                                     "message": "request body is not valid JSON (UTF-8)"}
