from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import pg

# Copied unchanged from the project's shared known-answer vectors.
VECTORS = Path(__file__).resolve().parent / "vectors" / "data"


def load_vector(name: str) -> Any:
    return json.loads((VECTORS / name).read_text())


def _require_postgres() -> None:
    try:
        pg.server_dsn()
    except pg.PostgresUnavailable as exc:
        if os.environ.get("REMPART_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here (REMPART_REQUIRE_POSTGRES=1): {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test."""
    _require_postgres()
    with pg.fresh_database() as dsn:
        yield dsn


@pytest.fixture
def pg_database_factory() -> Iterator[Any]:
    """Call it to get as many fresh databases as a test needs (all dropped afterwards)."""
    _require_postgres()
    from contextlib import ExitStack

    with ExitStack() as stack:
        yield lambda: stack.enter_context(pg.fresh_database())
