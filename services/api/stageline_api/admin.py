"""Admin routes (an admin key only): create, list and revoke API keys.

A secret exists in exactly one place after creation: the 201 response. The database keeps its
SHA-256, and nothing here logs either.
"""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncEngine

from stageline_api.auth import AUTH_ERRORS, require_admin_key
from stageline_api.params import KeyIdPath
from stageline_api.schemas import KeyCreated, KeyIn, KeyList, KeyOut
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.keys import create_key, list_keys, revoke_key

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin_key)],
                   responses=AUTH_ERRORS)


@router.post("/keys", status_code=201, responses=error_docs({
    400: "The body is not JSON, or the URL is not UTF-8 once percent-decoded",
    422: "Invalid kind, source or name"}))
async def create(request: Request, body: KeyIn) -> KeyCreated:
    """Create a key. The secret (`key`) is in this response only: store it now."""
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        try:
            key, secret = await create_key(conn, body.kind, body.source, body.name)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from None
    return KeyCreated(id=key.id, kind=key.kind, source=key.source, name=key.name, key=secret)


@router.get("/keys")
async def list_all(request: Request) -> KeyList:
    """Every key, revoked ones included (with `revoked_at`); never secrets or their hashes."""
    engine: AsyncEngine = request.app.state.db
    async with engine.connect() as conn:
        rows = await list_keys(conn)
    return KeyList(keys=[KeyOut(**row) for row in rows])


@router.delete("/keys/{key_id}", status_code=204,
               responses=error_docs({404: "No live key has this id",
                                     422: "Not a key id (key_ and 12 hexadecimal digits)"}))
async def revoke(request: Request, key_id: KeyIdPath) -> Response:
    """Revoke a key. Services notice within STAGELINE_KEY_CACHE_S seconds (their lookup cache)."""
    engine: AsyncEngine = request.app.state.db
    async with engine.begin() as conn:
        revoked = await revoke_key(conn, key_id)
    if not revoked:
        raise ApiError(404, "unknown_key", f"no live key has id {key_id[:100]!r}")
    return Response(status_code=204)
