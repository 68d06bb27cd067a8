"""Parameters a hot route checks itself, published exactly as FastAPI would publish them.

FastAPI validates each declared parameter with pydantic on every request; on
the record read that costs more than the gateway. A route that reads its
parameters by hand still declares them once, as an annotated function, and
publishes what FastAPI generates from it (:func:`published_parameters`); its
checks raise FastAPI's own ``RequestValidationError`` with pydantic's error
shapes, so a bad request gets the same problem document either way.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

__all__ = ["not_one_of", "pattern_mismatch", "published_parameters", "whole_match"]


def published_parameters(path: str, declared: Callable[..., Any]) -> list[dict[str, Any]]:
    """The OpenAPI ``parameters`` FastAPI generates for ``declared`` as a GET on ``path``."""
    app = FastAPI()
    app.get(path)(declared)
    operation = get_openapi(title="parameters", version="0", routes=app.routes)["paths"][path]["get"]
    parameters: list[dict[str, Any]] = operation["parameters"]
    return parameters


def whole_match(pattern: str) -> re.Pattern[str]:
    """A published ``^…$`` pattern for ``fullmatch`` (Python's ``$`` would accept a trailing newline)."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise ValueError(f"expected an anchored pattern, got {pattern!r}")
    return re.compile(pattern[1:-1])


def pattern_mismatch(loc: tuple[str, str], value: str, pattern: re.Pattern[str]) -> dict[str, Any]:
    return {
        "type": "string_pattern_mismatch",
        "loc": loc,
        "msg": f"String should match pattern '^{pattern.pattern}$'",
        "input": value,
    }


def not_one_of(loc: tuple[str, str], value: str, allowed: Sequence[str]) -> dict[str, Any]:
    quoted = [f"'{a}'" for a in allowed]
    choices = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
    return {"type": "literal_error", "loc": loc, "msg": f"Input should be {choices}", "input": value}
