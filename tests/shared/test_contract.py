"""The contract's pairs agree: each shape declared for pydantic and for msgspec has the same
fields, in the same order, with the same defaults and the same limits, all from contract.limits."""

from typing import Any, get_args

import annotated_types
import msgspec
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from stageline_shared.contract import limits
from stageline_shared.contract.client_event import PlainEvent, TouchpointIn
from stageline_shared.contract.record import Touchpoint, TouchpointRecord

PAIRS = [(Touchpoint, TouchpointRecord), (TouchpointIn, PlainEvent)]


def _pydantic_bounds(model: type[BaseModel], name: str) -> tuple[int | None, int | None]:
    metadata = list(model.model_fields[name].metadata)
    annotation = model.model_fields[name].annotation
    for argument in get_args(annotation):  # `Annotated[str, Field(...)] | None`
        for item in getattr(argument, "__metadata__", ()):
            metadata += item.metadata if isinstance(item, FieldInfo) else [item]
    low = next((m.min_length for m in metadata if isinstance(m, annotated_types.MinLen)), None)
    high = next((m.max_length for m in metadata if isinstance(m, annotated_types.MaxLen)), None)
    return low or None, high


def _msgspec_bounds(struct: type[msgspec.Struct], name: str) -> tuple[int | None, int | None]:
    [field] = [f for f in msgspec.inspect.type_info(struct).fields if f.name == name]  # type: ignore[attr-defined]
    kind: Any = field.type
    if isinstance(kind, msgspec.inspect.UnionType):
        [kind] = [t for t in kind.types if not isinstance(t, msgspec.inspect.NoneType)]
    return getattr(kind, "min_length", None) or None, getattr(kind, "max_length", None)


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda kind: kind.__name__)
def test_both_declare_the_same_fields_in_the_same_order(model: type[BaseModel], struct: type[msgspec.Struct]) -> None:
    if struct is PlainEvent:  # msgspec wants the required fields of a positional struct first
        assert sorted(struct.__struct_fields__) == sorted(model.model_fields)
    else:
        assert list(struct.__struct_fields__) == list(model.model_fields)


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda kind: kind.__name__)
def test_both_have_the_same_limits(model: type[BaseModel], struct: type[msgspec.Struct]) -> None:
    for name in struct.__struct_fields__:
        assert _pydantic_bounds(model, name) == _msgspec_bounds(struct, name), name


@pytest.mark.parametrize(("model", "struct"), PAIRS, ids=lambda kind: kind.__name__)
def test_optional_fields_have_the_same_defaults(model: type[BaseModel], struct: type[msgspec.Struct]) -> None:
    names = struct.__struct_fields__[len(struct.__struct_fields__) - len(struct.__struct_defaults__):]
    defaults = {name: default for name, default in zip(names, struct.__struct_defaults__, strict=True)
                if default is not msgspec.NODEFAULT}
    for name, default in defaults.items():
        expected = model.model_fields[name].get_default(call_default_factory=True)
        assert (default.factory() if isinstance(default, msgspec._core.Factory) else default) == expected, name
    # The two without a msgspec default are always written: pydantic supplies them when absent.
    if struct is TouchpointRecord:
        assert set(struct.__struct_fields__) - set(defaults) - {"event_id", "customer_id", "event",
                                                                "occurred_at", "received_at"} == {"v", "type"}
        assert (model.model_fields["v"].default, model.model_fields["type"].default) == (limits.WIRE_VERSION, "track")


def test_the_limits_are_the_contracts() -> None:
    assert _msgspec_bounds(TouchpointRecord, "event_id") == (1, limits.EVENT_ID.max)
    assert _msgspec_bounds(TouchpointRecord, "customer_id") == (1, limits.CUSTOMER_ID.max)
    assert _msgspec_bounds(PlainEvent, "channel") == (1, limits.CHANNEL.max)
    assert _pydantic_bounds(TouchpointIn, "event") == (1, limits.EVENT_NAME.max)
    assert _pydantic_bounds(TouchpointIn, "occurred_at") == (None, limits.TIME_TEXT.max)
