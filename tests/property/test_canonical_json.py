"""Canonical JSON: the fast encoder writes exactly what the standard library writes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.errors import InvalidInput
from rempart.events import canonical_json, reference_canonical_json

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80) | text
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@given(values)
@settings(max_examples=600)
def test_fast_encoder_equals_the_reference(value: object) -> None:
    assert canonical_json(value) == reference_canonical_json(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1.5}, r"\$.a: floats are not allowed"),
        ({"a": [1, {"b": float("nan")}]}, r"\$.a\[1\].b: floats are not allowed"),
        ({1: "x"}, "object keys must be strings"),
        ({"a": b"bytes"}, "bytes cannot go into a log entry"),
        ({"a": "\ud800"}, "log entries are UTF-8"),
    ],
)
def test_what_canonical_json_refuses(value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        canonical_json(value)
