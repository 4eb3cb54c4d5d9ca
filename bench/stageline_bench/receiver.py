"""`python -m stageline_bench.receiver PORT`: the bench's webhook receiver, as cheap as a receiver
gets (answer 204, note when each customer's first webhook arrived), in its own process.

GET /stats: {"requests": n, "first_seen": {customer_id: monotonic seconds}} for customers whose
id contains "probe" (the steady load's probes), so the bench can time 2xx → webhook.
"""

import sys
import time

import orjson
from aiohttp import web


def main(port: int) -> None:
    stats: dict[str, object] = {"requests": 0}
    first_seen: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        stats["requests"] = int(stats["requests"]) + 1  # type: ignore[call-overload]
        if b"probe" in body:
            customer = orjson.loads(body)["data"]["customer_id"]
            first_seen.setdefault(customer, time.monotonic())
        return web.Response(status=204)

    async def get_stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps({"requests": stats["requests"], "first_seen": first_seen}),
                            content_type="application/json")

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", get_stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main(int(sys.argv[1]))
