"""The touchpoint contract, in one place: what clients may send, what travels on the topic.

- `limits`: every number of the contract (lengths, sizes, depth, skew, wire version).
- `checks`: what no type can say (printable, storable, nesting depth, RFC 3339 times).
- `client_event`: one event as a client sends it: `TouchpointIn` (pydantic: named errors,
  OpenAPI) beside `PlainEvent` (msgspec: ingest's fast decoding), both from the same limits.
- `record`: one touchpoint on the topic: `Touchpoint` (pydantic) beside `TouchpointRecord`
  (msgspec: the bytes written and read), their encoding and decoding.

tests/shared/test_contract.py holds each pair to the same fields, defaults and limits.
"""
