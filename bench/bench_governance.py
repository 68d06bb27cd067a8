"""Governance benchmark: release verification against the bare row read, chain checks, TUF publication.

Side by side in one run, on SQLite and on PostgreSQL:

* raw row read: the release's row with the driver alone (the floor of any lookup);
* ``ReleaseRegistry.verify_release`` of an approved release: the same read plus
  the reviews, the trust root in force (cached), and re-verifying each reviewer's
  Ed25519 signature;
* ``verify_chain`` of a trust root chain of 1 and of N versions (5-member board, 3-of-5);
* ``TufPublisher.publish`` of a region with M approved releases (metadata signed and written).

``python -m bench governance [--quick]``; ``REMPART_BENCH_PG`` sets the PostgreSQL
server (default postgresql://postgres@127.0.0.1:5432/postgres). Writes
``bench/results/governance.json``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from tests.unit.governance.world import Keys, Principal, World, document, signed_by

from bench.report import percentile, print_table, write_json
from rempart.db import Database
from rempart.governance import ProposalKind, sign_proposal, sign_release, verify_chain

PG = os.environ.get("REMPART_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def _timed(fn: Callable[[], Any], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e6)
    return samples


@contextmanager
def _databases(tmp: Path) -> Iterator[list[tuple[str, str]]]:
    urls = [("sqlite", f"sqlite:///{tmp / 'control.db'}")]
    name = f"rempart_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        urls.append(("postgres", PG.rsplit("/", 1)[0] + f"/{name}"))
    except psycopg.Error as exc:
        print(f"PostgreSQL unavailable ({exc}); SQLite only")
        name = ""
    try:
        yield urls
    finally:
        if name:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _bench_backend(label: str, url: str, keys: Keys, n: int, releases: int, tmp: Path) -> list[list[Any]]:
    world = World(Database.open(url), keys=keys, start=datetime.now(UTC))
    world.gov.trust_roots.install(
        signed_by(document(keys, issued=world.now()), keys.board[:3]), now=world.now()
    )
    digests = []
    for i in range(releases):
        data = f"artifact {i}".encode()
        release = world.submit(data, name=f"a{i}.json")
        world.gov.releases.review(release.id, sign_release(release.text, keys.reviewers[:2]), now=world.now())
        digests.append("sha256:" + hashlib.sha256(data).hexdigest())
    digest = digests[0]
    registry = world.gov.releases
    db = world.db
    raw = _timed(
        lambda: db.query_one(
            "SELECT id, submission, approved, revoked, revocation FROM governance_releases "
            "WHERE region = ? AND digest = ?",
            ("us", digest),
        ),
        n,
    )
    verify = _timed(lambda: registry.verify_release(digest, "us"), n)
    publisher = world.gov.publisher(keys.registry)
    publish = _timed(lambda: publisher.publish("us", tmp / label, now=world.now()), max(3, n // 100))
    world.close()
    return [
        [f"{label}: raw row read (driver)", n, percentile(raw, 50), percentile(raw, 99)],
        [
            f"{label}: verify_release (approved, 2 signatures)",
            n,
            percentile(verify, 50),
            percentile(verify, 99),
        ],
        [
            f"{label}: TUF publish, {releases} targets",
            len(publish),
            percentile(publish, 50),
            percentile(publish, 99),
        ],
    ]


def _chain(keys: Keys, versions: int) -> list[bytes]:
    world = World(Database.open("sqlite:///:memory:"), keys=keys)
    world.bootstrap()
    for v in range(2, versions + 1):
        bundle = signed_by(document(keys, version=v, issued=world.now()), keys.board[:3])
        p = world.gov.proposals.draft(
            kind=ProposalKind.TRUST_ROOT,
            payload={"trust_root": bundle.to_json()},
            drafter=Principal("board-1", "board"),
            now=world.now(),
        )
        world.gov.proposals.sign(p.id, sign_proposal(p, keys.board[:3]), now=world.now())
        world.gov.proposals.apply(p.id, now=world.now())
        world.clock.advance(seconds=1)
    chain = world.gov.trust_roots.chain()
    world.close()
    return chain


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    n, releases, versions = (200, 50, 5) if quick else (2000, 200, 20)
    keys = Keys()
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp, _databases(Path(tmp)) as urls:
        for label, url in urls:
            rows += _bench_backend(label, url, keys, n, releases, Path(tmp))
    one, many = _chain(keys, 1), _chain(keys, versions)
    for label, chain in (("verify_chain, 1 version", one), (f"verify_chain, {versions} versions", many)):
        samples = _timed(lambda c=chain: verify_chain(c), max(10, n // 20))
        rows.append([label, len(samples), percentile(samples, 50), percentile(samples, 99)])
    columns = ["operation", "n", "p50 µs", "p99 µs"]
    print_table("governance", columns, rows)
    write_json(
        "governance",
        {"quick": quick, "rows": [dict(zip(columns, r, strict=True)) for r in rows]},
    )
