"""What the OpenAPI document says of every ingest route: the refusals any route may answer
before it reads an event, and the shape of one refused event."""

from pydantic import BaseModel, Field

from stageline_shared.errors import error_docs


class Rejected(BaseModel):
    index: int = Field(description="The event's position in the batch (0 for a body of one event)")
    error: str = Field(description="What is wrong with it, naming the field")
    code: str | None = Field(default=None, description="Segment routes: a machine-readable reason")


# Any route may refuse a request before looking at its events.
INGEST_ERRORS = error_docs({
    400: "The body is not JSON (or not valid gzip), or not an event or a batch; or the URL is not "
         "UTF-8 once percent-decoded",
    401: "No write key, or an unknown or revoked one",
    403: "A key that is not a write key",
    413: "The body, or one event, is over its size limit, or the batch has too many events",
    415: "A Content-Encoding other than gzip or identity",
    429: "This key is over its request rate; retry after Retry-After",
    503: "The broker or the database is unavailable: nothing was stored; retry after Retry-After",
})
