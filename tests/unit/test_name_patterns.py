"""Names and ids are checked to their last character: ``$`` would let a trailing newline through."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rempart
from rempart.errors import InvalidInput
from rempart.store.catalog import NAME_PATTERN
from rempart.store.records import REGION_NAME, check_id

SRC = Path(rempart.__file__).parent


def test_an_id_or_name_with_a_trailing_newline_is_refused() -> None:
    assert check_id("u-1", "subject id") == "u-1"
    with pytest.raises(InvalidInput, match="^subject id 'u-1\\\\n' must be 1 to 128 characters"):
        check_id("u-1\n", "subject id")
    for pattern, name in ((REGION_NAME, "us"), (NAME_PATTERN, "contact")):
        assert pattern.match(name) and not pattern.match(name + "\n")


def test_no_anchored_pattern_in_the_package_ends_with_a_dollar() -> None:
    """Python's ``$`` also matches before a final newline; an anchored check must end with ``\\Z``."""
    loose = [
        f"{path.relative_to(SRC)}:{number}"
        for path in sorted(SRC.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"re\.(compile|match|fullmatch)\(r?\"\^[^\"]*\$\"", line)
    ]
    assert loose == []
