"""The server started from a TOML file with the control database, the log and both regions on
PostgreSQL, doing a granted read through the gateway."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rempart import Client
from rempart.cli._connect import load_signer
from tests.unit.api.harness import rempart_cli, rempart_server

pytestmark = pytest.mark.postgres


def test_a_granted_read_on_postgresql(tmp_path: Path, pg_database_factory: Callable[[], str]) -> None:
    control, log, us, row = (pg_database_factory() for _ in range(4))
    config = tmp_path / "rempart.toml"
    config.write_text(f"""
[deployment]
name = "rempart-pg"
[control]
database = "{control}"
[log]
database = "{log}"
origin = "pg.example/log"
key_file = "keys/log.key"
checkpoint_interval = 0.5
[keyring]
path = "keys/keyring.json"
[regions.us]
store = "{us}"
kek = "us"
[regions.us.egress]
destinations = ["parent-analytics"]
[regions.row]
store = "{row}"
kek = "row"
""")
    made = rempart_cli("init", "--demo", "--config", str(config))
    assert made.returncode == 0, made.stderr
    with rempart_server(tmp_path, config=config) as server:
        tokens = json.loads((tmp_path / "demo" / "tokens.json").read_text())
        with Client(server.url, tokens["operator:alice"]) as alice:
            request = alice.request_access(
                region="us",
                fields=["contact.email"],
                subjects=["us-0001"],
                purpose="customer_support",
                ticket="PG-1",
                duration_seconds=600,
            )
        with Client(server.url, tokens["custodian:carol"]) as carol:
            assert (
                carol.approve(
                    request.id, load_signer(tmp_path / "demo" / "keys" / "custodian-carol.key")
                ).state
                == "active"
            )
        with Client(server.url, tokens["operator:alice"]) as alice:
            record = alice.get_record("us-0001", "contact", "main", purpose="customer_support")
            assert dict(record.fields) == {"email": "mia.thompson@example.com"}
            assert alice.ready().checks == {
                "control": "ok",
                "region:row": "ok",
                "region:us": "ok",
                "log": "ok",
            }
        assert server.printed().splitlines()[1].startswith("  API       http://127.0.0.1:")
