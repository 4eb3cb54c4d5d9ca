"""/healthz and /readyz, the same in every service (reads app.state.settings and app.state.db;
app.state.needs_database=False makes readiness depend on the broker alone)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from stageline_shared.errors import json_response
from stageline_shared.health import readiness

router = APIRouter(tags=["probes"])


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]  # "broker", "database": reachable or not


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "alive"}


@router.get("/readyz", response_model=Readiness, responses={
    503: {"model": Readiness, "description": "The broker or the database is not reachable"}})
async def readyz(request: Request) -> Response:
    """Broker and database reachable: 200, else 503 naming which is not."""
    state = request.app.state
    ready, checks = await readiness(state.settings.kafka_bootstrap_servers, state.db,
                                    getattr(state, "needs_database", True))
    return json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
