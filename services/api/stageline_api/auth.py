"""Key checks for the API: a read key (or an admin key) for reads, an admin key to manage keys."""

from typing import Annotated

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stageline_shared.auth import authenticate
from stageline_shared.errors import ApiError, error_docs
from stageline_shared.keys import ApiKey, KeyKind

# auto_error=False: a missing key gets our JSON error, not FastAPI's; the scheme still shows in
# the OpenAPI document (and the /docs "Authorize" button).
bearer = HTTPBearer(auto_error=False, description="A read key for reads; an admin key for everything.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="stageline"'}

# Every route checks a key, and keys live in the database: any route may answer 503.
AUTH_ERRORS = error_docs({
    401: "No key, or an unknown or revoked one",
    403: "A key of the wrong kind",
    503: "The database is unavailable; retry after Retry-After",
})


async def _key_of(request: Request, credentials: HTTPAuthorizationCredentials | None,
                  allowed: tuple[KeyKind, ...]) -> ApiKey:
    if credentials is None or not credentials.credentials:
        raise ApiError(401, "missing_key", "an API key is required: Authorization: Bearer <key>",
                       headers=CHALLENGE)
    try:
        return await authenticate(request.app.state.keys, credentials.credentials, allowed)
    except ApiError as exc:
        if exc.status == 401:
            exc.headers = CHALLENGE
        raise


async def require_read_key(request: Request, credentials: Credentials) -> ApiKey:
    """Dependency: a read or admin key as a Bearer token."""
    return await _key_of(request, credentials, ("read", "admin"))


async def require_admin_key(request: Request, credentials: Credentials) -> ApiKey:
    """Dependency: an admin key as a Bearer token."""
    return await _key_of(request, credentials, ("admin",))
