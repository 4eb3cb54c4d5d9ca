"""Validation errors are answered in our words, chosen from pydantic's error types, not its text."""

from typing import Annotated, Any, Literal

import pytest
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from stageline_shared.wording import describe_validation_error


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: Annotated[str, Field(min_length=1, max_length=3)]
    code: Annotated[str, Field(min_length=2)] = "xx"
    properties: dict[str, Any] = {}
    kind: Literal["a", "b"] = "a"
    count: Annotated[int, Field(ge=0)] = 0
    at: AwareDatetime | None = None
    items: Annotated[list[int], Field(max_length=2)] = []
    flag: bool = False


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({}, "name: required"),
        ({"name": 1}, "name: must be a string"),
        ({"name": ""}, "name: must not be empty"),
        ({"name": "abcd"}, "name: must be at most 3 characters"),
        ({"name": "a", "code": "x"}, "code: must be at least 2 characters"),
        ({"name": "a", "properties": []}, "properties: must be a JSON object"),
        ({"name": "a", "kind": "c"}, "kind: must be 'a' or 'b'"),
        ({"name": "a", "count": "1"}, "count: must be an integer"),
        ({"name": "a", "count": -1}, "count: must be at least 0"),
        ({"name": "a", "items": [1, 2, 3]}, "items: must have at most 2 items"),
        ({"name": "a", "flag": 1}, "flag: must be true or false"),
        ({"name": "a", "typo": 1}, "typo: unknown field"),
        ({"name": 1, "typo": 1}, "name: must be a string; typo: unknown field"),
    ],
)
def test_each_error_type_has_our_wording(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate(data)
    assert describe_validation_error(caught.value) == expected


def test_timestamps_are_named_as_rfc_3339() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate_json(b'{"name": "a", "at": "yesterday"}')
    assert describe_validation_error(caught.value) == "at: must be an RFC 3339 timestamp"


def test_a_problem_with_the_whole_value_names_the_default_field() -> None:
    with pytest.raises(ValidationError) as caught:
        _Model.model_validate_json(b'{"name": ')
    assert describe_validation_error(caught.value, "record") == "record: is not valid JSON"
