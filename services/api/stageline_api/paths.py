"""Customer ids in URL paths: any characters, "/" included, as the rest of the path.

`/v1/customers/{id}/timeline` is the customer's timeline, so the routes of a customer itself
(`GET` and `DELETE /v1/customers/{id}`) take ids that do not end in "/timeline": otherwise
`DELETE /v1/customers/c-1/timeline` would erase a customer named "c-1/timeline" instead of
answering 405. Such ids are only reachable through their timeline.
"""

from starlette.convertors import Convertor, register_url_convertor

CUSTOMER = "/v1/customers/{customer_id:customer}"


class CustomerIdConvertor(Convertor[str]):
    regex = r"(?!.*/timeline$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("customer", CustomerIdConvertor())
