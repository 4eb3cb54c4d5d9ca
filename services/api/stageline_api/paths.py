"""Customer ids in URL paths: any characters, "/" and line breaks included, as the rest of the path.

`/v1/customers/{id}/timeline` is the customer's timeline, so the routes of a customer itself
(`GET` and `DELETE /v1/customers/{id}`) take ids that do not end in "/timeline": otherwise
`DELETE /v1/customers/c-1/timeline` would erase a customer named "c-1/timeline" instead of
answering 405. Such ids are only reachable through their timeline.

Both patterns match line breaks too (Starlette's own `path` convertor does not), so an id with
one reaches the route and is refused as the contract refuses it (422), not answered 404.
"""

from starlette.convertors import Convertor, register_url_convertor

CUSTOMER = "/v1/customers/{customer_id:customer}"
TIMELINE = "/v1/customers/{customer_id:customer_any}/timeline"


class CustomerIdConvertor(Convertor[str]):
    regex = r"(?![\s\S]*/timeline\Z)[\s\S]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class AnyCustomerIdConvertor(CustomerIdConvertor):
    regex = r"[\s\S]+"


register_url_convertor("customer", CustomerIdConvertor())
register_url_convertor("customer_any", AnyCustomerIdConvertor())
