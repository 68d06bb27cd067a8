"""The running transparency log: group-commit sequencing and checkpoint publication.

Appenders queue entries; one sequencer thread takes everything queued, works
out the new Merkle hashes on a copy of the tree's right edge (one partial tile
row per tile level, :class:`~rempart.tlog.tiletree.TiledTree`), and hands the
whole batch to storage in one atomic, durable transaction. Only then are the
appenders told their index: an acknowledged entry is on disk.

What a crash at each step does (recovery runs the same code as start-up):

1. Entry queued, batch not yet committed: nothing is stored and nobody was
   acknowledged; the appender's process is gone with it.
2. Storage commit in flight: the database's own atomicity decides. Either the
   batch is there in full or not at all. Nobody was acknowledged yet.
3. Committed, acknowledgements not yet sent: the entries are in the log but
   their appenders never heard back. Harmless for an audit log: a decision on
   the record that was never acted on.
4. Checkpoint signing and storing: checkpoints are only ever made for sizes
   that are committed, from the in-memory right edge of the committed tree,
   so every checkpoint is consistent with every earlier one.

On start, the size and right edge are read back from storage, and the latest
stored checkpoint is checked against the stored tree: a mismatch means the
storage was altered, and the log refuses to run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import NamedTuple

from rempart.errors import AuditUnavailable, Conflict, InvalidInput, RempartError, VerificationFailed
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import leaf_hash, tree_root
from rempart.tlog.note import Note
from rempart.tlog.tiles import MAX_ENTRY_SIZE
from rempart.tlog.tiletree import TiledTree, edge_keys

__all__ = ["LogPosition", "TransparencyLog"]

_log = logging.getLogger("rempart.log")

CheckpointSigner = Callable[[Checkpoint], bytes]
"""Turns a checkpoint into its signed note (the log's own signature)."""


class LogPosition(NamedTuple):
    """Where an entry landed: its index and its RFC 6962 leaf hash."""

    index: int  # type: ignore[assignment]  # shadows tuple.index on purpose: the domain's word
    leaf_hash: bytes


class _Ticket:
    """One caller's entries, committed together in order (a ticket is never split)."""

    __slots__ = ("done", "entries", "error", "first", "future", "leaves", "loop")

    def __init__(
        self,
        entries: list[bytes],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[LogPosition] | None = None,
    ) -> None:
        self.entries = entries
        self.first: int | None = None
        self.leaves: list[bytes] = []
        self.error: RempartError | None = None
        self.loop = loop
        self.future = future
        # Held until the ticket has an outcome: a blocked appender waits on exactly
        # its own lock, so a batch wakes its own appenders and nobody else.
        self.done: threading.Lock | None = None
        if future is None:
            self.done = threading.Lock()
            self.done.acquire()

    def positions(self) -> list[LogPosition]:
        first = self.first
        if first is None:  # pragma: no cover - only called once committed
            raise AuditUnavailable("entries not committed")
        new = tuple.__new__  # skips the named tuple's Python-level __new__: bulk appends make millions
        indexes = range(first, first + len(self.leaves))
        return [new(LogPosition, p) for p in zip(indexes, self.leaves, strict=True)]


def _check_entry(entry: bytes) -> bytes:
    if type(entry) is not bytes:
        if not isinstance(entry, bytes | bytearray | memoryview):
            raise InvalidInput(f"a log entry is bytes, got {type(entry).__name__}")
        entry = bytes(entry)
    if len(entry) > MAX_ENTRY_SIZE:
        raise InvalidInput(
            f"a log entry is at most {MAX_ENTRY_SIZE} bytes (tlog-tiles bundles use a "
            f"16-bit length), got {len(entry)}"
        )
    return entry


class _Expired(Exception):
    """The append timeout ran out before the sequencer resolved the future."""


def _expire(future: asyncio.Future[LogPosition]) -> None:
    if not future.done():
        future.set_exception(_Expired())


def _resolve(batch: list[tuple[asyncio.Future[LogPosition], LogPosition | RempartError]]) -> None:
    for future, outcome in batch:
        if future.done():
            continue
        if isinstance(outcome, LogPosition):
            future.set_result(outcome)
        else:
            future.set_exception(outcome)


class TransparencyLog:
    """An append-only Merkle log with durable group-committed appends.

    >>> from rempart.log.memory import MemoryLogStorage
    >>> log = TransparencyLog(storage=MemoryLogStorage(), origin="example/log",
    ...                       sign=lambda cp: cp.body().encode())
    >>> log.append(b"hello").index
    0
    >>> log.close()
    """

    def __init__(
        self,
        *,
        storage: LogStorage,
        origin: str,
        sign: CheckpointSigner,
        checkpoint_interval: float = 1.0,
        max_batch: int = 16384,
        append_timeout: float = 10.0,
        gather_window: float = 0.005,
    ) -> None:
        if checkpoint_interval <= 0:
            raise InvalidInput("checkpoint_interval must be positive")
        if max_batch < 1:
            raise InvalidInput("max_batch must be at least 1")
        if not 0 <= gather_window < append_timeout:
            raise InvalidInput("gather_window must be at least 0 and below append_timeout")
        self.storage = storage
        self.origin = origin
        self._sign = sign
        self.checkpoint_interval = checkpoint_interval
        self.max_batch = max_batch
        self.append_timeout = append_timeout
        self.gather_window = gather_window
        self._pending: list[_Ticket] = []
        self._queued = 0  # entries in _pending
        self._work = threading.Condition()
        self._idle = False  # the sequencer waits for work: enqueueing must wake it
        self._expected = 1  # entries the last batch carried: how many appenders are about
        self._gathering = False  # the sequencer waits until _queued reaches _expected
        self._state = threading.RLock()  # held while committing or publishing
        self._tree: TiledTree | None = None
        self._latest: StoredCheckpoint | None = None
        self._last_publish = 0.0
        self._stopping = False
        self._checkpoint_listeners: list[Callable[[StoredCheckpoint], None]] = []
        self._recover()
        self._thread = threading.Thread(target=self._run, name="rempart-sequencer", daemon=True)
        self._thread.start()

    # -- recovery -----------------------------------------------------------

    def _recover(self) -> None:
        """Read size, right edge and latest checkpoint back from storage, and cross-check."""
        size = self.storage.size()
        keys = edge_keys(size)
        edge = self.storage.read_rows(keys)
        if len(edge) != len(keys):
            raise VerificationFailed(
                f"storage holds {size} entries but lacks tile rows of the tree's right edge",
                stored_size=size,
            )
        tree = TiledTree(size, edge)
        latest = self.storage.latest_checkpoint()
        if latest is not None:
            if latest.size > size:
                raise VerificationFailed(
                    f"the latest checkpoint is for size {latest.size} but storage holds only "
                    f"{size} entries: committed entries were lost",
                    checkpoint_size=latest.size,
                    stored_size=size,
                )
            stored_root = tree_root(latest.size, self.storage)
            signed_root = Checkpoint.parse(Note.parse(latest.note).text).root
            if stored_root != signed_root:
                raise VerificationFailed(
                    f"stored tree of size {latest.size} has root {stored_root.hex()}, but the "
                    f"published checkpoint says {signed_root.hex()}: storage was altered",
                    size=latest.size,
                )
        self._tree = tree
        self._latest = latest

    def _current_tree(self) -> TiledTree:
        """The committed tree's right edge, re-read from storage after a failure."""
        if self._tree is None:
            self._recover()
        if self._tree is None:  # pragma: no cover - _recover sets it or raises
            raise AuditUnavailable("the log's state could not be recovered")
        return self._tree

    # -- appending ----------------------------------------------------------

    def append(self, entry: bytes) -> LogPosition:
        """Append one entry; return once it is durable. Raises AuditUnavailable on failure."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[bytes]) -> list[LogPosition]:
        """Append entries in order, contiguously; return once all are durable."""
        ticket = _Ticket([_check_entry(e) for e in entries])
        if not ticket.entries:
            return []
        self._enqueue(ticket)
        waiter = ticket.done
        if waiter is not None and not waiter.acquire(timeout=self.append_timeout + len(entries) / 10_000):
            self._withdraw(ticket)
        if ticket.error is not None:
            raise ticket.error
        if ticket.first is None:
            raise AuditUnavailable(f"the log did not record the entries within {self.append_timeout} s")
        return ticket.positions()

    async def append_async(self, entry: bytes) -> LogPosition:
        """Append from asyncio code without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LogPosition] = loop.create_future()
        ticket = _Ticket([_check_entry(entry)], loop, future)
        self._enqueue(ticket)
        timer = loop.call_later(self.append_timeout, _expire, future)
        try:
            return await future
        except _Expired:
            self._withdraw(ticket)
            raise AuditUnavailable(
                f"the log did not record the entry within {self.append_timeout} s"
            ) from None
        finally:
            timer.cancel()

    def _enqueue(self, ticket: _Ticket) -> None:
        with self._work:
            if self._stopping:
                raise AuditUnavailable("the log is closed")
            self._pending.append(ticket)
            self._queued += len(ticket.entries)
            if self._idle or (self._gathering and self._queued >= self._expected):
                self._work.notify()

    def _withdraw(self, ticket: _Ticket) -> None:
        """Take back a ticket no batch has taken yet, so it is never written."""
        with self._work, contextlib.suppress(ValueError):
            self._pending.remove(ticket)
            self._queued -= len(ticket.entries)

    # -- the sequencer thread -----------------------------------------------

    def _run(self) -> None:
        while True:
            with self._work:
                idle_since = time.monotonic()
                while not self._pending and not self._stopping and not self._checkpoint_due():
                    self._idle = True
                    self._work.wait(self._wait_time())
                    self._idle = False
                if time.monotonic() - idle_since > self.gather_window:
                    self._expected = 1  # a pause in the load: the appenders of before are gone
                self._gather()
                batch = self._take_batch()
                stopping = self._stopping and not self._pending
            if batch:
                self._commit(batch)
            if self._checkpoint_due():
                self._publish_safely()
            if stopping:
                return

    def _gather(self) -> None:
        """Before a commit, wait (at most ``gather_window``) for as many entries as the last one carried.

        Group commit by itself commits as soon as one entry is queued; under
        steady concurrency that makes many small commits, each paying a sync
        and the hand-offs of the interpreter lock between the appenders and
        this thread. The last batch's size says how many appenders are about:
        waiting for that many (or for the window to close) makes each commit
        carry about one entry per concurrent appender, and the appenders spend
        less time than they save. A lone appender is not delayed (its batches
        carry one entry); after a pause longer than the window the count
        starts again from one; a drop in load without a pause costs at most
        one window. Called with ``_work`` held.
        """
        if self._queued >= self._expected or not self._pending or self._stopping:
            return
        deadline = time.monotonic() + self.gather_window
        self._gathering = True
        try:
            while self._queued < self._expected and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._work.wait(left)
        finally:
            self._gathering = False

    def _take_batch(self) -> list[_Ticket]:
        """Queued tickets up to ``max_batch`` entries (at least one ticket)."""
        taken, count = 0, 0
        for ticket in self._pending:
            if taken and count + len(ticket.entries) > self.max_batch:
                break
            taken += 1
            count += len(ticket.entries)
        batch = self._pending[:taken]
        del self._pending[:taken]
        self._queued -= count
        if batch:
            self._expected = min(count, self.max_batch)
        return batch

    def _wait_time(self) -> float | None:
        if self._tree is None or self._latest_size() >= self._tree.size:
            return None
        return max(0.0, self._last_publish + self.checkpoint_interval - time.monotonic())

    def _checkpoint_due(self) -> bool:
        return (
            self._tree is not None
            and self._tree.size > self._latest_size()
            and time.monotonic() - self._last_publish >= self.checkpoint_interval
        )

    def _latest_size(self) -> int:
        return -1 if self._latest is None else self._latest.size

    def _append(self, entries: list[bytes], leaves: list[bytes]) -> tuple[TiledTree, int]:
        tree = self._current_tree().copy()
        first = tree.size
        self.storage.append(first, entries, tree.extend(leaves))
        return tree, first

    def _commit(self, batch: list[_Ticket]) -> None:
        with self._state:
            entries = [e for t in batch for e in t.entries]
            leaves = [leaf_hash(e) for e in entries]
            try:
                try:
                    tree, first = self._append(entries, leaves)
                except Conflict as exc:
                    if "stored_size" not in exc.details:
                        raise
                    # Another writer appended since this one last did (a second
                    # process on the same log): nothing of this batch was written,
                    # so re-read the tree and place the batch after theirs.
                    _log.info("the log grew elsewhere (%s); appending after it", exc)
                    self._tree = None
                    tree, first = self._append(entries, leaves)
            except Exception as exc:
                if not isinstance(exc, RempartError):
                    _log.exception("unexpected failure appending %d entries", len(batch))
                _log.error("log append of %d entries failed: %s", len(batch), exc)
                self._tree = None  # re-read from storage before the next batch
                error = AuditUnavailable(f"the log could not record the entry: {exc}")
                for t in batch:
                    t.error = error
            else:
                self._tree = tree
                offset = 0
                for t in batch:
                    n = len(t.entries)
                    t.leaves = leaves[offset : offset + n]
                    t.first = first + offset
                    offset += n
        self._notify(batch)

    def _notify(self, batch: list[_Ticket]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[LogPosition], LogPosition | RempartError]],
        ] = defaultdict(list)
        for t in batch:
            if t.loop is not None and t.future is not None:
                outcome: LogPosition | RempartError = (
                    t.error
                    if t.error is not None
                    else LogPosition(t.first, t.leaves[0])
                    if t.first is not None
                    else AuditUnavailable("the entry has no outcome")
                )
                by_loop[t.loop].append((t.future, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, items)
        for t in batch:
            if t.done is not None:
                t.done.release()

    # -- checkpoints ----------------------------------------------------------

    def _publish_safely(self) -> None:
        try:
            self.publish_checkpoint()
        except RempartError as exc:
            _log.error("publishing a checkpoint failed: %s", exc)
            self._last_publish = time.monotonic()  # retry after the interval

    def publish_checkpoint(self) -> StoredCheckpoint:
        """Sign and store a checkpoint for the committed size now (if it grew)."""
        with self._state:
            tree = self._current_tree()
            self._last_publish = time.monotonic()
            size = tree.size
            if self._latest is not None and self._latest.size == size:
                return self._latest
            checkpoint = Checkpoint(self.origin, size, tree.root())
            stored = StoredCheckpoint(size, self._sign(checkpoint))
            self.storage.put_checkpoint(stored)
            self._latest = stored
            listeners = list(self._checkpoint_listeners)
        for listener in listeners:
            try:
                listener(stored)
            except Exception:
                _log.exception("checkpoint listener failed")
        return stored

    def on_checkpoint(self, listener: Callable[[StoredCheckpoint], None]) -> None:
        """Call ``listener`` after each new checkpoint is stored (witnesses, mirrors)."""
        self._checkpoint_listeners.append(listener)

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        return self._latest

    @property
    def size(self) -> int:
        """Entries committed so far (may be ahead of the latest checkpoint)."""
        with self._state:
            return self._current_tree().size

    def close(self) -> None:
        """Drain the queue, publish a final checkpoint, stop the sequencer, close storage."""
        with self._work:
            if self._stopping:
                return
            self._stopping = True
            self._work.notify()
        self._thread.join()
        if self._tree is not None and self._tree.size > self._latest_size():
            self._publish_safely()
        self.storage.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
