"""Migration end to end on real PostgreSQL, through the CLI as real processes.

A legacy PostgreSQL table with rows for two regions and bad rows of every
kind; ``rempart migrate run`` is killed with SIGKILL after some batches
committed and run again; the counts are exact, verification matches, the purge
leaves only the quarantined rows in the legacy table, and the signed
attestation is in the transparency log and verifies with the custodian's key.
Region ``us`` and the legacy table are PostgreSQL databases; region ``row``,
the control database and the log are SQLite files.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rempart.events import Event
from rempart.log import create_signer, open_storage
from rempart.migrate.attest import verify_attestation
from rempart.tlog.note import Verifier

pytestmark = pytest.mark.postgres

RUN = [sys.executable, "-m", "rempart.cli._main"]
ROWS = 3000
BATCH = 25


def legacy_row(i: int) -> tuple[Any, ...]:
    """Row ``i`` of the legacy table; bad rows by construction, duplicates only of good rows."""
    country = ("US", "FR", "DE")[i % 3]
    user: str | None = f"u{i:05d}"
    verified = ("yes", "no")[i % 2]
    if i % 97 == 0:
        country = "ZZ"
    elif i % 101 == 0:
        user = None
    elif i % 89 == 0:
        verified = "maybe"
    elif i % 83 == 0 and kind(i - 1) == "good":
        user, country = f"u{i - 1:05d}", ("US", "FR", "DE")[(i - 1) % 3]
    return (i, user, country, f"person{i}@example.com", f"+1 555 {i:07d}", verified)


def kind(i: int) -> str:
    if i % 97 == 0:
        return "unknown_region"
    if i % 101 == 0:
        return "missing_subject_id"
    if i % 89 == 0:
        return "undecodable_value"
    if i % 83 == 0 and kind(i - 1) == "good":
        return "duplicate_record"
    return "good"


def expected_counts() -> tuple[dict[str, dict[str, int]], dict[str, int], set[int]]:
    """Counts per region, quarantine reasons and quarantined keys, from the construction above."""
    counts: dict[str, dict[str, int]] = {}
    reasons: dict[str, int] = {}
    bad: set[int] = set()
    for i in range(1, ROWS + 1):
        k = kind(i)
        region = {"US": "us", "FR": "row", "DE": "row"}.get(legacy_row(i)[2], "(unrouted)")
        if k == "missing_subject_id":
            region = "(unrouted)"
        slot = counts.setdefault(
            region, {"read": 0, "migrated": 0, "quarantined": 0, "records": 0, "subjects": 0}
        )
        slot["read"] += 1
        if k == "good":
            slot["migrated"] += 1
            slot["records"] += 1
            slot["subjects"] += 1
        else:
            slot["quarantined"] += 1
            reasons[k] = reasons.get(k, 0) + 1
            bad.add(i)
    return counts, reasons, bad


def rempart(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*RUN, *map(str, args)], capture_output=True, text=True, timeout=300)
    if ok and done.returncode != 0:
        pytest.fail(f"rempart {' '.join(map(str, args))} exited {done.returncode}: {done.stderr}")
    return done


def control(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def test_killed_run_resumes_verifies_purges_and_attests(
    tmp_path: Path, pg_database_factory: Callable[[], str]
) -> None:
    legacy, us = pg_database_factory(), pg_database_factory()
    with psycopg.connect(legacy) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE legacy_users (id bigint PRIMARY KEY, user_id text, country text, email text, "
            "phone text, verified text)"
        )
        with cur.copy("COPY legacy_users FROM STDIN") as copy:
            for i in range(1, ROWS + 1):
                copy.write_row(legacy_row(i))
    config = tmp_path / "rempart.toml"
    config.write_text(
        f"""
[deployment]
name = "migration-it"
[control]
database = "sqlite:///control.db"
[log]
database = "sqlite:///log.db"
origin = "it.example/log"
key_file = "keys/log.key"
[keyring]
path = "keys/keyring.json"
[regions.us]
store = "{us}"
kek = "us"
[regions.row]
store = "sqlite:///regions/row.db"
kek = "row"
"""
    )
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(
        f"""
