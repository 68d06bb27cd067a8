"""The witness's state store: one contract, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rempart.audit.witness import SizeConflict, WitnessStore
from rempart.db import Database
from rempart.errors import InvalidInput, NotFound
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import leaf_hash
from rempart.tlog.note import Signer

ORIGIN = "example.com/log"
LOG_KEY = Signer.generate(ORIGIN).verifier()
WHEN = "2026-03-01T12:00:00.000000Z"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[WitnessStore]:
    url = f"sqlite:///{tmp_path / 'w.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_dsn")
    database = Database.open(url)
    yield WitnessStore(database)
    database.close()


def cp(size: int, tag: bytes = b"") -> Checkpoint:
    return Checkpoint(ORIGIN, size, leaf_hash(b"%d" % size + tag))


def test_a_new_log_starts_at_size_zero_and_add_log_is_idempotent(store: WitnessStore) -> None:
    first = store.add_log(ORIGIN, [LOG_KEY], when=WHEN)
    assert (first.origin, first.keys, first.size, first.root, first.note) == (
        ORIGIN,
        (LOG_KEY,),
        0,
        b"",
        None,
    )
    second_key = Signer.generate(ORIGIN).verifier()
    again = store.add_log(ORIGIN, [LOG_KEY, second_key], when=WHEN)
    assert set(again.keys) == {LOG_KEY, second_key} and len(again.keys) == 2
    assert [w.origin for w in store.logs()] == [ORIGIN]


def test_unknown_origin_is_not_found(store: WitnessStore) -> None:
    with pytest.raises(NotFound, match=r"^unknown log origin 'other/log': this witness does not witness it$"):
        store.log("other/log")


@pytest.mark.parametrize(
    ("origin", "message"),
    [
        ("", "log origin '' must be one non-empty line"),
        ("a\nb", "log origin 'a\\nb' must be one non-empty line"),
    ],
)
def test_add_log_refuses_a_bad_origin(store: WitnessStore, origin: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.add_log(origin, [LOG_KEY], when=WHEN)
    assert caught.value.message == message


def test_add_log_needs_a_key(store: WitnessStore) -> None:
    with pytest.raises(InvalidInput, match=r"^log 'example.com/log' needs at least one verifier key$"):
        store.add_log(ORIGIN, [], when=WHEN)


def test_advance_is_a_compare_and_swap(store: WitnessStore) -> None:
    store.add_log(ORIGIN, [LOG_KEY], when=WHEN)
    store.advance(ORIGIN, old_size=0, old_root=b"", checkpoint=cp(3), note=b"note 3", when=WHEN)
    state = store.log(ORIGIN)
    assert (state.size, state.root, state.note) == (3, cp(3).root, b"note 3")
    # A second request that was checked against size 0 loses: the stored size is reported.
    with pytest.raises(SizeConflict) as caught:
        store.advance(ORIGIN, old_size=0, old_root=b"", checkpoint=cp(2), note=b"note 2", when=WHEN)
    assert caught.value.size == 3
    assert caught.value.message == (
        "the witness's checkpoint for example.com/log moved to size 3 while this request (old 0) "
        "was checked; retry from size 3"
    )
    # The right size but another root (a fork at that size) loses too.
    with pytest.raises(SizeConflict):
        store.advance(ORIGIN, old_size=3, old_root=cp(3, b"x").root, checkpoint=cp(5), note=b"n", when=WHEN)
    assert store.log(ORIGIN).size == 3


def test_concurrent_advances_from_one_state_let_exactly_one_win(store: WitnessStore) -> None:
    store.add_log(ORIGIN, [LOG_KEY], when=WHEN)
    store.advance(ORIGIN, old_size=0, old_root=b"", checkpoint=cp(1), note=b"1", when=WHEN)
    start = threading.Barrier(8)
    won: list[int] = []
    lost: list[int] = []

    def attempt(size: int) -> None:
        start.wait()
        try:
            store.advance(
                ORIGIN, old_size=1, old_root=cp(1).root, checkpoint=cp(size), note=b"%d" % size, when=WHEN
            )
            won.append(size)
        except SizeConflict as exc:
            lost.append(exc.size)

    threads = [threading.Thread(target=attempt, args=(size,)) for size in range(2, 10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert lost == [won[0]] * 7
    assert store.log(ORIGIN).size == won[0]


def test_rejections_are_kept_in_order(store: WitnessStore) -> None:
    store.add_log(ORIGIN, [LOG_KEY], when=WHEN)
    store.record_rejection(ORIGIN, status=422, reason="bad proof", request=b"old 1\n\nx", when=WHEN)
    store.record_rejection(ORIGIN, status=409, reason="fork", request=b"old 3\n\ny", when=WHEN)
    assert [(r.status, r.reason, r.request, r.received) for r in store.rejections(ORIGIN)] == [
        (422, "bad proof", b"old 1\n\nx", WHEN),
        (409, "fork", b"old 3\n\ny", WHEN),
    ]
    assert store.rejections("other") == []
