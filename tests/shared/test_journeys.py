"""Journey definitions: the default file loads, and every mistake names the file, line and problem."""

from pathlib import Path

import pytest

from stageline_shared.journeys import Journey, JourneyDefinitionError, load_journeys
from stageline_shared.settings import DEFAULT_JOURNEYS_FILE

VALID = """\
journeys:
  - name: shop
    progression: forward
    stages: [visit, buy]
    rules:
      - stage: visit
        match: {event: Viewed}
      - stage: buy
        match: {event: Bought}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "journeys.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(JourneyDefinitionError) as info:
        load_journeys(path)
    return str(info.value)


def _assert_error(tmp_path: Path, text: str, line: int, *fragments: str) -> None:
    path = _write(tmp_path, text)
    message = _load_error(path)
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message


# --- loading --------------------------------------------------------------------------------------


def test_default_file_loads() -> None:
    journeys = load_journeys(DEFAULT_JOURNEYS_FILE)

    assert set(journeys) == {"ecommerce", "ecommerce-latest"}
    forward, latest = journeys["ecommerce"], journeys["ecommerce-latest"]
    assert forward.progression == "forward"
    assert latest.progression == "latest"
    stages = ["awareness", "interest", "consideration", "intent", "purchase", "retention", "loyalty",
              "advocacy"]
    assert forward.stages == stages
    assert latest.stages == stages
    for journey in journeys.values():
        assert all(rule.stage in journey.stages for rule in journey.rules)
        ids = journey.rule_ids()
        assert len(ids) == len(set(ids))
    assert "high-rating-review" in forward.rule_ids()
    loyalty = forward.rules[forward.rule_ids().index("loyalty#1")]
    assert loyalty.min_count == 2
    assert loyalty.match.event == "Order Completed"


def test_valid_file_loads(tmp_path: Path) -> None:
    journeys = load_journeys(_write(tmp_path, VALID))

    assert list(journeys) == ["shop"]
    journey = journeys["shop"]
    assert isinstance(journey, Journey)
    assert journey.stages == ["visit", "buy"]
    assert journey.rule_ids() == ["visit#1", "buy#1"]
    assert journey.rank("buy") == 1
    assert [rule.min_count for rule in journey.rules] == [1, 1]


def test_progression_defaults_to_forward(tmp_path: Path) -> None:
    text = VALID.replace("    progression: forward\n", "")
    assert load_journeys(_write(tmp_path, text))["shop"].progression == "forward"


def test_property_operators_load(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit]
    rules:
      - id: rich
        stage: visit
        match:
          properties:
            plan: pro
            rating: {gte: 4, lt: 6}
            tier: {in: [gold, silver]}
            coupon: {exists: false}
"""
    rule = load_journeys(_write(tmp_path, text))["shop"].rules[0]
    assert rule.id == "rich"
    assert rule.match.properties["plan"] == "pro"


def test_auto_rule_ids_count_per_stage(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit, buy]
    rules:
      - stage: visit
        match: {event: Viewed}
      - stage: buy
        match: {event: Bought}
      - stage: visit
        match: {channel: ads}
      - id: named
        stage: buy
        match: {event: Paid}
"""
    journey = load_journeys(_write(tmp_path, text))["shop"]
    assert journey.rule_ids() == ["visit#1", "buy#1", "visit#2", "named"]


# --- invalid definitions --------------------------------------------------------------------------


def test_unknown_stage_in_rule(tmp_path: Path) -> None:
    text = VALID.replace("      - stage: buy\n", "      - stage: pay\n")
    _assert_error(
        tmp_path, text, 8, "journeys.0.rules.1.stage",
        "rule stage 'pay' is not one of the journey's stages",
    )


def test_duplicate_stage(tmp_path: Path) -> None:
    text = VALID.replace("stages: [visit, buy]", "stages: [visit, buy, visit]")
    _assert_error(tmp_path, text, 4, "journeys.0.stages", "stages must be unique")


def test_duplicate_journey(tmp_path: Path) -> None:
    text = VALID + """\
  - name: shop
    stages: [visit]
    rules:
      - stage: visit
        match: {event: Viewed}
"""
    _assert_error(tmp_path, text, 10, "journeys.1.name", "journey 'shop' is defined twice")


def test_duplicate_journey_in_later_position(tmp_path: Path) -> None:
    text = VALID + """\
  - name: other
    stages: [visit]
    rules:
      - stage: visit
        match: {event: Viewed}
  - name: other
    stages: [visit]
    rules:
      - stage: visit
        match: {event: Viewed}