[migration]
name = "legacy-users"
batch_size = {BATCH}
[source]
kind = "postgresql"
url = "{legacy}"
table = "legacy_users"
key = "id"
[subject]
column = "user_id"
[region]
column = "country"
map = {{ US = "us", FR = "row", DE = "row" }}
[[records]]
collection = "contact"
record_id = "main"
fields = {{ email = "email", phone = "phone", email_verified = {{ column = "verified", type = "boolean" }} }}
"""
    )
    create_signer(tmp_path / "keys" / "log.key", "it.example/log")
    common = ("--config", config, "--mapping", mapping)

    # 1. A run killed with SIGKILL once some batches committed.
    child = subprocess.Popen(
        [*RUN, "migrate", "run", *map(str, common), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    control_db = tmp_path / "control.db"
    deadline = time.monotonic() + 120
    done_before_kill = 0
    while time.monotonic() < deadline and child.poll() is None:
        rows = control(control_db, "SELECT COUNT(*) FROM migrate_batches WHERE status = 'done'")
        done_before_kill = int(rows[0][0]) if rows else 0
        if done_before_kill >= 4:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.communicate()
    assert child.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    total_batches = ROWS // BATCH
    assert 4 <= done_before_kill < total_batches

    # 2. Resumed: finishes with exact counts.
    report = json.loads(rempart("migrate", "run", *common, "--json").stdout)
    counts, reasons, bad = expected_counts()
    assert report["regions"] == counts
    assert report["totals"]["read"] == ROWS
    assert report["totals"]["migrated"] + report["totals"]["quarantined"] == ROWS
    assert report["batches"] == total_batches
    status = json.loads(rempart("migrate", "status", *common, "--json", "--quarantine", "3").stdout)
    assert status["regions"] == counts and status["pending_batches"] == []
    assert status["quarantine_reasons"] == reasons
    assert [(q["key"], q["reason"]) for q in status["quarantine"]] == [
        (83, "duplicate_record"),
        (89, "undecodable_value"),
        (97, "unknown_region"),
    ]
    assert status["quarantine"][1] == {
        "key": 89,
        "batch": 4,
        "region": "row",
        "reason": "undecodable_value",
        "message": (
            "contact.email_verified (column 'verified', type boolean): a str of length 5 is not a boolean"
        ),
    }
    # Rows really are in the right databases: us on PostgreSQL, row in SQLite, nothing twice.
    with psycopg.connect(us) as conn:
        (us_records,) = conn.execute("SELECT COUNT(*) FROM store_records").fetchone() or (0,)
        (us_keys,) = conn.execute("SELECT COUNT(*) FROM store_subject_keys").fetchone() or (0,)
    assert us_records == us_keys == counts["us"]["migrated"]
    row_db = sqlite3.connect(tmp_path / "regions" / "row.db")
    try:
        (row_records,) = row_db.execute("SELECT COUNT(*) FROM store_records").fetchone()
    finally:
        row_db.close()
    assert row_records == counts["row"]["migrated"]

    # 3. Verification matches from both sides.
    verified = json.loads(rempart("migrate", "verify", *common, "--json").stdout)
    assert verified["result"] == "match" and verified["problem_count"] == 0
    assert verified["regions"]["us"]["records"] == counts["us"]["migrated"]
    assert verified["root"]["source"] == verified["root"]["destination"]

    # 4. Purge: only the quarantined rows remain in the legacy table.
    purged = json.loads(rempart("migrate", "purge", *common, "--yes", "--json").stdout)
    assert purged["deleted"] == ROWS - len(bad) and purged["remaining"] == 0
    assert purged["kept_quarantined"] == len(bad)
    with psycopg.connect(legacy) as conn:
        left = {int(r[0]) for r in conn.execute("SELECT id FROM legacy_users").fetchall()}
    assert left == bad

    # 5. The attestation, signed by the custodian's migration key, in the log.
    key = tmp_path / "keys" / "migration.key"
    vkey = rempart("migrate", "keygen", "--name", "custodian.example/migration", "--out", key).stdout.strip()
    attested = json.loads(rempart("migrate", "attest", *common, "--key", key, "--json").stdout)
    statement = attested["statement"]
    assert statement["regions"]["us"]["migrated"] == counts["us"]["migrated"]
    assert statement["quarantine"] == {"count": len(bad), "reasons": reasons}
    assert statement["purge"]["deleted"] == ROWS - len(bad) and statement["purge"]["remaining"] == 0
    assert statement["root"] == verified["root"]["destination"]
    assert statement["source"]["table"] == "legacy_users" and "password" not in json.dumps(statement)
    storage = open_storage(f"sqlite:///{tmp_path / 'log.db'}")
    try:
        entries = [Event.decode(e) for e in storage.read_entries(0, storage.size())]
    finally:
        storage.close()
    attestations = [e for e in entries if e.type == "migration.attestation"]
    assert len(attestations) == 1 and attestations[0].body["signed_note"] == attested["note"]
    assert attested["log_index"] == entries.index(attestations[0])
    assert verify_attestation(attestations[0].body["signed_note"], Verifier.parse(vkey)) == statement
    note_file = tmp_path / "attestation.note"
    note_file.write_text(attested["note"])
    checked = json.loads(rempart("migrate", "check-attestation", note_file, "--vkey", vkey, "--json").stdout)
    assert checked == statement
    # Every batch is on the record; the one interrupted may be there twice.
    seqs = [e.body["batch"] for e in entries if e.type == "migration.batch"]
    assert sorted(set(seqs)) == list(range(1, total_batches + 1))
    assert len(seqs) - total_batches in (0, 1)
    kinds = {e.type for e in entries}
    assert {"migration.verified", "migration.purge.started", "migration.purged"} <= kinds
