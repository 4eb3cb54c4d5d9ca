"""What the API's path and query parameters may hold, declared once for every route taking one.

Each rule is the contract's own (a customer id as events carry it, a journey name as journey
files define it, a key id as keys are made), so FastAPI refuses a value that could not name
anything with 422 `invalid_request` before a route runs: it never reaches Postgres (which
refuses a NUL with an error) nor the topic (an erase request for it). A value that could name
something but does not is the route's 404.
"""

from typing import Annotated

from fastapi import Path, Query, Request
from fastapi.dependencies.models import Dependant

from stageline_shared.contract.client_event import CustomerId
from stageline_shared.contract.limits import CUSTOMER_ID
from stageline_shared.errors import ApiError
from stageline_shared.journeys import Name
from stageline_shared.keys import KEY_ID_PATTERN

CustomerIdPath = Annotated[CustomerId, Path(
    description=f"Any of the customer's ids, percent-encoded: {CUSTOMER_ID.min}-{CUSTOMER_ID.max} "
                "characters, not blank, no control characters")]
JourneyPath = Annotated[Name, Path(description="A journey's name")]
StagePath = Annotated[Name, Path(description="One of the journey's stages")]
JourneyQuery = Annotated[Name | None, Query(description="Only this journey")]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page")]
KeyIdPath = Annotated[str, Path(pattern=KEY_ID_PATTERN, description="The key's id")]


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def single_values(request: Request) -> None:
    """Dependency: a query parameter the route takes is given at most once.

    FastAPI would read the last of `?limit=1&limit=500` and ignore the rest; which one a client
    meant is anyone's guess. Parameters the route does not take are ignored, repeated or not."""
    route = request.scope.get("route")
    dependant: Dependant | None = getattr(route, "dependant", None)
    if dependant is None:
        return
    params = request.query_params
    repeated = sorted(name for name in _query_names(dependant) if len(params.getlist(name)) > 1)
    if repeated:
        raise ApiError(422, "invalid_request",
                       "; ".join(f"query.{name}: must be given at most once" for name in repeated))
