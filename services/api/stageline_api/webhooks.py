"""Admin routes for webhooks (an admin key only): register, list, delete, rotate a secret, enable
again, list deliveries, replay. The dispatcher (services/dispatcher) sends them."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_api import cursor as cursors
from stageline_api import webhook_store
from stageline_api.auth import AUTH_ERRORS, require_admin_key
from stageline_api.params import single_values
from stageline_api.schemas import (
    DeliveryList,
    DeliveryOut,
    Replayed,
    SecretRotated,
    WebhookCreated,
    WebhookIn,
    WebhookList,
    WebhookOut,
)
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.journeys import Journey
from stageline_shared.webhook_targets import TargetRefused, check_url

router = APIRouter(prefix="/v1/admin/webhooks", tags=["webhooks"],
                   dependencies=[Depends(require_admin_key), Depends(single_values)],
                   responses=AUTH_ERRORS)

EndpointId = Annotated[str, Path(pattern=webhook_store.ENDPOINT_ID_PATTERN,
                                 description="The endpoint's id")]
UNKNOWN = error_docs({404: "No endpoint has this id",
                      422: "Not an endpoint id (wh_ and 12 hexadecimal digits), or a bad parameter"})


def _unknown(endpoint_id: str) -> ApiError:
    return ApiError(404, "unknown_webhook", f"no webhook endpoint has id {endpoint_id!r}")


def _check_filters(journeys: dict[str, Journey], body: WebhookIn) -> None:
    """Every journey named exists, and every stage is one of those journeys' (or any's)."""
    for name in body.journeys or []:
        if name not in journeys:
            raise ApiError(422, "invalid_request", f"body.journeys: journey {name!r} is not defined; "
                           f"known journeys: {', '.join(journeys)}")
    scope = [journeys[n] for n in body.journeys] if body.journeys else list(journeys.values())
    stages = {s for j in scope for s in j.stages}
    for stage in body.to_stages or []:
        if stage not in stages:
            raise ApiError(422, "invalid_request",
                           f"body.to_stages: {stage!r} is not a stage of the journeys it listens to")


def _out(row: object) -> WebhookOut:
    return WebhookOut.model_validate(row, from_attributes=True)


@router.post("", status_code=201, responses=error_docs({
    400: "The body is not JSON",
    422: "A URL that is not http(s), points at a refused address, or filters naming unknown "
         "journeys or stages"}))
async def register(request: Request, body: WebhookIn) -> WebhookCreated:
    """Register an endpoint. The signing secret (`secret`, `whsec_…`) is in this response only."""
    _check_filters(request.app.state.journeys, body)
    try:
        url = check_url(str(body.url), request.app.state.settings.webhook_allow)
    except TargetRefused as exc:
        raise ApiError(422, "invalid_request", f"body.url: {exc}") from None
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        row, secret = await webhook_store.create_endpoint(conn, url, body.journeys, body.to_stages,
                                                          body.description)
    return WebhookCreated(**_out(row).model_dump(), secret=secret)


@router.get("")
async def list_all(request: Request) -> WebhookList:
    """Every endpoint, disabled ones with when and why; never secrets."""
    engine: AsyncEngine = request.app.state.db
    async with engine.connect() as conn:
        rows = await webhook_store.list_endpoints(conn)
    return WebhookList(webhooks=[_out(row) for row in rows])


@router.get("/{endpoint_id}", responses=UNKNOWN)
async def get_one(request: Request, endpoint_id: EndpointId) -> WebhookOut:
    engine: AsyncEngine = request.app.state.db
    async with engine.connect() as conn:
        row = await webhook_store.get_endpoint(conn, endpoint_id)
    if row is None:
        raise _unknown(endpoint_id)
    return _out(row)


@router.delete("/{endpoint_id}", status_code=204, responses=UNKNOWN)
async def delete(request: Request, endpoint_id: EndpointId) -> Response:
    """Delete an endpoint; its pending deliveries are dropped, never sent."""
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        if not await webhook_store.delete_endpoint(conn, endpoint_id):
            raise _unknown(endpoint_id)
    return Response(status_code=204)


@router.post("/{endpoint_id}/rotate-secret", responses=UNKNOWN)
async def rotate(
    request: Request, endpoint_id: EndpointId,
    grace_seconds: Annotated[float, Query(ge=0, le=7 * 86400, description=(
        "How long the current secret stays valid: both signatures are sent meanwhile"))] = 86400,
) -> SecretRotated:
    """A new signing secret, shown in this response only; the old one keeps working for
    `grace_seconds` (default a day), so receivers can switch without missing a delivery."""
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        rotated = await webhook_store.rotate_secret(conn, endpoint_id, grace_seconds)
    if rotated is None:
        raise _unknown(endpoint_id)
    return SecretRotated(id=endpoint_id, secret=rotated[0], previous_secret_until=rotated[1])


@router.post("/{endpoint_id}/enable", responses=UNKNOWN)
async def enable(request: Request, endpoint_id: EndpointId) -> WebhookOut:
    """Enable a disabled endpoint again: its pending deliveries resume, new changes reach it."""
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        if not await webhook_store.enable_endpoint(conn, endpoint_id):
            raise _unknown(endpoint_id)
        row = await webhook_store.get_endpoint(conn, endpoint_id)
    return _out(row)


@router.get("/{endpoint_id}/deliveries", responses=UNKNOWN | error_docs({
    400: "A cursor this API did not return"}))
async def list_deliveries(
    request: Request, endpoint_id: EndpointId,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|failed)$",
                                        description="Only deliveries in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(description="The `next_cursor` of the previous page")] = None,
) -> DeliveryList:
    """The endpoint's deliveries, newest first: status, attempts, last response, latency."""
    before = None if cursor is None else cursors.position(cursor)
    engine: AsyncEngine = request.app.state.db
    async with engine.connect() as conn:
        if await webhook_store.get_endpoint(conn, endpoint_id) is None:
            raise _unknown(endpoint_id)
        rows = await webhook_store.deliveries(conn, endpoint_id, status, before, limit + 1)
    page = rows[:limit]
    return DeliveryList(
        deliveries=[DeliveryOut.model_validate(row, from_attributes=True) for row in page],
        next_cursor=str(page[-1].id) if len(rows) > limit else None)


@router.post("/{endpoint_id}/replay", status_code=202, responses=UNKNOWN)
async def replay(
    request: Request, endpoint_id: EndpointId,
    since: Annotated[datetime, Query(description="Resend every change recorded at or after this time")],
) -> Replayed:
    """Send again, in feed order, every change since `since` that the endpoint's filters take,
    with the same `webhook-id` as the first time: a receiver that deduplicates by it keeps what
    it has, one that lost a delivery gets it back."""
    if since.tzinfo is None:
        raise ApiError(422, "invalid_request", "query.since: give a time zone (e.g. 2026-12-03T10:00:00Z)")
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        if await webhook_store.get_endpoint(conn, endpoint_id) is None:
            raise _unknown(endpoint_id)
        queued = await webhook_store.replay(conn, endpoint_id, since)
    return Replayed(id=endpoint_id, queued=queued)
