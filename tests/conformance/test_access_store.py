"""One contract, both control databases: principals, tokens, requests and grants, policy sets.

Every test runs on SQLite and on the real PostgreSQL (``pg_dsn``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from rempart.access import (
    GrantStore,
    Principal,
    PrincipalStore,
    RequestState,
    Scope,
    StaleRecord,
    TokenStore,
    lifecycle,
)
from rempart.access.model import AccessRequest
from rempart.clock import ManualClock
from rempart.db import Database
from rempart.errors import AuditUnavailable, Conflict, InvalidInput, NotFound, Unauthenticated
from rempart.events import LogRecorder
from rempart.policy import DEFAULT_POLICIES, PolicyStore
from tests.unit.access.cast import START, World, default_engine, new_log, subject


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'control.db'}"
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def world(url: str) -> Iterator[World]:
    w = World.open(url)
    yield w
    w.close()


# -- principals ------------------------------------------------------------------------


def test_principal_crud(world: World) -> None:
    alice = world.principals.get("operator:alice")
    assert (alice.org, alice.roles, alice.screening) == ("operator", frozenset({"support"}), "cleared")
    assert [p.id for p in world.principals.list(org="custodian")] == [
        "custodian:carol", "custodian:dan", "custodian:erin", "custodian:fay",
    ]
    mark = len(world.events())
    changed = world.principals.update(
        "operator:alice", actor="admin:root", roles=["support", "engineer"], screening="pending"
    )
    assert (changed.roles, changed.screening) == (frozenset({"support", "engineer"}), "pending")
    assert world.principals.get("operator:alice") == changed
    (event,) = world.events()[mark:]
    assert (event.type, event.body["changes"]) == (
        "access.principal.updated", {"roles": ["engineer", "support"], "screening": "pending"}
    )
    assert world.principals.update("operator:alice", actor="admin:root", screening="pending") == changed
    assert len(world.events()) == mark + 1  # no change, no event
    world.principals.disable("operator:oscar", actor="admin:root")
    assert "operator:oscar" not in [p.id for p in world.principals.list(include_disabled=False)]
    with pytest.raises(Conflict) as caught:
        world.principals.create(alice, actor="admin:root")
    assert str(caught.value) == "principal operator:alice already exists"
    world.principals.delete("board:ben", actor="admin:root")
    assert world.principals.find("board:ben") is None
    with pytest.raises(NotFound):
        world.principals.delete("board:ben", actor="admin:root")
    assert world.event_types()[-1] == "access.principal.deleted"


def test_a_principal_with_tokens_is_disabled_not_deleted(world: World) -> None:
    world.tokens.issue("operator:alice", expires_at=START + timedelta(days=1), label="cli")
    with pytest.raises(Conflict) as caught:
        world.principals.delete("operator:alice", actor="admin:root")
    assert str(caught.value) == "principal operator:alice has tokens or access requests; disable it instead"
    assert world.principals.find("operator:alice") is not None


def test_principal_changes_need_the_log(world: World) -> None:
    world.log.close()
    new = Principal.build(id="operator:zed", display_name="Zed", org="operator", location="US",
                          screening="none")
    with pytest.raises(AuditUnavailable):
        world.principals.create(new, actor="admin:root")
    assert world.principals.find("operator:zed") is None
    with pytest.raises(AuditUnavailable):
        world.principals.update("operator:alice", actor="admin:root", screening="none")
    assert world.principals.get("operator:alice").screening == "cleared"


# -- tokens ------------------------------------------------------------------------------


def test_token_lifecycle(world: World) -> None:
    issued = world.tokens.issue("operator:alice", expires_at=START + timedelta(hours=1), label="laptop")
    assert issued.token.startswith(f"rpt_{issued.id}_")
    assert world.tokens.authenticate(issued.token, START).id == "operator:alice"
    (info,) = world.tokens.list("operator:alice")
    assert (info.id, info.label, info.revoked_at) == (issued.id, "laptop", None)
    with pytest.raises(Unauthenticated) as caught:
        world.tokens.authenticate(issued.token, START + timedelta(hours=1))
    assert str(caught.value) == "the token expired at 2026-03-02T10:00:00.000000Z"
    wrong = issued.token[:-1] + ("A" if issued.token[-1] != "A" else "B")
    with pytest.raises(Unauthenticated) as caught:
        world.tokens.authenticate(wrong, START)
    assert str(caught.value) == "the token is not recognised"
    unknown = f"rpt_{'0' * 16}_{issued.token.split('_', 2)[2]}"
    with pytest.raises(Unauthenticated) as caught:
        world.tokens.authenticate(unknown, START)
    assert str(caught.value) == "the token is not recognised"
    world.clock.advance(minutes=5)
    revoked = world.tokens.revoke(issued.id, actor="operator:alice")
    assert revoked.revoked_at == START + timedelta(minutes=5)
    with pytest.raises(Unauthenticated) as caught:
        world.tokens.authenticate(issued.token, START)
    assert str(caught.value) == "the token was revoked at 2026-03-02T09:05:00.000000Z"
    assert world.event_types()[-2:] == ["access.token.issued", "access.token.revoked"]
    assert issued.token not in "".join(str(e.body) for e in world.events())


def test_token_of_a_disabled_principal(world: World) -> None:
    issued = world.tokens.issue("operator:olga", expires_at=START + timedelta(hours=1), label="cli")
    world.principals.disable("operator:olga", actor="admin:root")
    with pytest.raises(Unauthenticated) as caught:
        world.tokens.authenticate(issued.token, START)
    assert str(caught.value) == "principal operator:olga is disabled"
    with pytest.raises(InvalidInput) as caught_issue:
        world.tokens.issue("operator:olga", expires_at=START + timedelta(hours=1), label="cli")
    assert str(caught_issue.value) == "principal operator:olga is disabled; enable it before issuing a token"


# -- requests and grants -------------------------------------------------------------------


def _pending(world: World, **kwargs: object) -> lifecycle.Transition:
    scope = Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (subject("s1"),))
    request = AccessRequest(
        id=str(kwargs.get("id", "req_00000000000000a1")),
        requester="operator:alice",
        requester_org="operator",
        scope=kwargs.get("scope", scope),  # type: ignore[arg-type]
        purpose="customer_support",
        ticket="SUP-1",
        duration=timedelta(hours=1),
        created_at=world.now,
    )
    return lifecycle.submit(request, rules=world.rules, now=world.now)


def test_commit_is_guarded_by_version(world: World) -> None:
    stored = world.grants.commit(_pending(world), expected_version=None)
    assert stored.version == 1
    with pytest.raises(Conflict) as caught:
        world.grants.commit(_pending(world), expected_version=None)
    assert str(caught.value) == "access request req_00000000000000a1 already exists"
    withdrawn = lifecycle.withdraw(stored, by="operator:alice", now=world.now)
    assert world.grants.commit(withdrawn, expected_version=1).version == 2
    with pytest.raises(StaleRecord):
        world.grants.commit(withdrawn, expected_version=1)
    assert world.grants.get(stored.id).state is RequestState.WITHDRAWN
    assert world.grants.get(stored.id) == replace(withdrawn.record, version=2)


def test_commit_needs_the_log(world: World) -> None:
    world.log.close()
    with pytest.raises(AuditUnavailable):
        world.grants.commit(_pending(world), expected_version=None)
    assert world.grants.find("req_00000000000000a1") is None


def test_find_active_due_and_overdue(world: World) -> None:
    record = world.approve(world.submit(), "custodian:carol")
    grant = world.grants.find_active("operator:alice", "us", "contact", subject("s1"),
                                     "customer_support", world.now)
    assert grant is not None
    assert (grant.id, grant.status_at(world.now), grant.covers(subject("s1"))) == (record.id, "active", True)
    for miss in [
        ("operator:olga", "us", "contact", "customer_support"),
        ("operator:alice", "row", "contact", "customer_support"),
        ("operator:alice", "us", "device", "customer_support"),
        ("operator:alice", "us", "contact", "legal_request"),
    ]:
        who, region, collection, purpose = miss
        assert world.grants.find_active(who, region, collection, subject("s1"), purpose, world.now) is None
    assert world.grants.due(world.now) == []
    assert [r.id for r in world.grants.due(world.now + timedelta(hours=2))] == [record.id]


def test_bulk_claims_never_exceed_the_limit_under_concurrency(world: World) -> None:
    scope = Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (), 5)
    stored = world.grants.commit(_pending(world, scope=scope), expected_version=None)
    subjects = [subject(f"c{i}") for i in range(20)]
    results: dict[str, bool] = {}

    def claim(s: str) -> None:
        results[s] = world.grants.claim(stored.id, s, world.now)

    threads = [threading.Thread(target=claim, args=(s,)) for s in subjects]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results.values()) == 5
    assert world.grants.claimed(stored.id) == 5
    winner = next(s for s, ok in results.items() if ok)
    assert world.grants.claim(stored.id, winner, world.now) is True  # a slot holder keeps it
    loser = next(s for s, ok in results.items() if not ok)
    assert world.grants.claim(stored.id, loser, world.now) is False


# -- policy sets --------------------------------------------------------------------------


def test_policy_store_activates_restores_and_refuses(url: str) -> None:
    db = Database.open(url)
    log = new_log()
    try:
        engine = default_engine()
        clock = ManualClock(START)
        store = PolicyStore(db, recorder=LogRecorder(log), clock=clock, engine=engine)
        assert store.latest() is None
        first = store.ensure_active(DEFAULT_POLICIES, actor="system")
        assert (first.seq, first.version, first.actor) == (1, engine.policies.version, "system")
        assert store.ensure_active(DEFAULT_POLICIES, actor="system") == first

        stricter = DEFAULT_POLICIES + (
            '\n@id("no-erasure") @reason("erasure is paused")\n'
            'forbid (principal, action == Rempart::Action::"erase", resource);\n'
        )
        second = store.activate(stricter, reason="pause erasure during migration", actor="board:ben")
        assert engine.policies.version == second.version != first.version
        with pytest.raises(InvalidInput) as caught:
            store.activate('@id("x") permit (principal, action, resource) when { nope };',
                           reason="typo", actor="board:ben")
        assert str(caught.value).startswith("policy set refused by Cedar: ")
        assert engine.policies.version == second.version
        log.close()
        with pytest.raises(AuditUnavailable):
            store.activate(DEFAULT_POLICIES, reason="back", actor="board:ben")
        assert engine.policies.version == second.version
        assert [a.version for a in store.history()] == [first.version, second.version]

        # A restarted process decides with the set that was in force.
        fresh_engine = default_engine()
        PolicyStore(db, recorder=LogRecorder(new_log()), clock=clock, engine=fresh_engine)
        assert fresh_engine.policies.version == second.version
        assert store.get(first.version).text == DEFAULT_POLICIES
    finally:
        log.close()
        db.close()


def test_another_node_picks_up_an_activation(world: World) -> None:
    recorder = LogRecorder(world.log)
    here = PolicyStore(world.db, recorder=recorder, clock=world.clock, engine=world.engine)
    here.ensure_active(DEFAULT_POLICIES, actor="system")
    other_db = Database.open(world.db.url)
    try:
        other_engine = default_engine()
        there = PolicyStore(other_db, recorder=recorder, clock=world.clock, engine=other_engine)
        assert there.refresh() is False
        newer = DEFAULT_POLICIES + '\n@id("extra") permit (principal, action, resource) when { false };\n'
        activation = here.activate(newer, reason="test", actor="board:ben")
        assert other_engine.policies.version != activation.version
        assert there.refresh() is True
        assert other_engine.policies.version == activation.version
    finally:
        other_db.close()


def test_policy_activation_is_logged_in_full(world: World) -> None:
    store = PolicyStore(world.db, recorder=LogRecorder(world.log), clock=world.clock, engine=world.engine)
    activation = store.ensure_active(DEFAULT_POLICIES, actor="system")
    event = world.events()[-1]
    assert event.type == "policy.activated"
    assert (event.body["version"], event.body["text"], event.body["actor"]) == (
        activation.version, DEFAULT_POLICIES, "system"
    )
    assert event.body["policies"][0] == "parent-never-touches-protected"


def test_two_stores_share_one_database(url: str) -> None:
    """Two API nodes on one control database see each other's writes."""
    db_a, db_b = Database.open(url), Database.open(url)
    log = new_log()
    try:
        recorder = LogRecorder(log)
        clock = ManualClock(START)
        a = PrincipalStore(db_a, recorder=recorder, clock=clock)
        b = PrincipalStore(db_b, recorder=recorder, clock=clock)
        a.create(Principal.build(id="operator:ann", display_name="Ann", org="operator",
                                 location="US", screening="cleared"), actor="admin:root")
        assert b.get("operator:ann").org == "operator"
        grants_a, grants_b = GrantStore(db_a, recorder=recorder), GrantStore(db_b, recorder=recorder)
        assert grants_a.list() == grants_b.list() == []
        tokens = TokenStore(db_b, recorder=recorder, clock=clock)
        issued = tokens.issue("operator:ann", expires_at=START + timedelta(hours=1), label="x")
        assert TokenStore(db_a, recorder=recorder, clock=clock).authenticate(issued.token, START).id == (
            "operator:ann"
        )
    finally:
        log.close()
        db_a.close()
        db_b.close()
