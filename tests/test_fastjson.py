"""fastjson (the `state` verb's JSON) agrees with the json module."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyruntime import fastjson
from pyruntime.defaults import default_spec

DOCS = [
    {"a": 1, "b": [1, 2, {"c": 'é"x\n\t\\'}], "d": {}, "e": [], "f": None, "g": True,
     "h": 1.5, "i": -3, "j": False, "k": 10**20},
    default_spec(),
    json.loads((Path(__file__).resolve().parent.parent / "oci-schemas" / "config-schema.json").read_text()),
    [], {}, "s", 0,
]


@pytest.mark.parametrize("doc", DOCS)
def test_same_text_as_json(doc: object) -> None:
    assert fastjson.dumps(doc, indent=2) == json.dumps(doc, indent=2)
    assert fastjson.dumps(doc) == json.dumps(doc, separators=(",", ":"))
    assert fastjson.dumps(doc, separators=(", ", ": ")) == json.dumps(doc)
    assert fastjson.loads(json.dumps(doc)) == doc
    assert fastjson.loads(json.dumps(doc, indent=4).encode()) == doc


@pytest.mark.parametrize("bad", ["{bad", "[1, 2", "", "1 2", '{"a": 1} x'])
def test_bad_input_is_a_value_error(bad: str) -> None:
    with pytest.raises(ValueError):
        fastjson.loads(bad)


def test_unserializable() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"x": object()})
