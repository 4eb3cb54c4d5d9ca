"""The stored progress document keeps its shape: {journey: [stage, entered_at, counts, latest]}."""

import orjson

from stageline_stager.engine import CustomerState
from stageline_stager.repository.progress import decode_document, encode_document

STATES = {
    "shop": CustomerState("interest", 1767225600000000, {"interest#1": 2, "ü#2": 1},
                          {"interest#1": (1767225600000000, "e-ü")}),
    "new": CustomerState(),
}
DOCUMENT = {
    "shop": ["interest", 1767225600000000, {"interest#1": 2, "ü#2": 1},
             {"interest#1": [1767225600000000, "e-ü"]}],
    "new": [None, None, {}, {}],
}


def test_states_are_written_as_the_documented_arrays() -> None:
    assert orjson.loads(encode_document(STATES)) == DOCUMENT


def test_documents_are_read_back_as_states() -> None:
    read = decode_document(orjson.dumps(DOCUMENT).decode())
    assert read == STATES
    assert read["shop"].rule_latest["interest#1"] == (1767225600000000, "e-ü")  # a tuple, as compared
