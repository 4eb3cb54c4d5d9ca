"""Write-key checks and per-key rate limits for ingest routes."""

from fastapi import Request

from stageline_shared.auth import authenticate, presented_key
from stageline_shared.errors import ApiError
from stageline_shared.keys import ApiKey


async def check_write_key(request: Request, secret: str | None) -> ApiKey:
    """The write key for `secret`, within its rate: else 401, 403 or 429 with Retry-After."""
    key = await authenticate(request.app.state.keys, secret, {"write"})
    wait = request.app.state.rate_limiter.retry_after(key.id)
    if wait is not None:
        raise ApiError(429, "rate_limited", "this key is over its request rate; slow down",
                       headers={"Retry-After": str(max(1, round(wait + 0.5)))})
    return key


async def require_write_key(request: Request) -> ApiKey:
    """Dependency: a write key in the Authorization header (Basic username or Bearer)."""
    return await check_write_key(request, presented_key(request))
