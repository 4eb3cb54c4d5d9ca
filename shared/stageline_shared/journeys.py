"""Journey definitions: the YAML file of ordered stages and the rules that map touchpoints to them.

Loading validates everything up front and names the file, line and problem on any mistake, so a
bad definition stops a service at start instead of mis-staging customers later.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stageline_shared.wording import describe_error

Scalar = str | int | float | bool
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]


class JourneyDefinitionError(ValueError):
    """The journeys file is unreadable or invalid; the message names the line."""


class PropertyTest(BaseModel):
    """A predicate on one touchpoint property; every given operator must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    eq: Scalar | None = None
    ne: Scalar | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in")
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    exists: bool | None = None


class Match(BaseModel):
    """What a touchpoint must look like: any listed event name, any listed channel, all properties."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event: str | list[str] | None = None
    channel: str | list[str] | None = None
    properties: dict[str, Scalar | PropertyTest] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> "Match":
        if self.event is None and self.channel is None and not self.properties:
            raise ValueError("match needs at least one of event, channel or properties")
        return self


class Rule(BaseModel):
    """Touchpoints that match put the customer in `stage` once `min_count` of them were seen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str | None = None
    stage: str
    match: Match
    min_count: int = Field(default=1, ge=1, le=1000)


class Journey(BaseModel):
    """Ordered stages (first = earliest) and the rules that reach them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    description: str = ""
    progression: Literal["forward", "latest"] = "forward"
    stages: list[Name] = Field(min_length=1)
    rules: list[Rule] = Field(min_length=1)

    def rank(self, stage: str) -> int:
        return self.stages.index(stage)

    def rule_ids(self) -> list[str]:
        """Each rule's stable id: its own `id`, else `<stage>#<n>` counting that stage's rules."""
        seen: dict[str, int] = {}
        ids = []
        for rule in self.rules:
            seen[rule.stage] = seen.get(rule.stage, 0) + 1
            ids.append(rule.id or f"{rule.stage}#{seen[rule.stage]}")
        return ids


class JourneyFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    journeys: list[Journey] = Field(min_length=1)


class _Mapping(dict[str, Any]):
    """A YAML mapping that remembers the line of each key."""

    key_lines: dict[str, int]
    line: int


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Mapping:
    mapping = _Mapping({str(k): v for k, v in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {
        str(key.value): key.start_mark.line + 1 for key, _ in node.value if hasattr(key, "value")
    }
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    """The line of the deepest mapping key on the error's path."""
    line = data.line if isinstance(data, _Mapping) else None
    for part in loc:
        if isinstance(data, _Mapping) and str(part) in data:
            line = data.key_lines.get(str(part), line)
            data = data[str(part)]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
            if isinstance(data, _Mapping):
                line = data.line
        else:
            break
    return line


def _check_references(parsed: JourneyFile, raw: Any, path: Path) -> None:
    names: set[str] = set()
    for j_index, journey in enumerate(parsed.journeys):
        where = ("journeys", j_index)
        if journey.name in names:
            raise _error(path, raw, (*where, "name"), f"journey {journey.name!r} is defined twice")
        names.add(journey.name)
        if len(set(journey.stages)) != len(journey.stages):
            raise _error(path, raw, (*where, "stages"), "stages must be unique")
        ids = journey.rule_ids()
        for r_index, rule in enumerate(journey.rules):
            if rule.stage not in journey.stages:
                raise _error(
                    path, raw, (*where, "rules", r_index, "stage"),
                    f"rule stage {rule.stage!r} is not one of the journey's stages",
                )
            if ids[r_index] in ids[:r_index]:
                raise _error(
                    path, raw, (*where, "rules", r_index), f"rule id {ids[r_index]!r} is not unique"
                )


def _error(path: Path, raw: Any, loc: tuple[int | str, ...], message: str) -> JourneyDefinitionError:
    line = _line_of(raw, loc)
    field = ".".join(str(p) for p in loc)
    return JourneyDefinitionError(f"{path}:{line}: {field}: {message}")


def load_journeys(path: Path) -> dict[str, Journey]:
    """Read and validate a journeys file; raises JourneyDefinitionError naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise JourneyDefinitionError(f"{path}: cannot read journeys file: {exc.strerror}") from None
    try:
        raw = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise JourneyDefinitionError(f"{path}:{line}: invalid YAML: {exc.problem}") from None
    if not isinstance(raw, dict):
        raise JourneyDefinitionError(
            f"{path}:1: the file must be a mapping with a `journeys:` list"
        )
    try:
        parsed = JourneyFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        message = describe_error(first)
        raise _error(path, raw, tuple(first["loc"]), message) from None
    _check_references(parsed, raw, path)
    return {journey.name: journey for journey in parsed.journeys}