"""
    _assert_error(tmp_path, text, 15, "journeys.2.name", "journey 'other' is defined twice")


def test_duplicate_rule_id(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit, buy]
    rules:
      - stage: visit
        match: {event: Viewed}
      - id: checkout
        stage: buy
        match: {event: Bought}
      - id: checkout
        stage: buy
        match: {event: Paid}
"""
    # The error points at the repeat (line 10), not at the first rule carrying the id (line 7).
    _assert_error(tmp_path, text, 10, "journeys.0.rules.2", "rule id 'checkout' is not unique")


def test_explicit_rule_id_colliding_with_generated_id(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit, buy]
    rules:
      - stage: visit
        match: {event: Viewed}
      - id: "visit#1"
        stage: buy
        match: {event: Bought}
"""
    # The explicit id repeats the generated one of the first rule: the second rule is reported.
    _assert_error(tmp_path, text, 7, "journeys.0.rules.1", "rule id 'visit#1' is not unique")


@pytest.mark.parametrize(
    ("old", "new", "line", "field"),
    [
        ("        match: {event: Bought}\n", "        match: {event: Bought}\n        colour: red\n", 10,
         "journeys.0.rules.1.colour"),
        ("    progression: forward\n", "    progression: forward\n    owner: me\n", 4,
         "journeys.0.owner"),
        ("        match: {event: Viewed}\n", "        match: {event: Viewed, colour: red}\n", 7,
         "journeys.0.rules.0.match.colour"),
        ("journeys:\n", "version: 2\njourneys:\n", 1, "version"),
    ],
    ids=["rule", "journey", "match", "top-level"],
)
def test_unknown_key(tmp_path: Path, old: str, new: str, line: int, field: str) -> None:
    assert old in VALID
    _assert_error(tmp_path, VALID.replace(old, new), line, field, "unknown field")


def test_empty_match(tmp_path: Path) -> None:
    text = VALID.replace("        match: {event: Bought}\n", "        match: {}\n")
    _assert_error(
        tmp_path, text, 9, "journeys.0.rules.1.match",
        "match needs at least one of event, channel or properties",
    )


def test_empty_match_block_style(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit]
    rules:
      - stage: visit
        match:
          properties: {}
"""
    _assert_error(tmp_path, text, 6, "journeys.0.rules.0.match", "match needs at least one of")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("journeys:\n  - name: shop\n    stages: [visit]\n    rules: x: y\n", 4,
         "mapping values are not allowed here"),
        ("journeys:\n  - name: shop\n    stages: [visit, buy\n    rules: []\n", 4, "expected ',' or ']'"),
        ("journeys:\n  - name: shop\n\tstages: [visit]\n", 3, "found character '\\t'"),
    ],
    ids=["mapping-value", "unclosed-flow", "tab"],
)
def test_bad_yaml_syntax(tmp_path: Path, text: str, line: int, problem: str) -> None:
    _assert_error(tmp_path, text, line, "invalid YAML", problem)


@pytest.mark.parametrize("count", [0, -1])
def test_min_count_below_one(tmp_path: Path, count: int) -> None:
    text = VALID.replace(
        "        match: {event: Bought}\n", f"        match: {{event: Bought}}\n        min_count: {count}\n"
    )
    _assert_error(
        tmp_path, text, 10, "journeys.0.rules.1.min_count", "must be at least 1"
    )


def test_min_count_above_limit(tmp_path: Path) -> None:
    text = VALID.replace(
        "        match: {event: Bought}\n", "        match: {event: Bought}\n        min_count: 1001\n"
    )
    _assert_error(tmp_path, text, 10, "journeys.0.rules.1.min_count", "must be at most 1000")


def test_bad_progression(tmp_path: Path) -> None:
    text = VALID.replace("progression: forward", "progression: backward")
    _assert_error(
        tmp_path, text, 3, "journeys.0.progression", "must be 'forward' or 'latest'"
    )


def test_bad_stage_name(tmp_path: Path) -> None:
    text = VALID.replace("stages: [visit, buy]", "stages: [visit, Big Buy]")
    _assert_error(tmp_path, text, 4, "journeys.0.stages.1", "must match the pattern")


def test_missing_rules(tmp_path: Path) -> None:
    text = """\
journeys:
  - name: shop
    stages: [visit]
"""
    _assert_error(tmp_path, text, 2, "journeys.0.rules", "required")


@pytest.mark.parametrize(
    "text",
    ["", "# only a comment\n", "---\n", "- journeys\n", "journeys\n", "42\n", "null\n"],
    ids=["empty", "comment", "empty-document", "list", "string", "number", "null"],
)
def test_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    _assert_error(tmp_path, text, 1, "the file must be a mapping with a `journeys:` list")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    message = _load_error(path)
    assert message.startswith(f"{path}: cannot read journeys file: "), message
    assert "No such file" in message


def test_error_is_a_value_error() -> None:
    assert issubclass(JourneyDefinitionError, ValueError)
