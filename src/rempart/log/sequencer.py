"""The running transparency log: group-commit sequencing and checkpoint publication.

Appenders queue entries; one sequencer thread takes everything queued, works
out the new Merkle nodes on a copy of the tree's right edge, and hands the
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
from dataclasses import dataclass

from rempart.errors import AuditUnavailable, InvalidInput, RempartError, VerificationFailed
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import Frontier, leaf_hash, tree_root
from rempart.tlog.note import Note
from rempart.tlog.tiles import MAX_ENTRY_SIZE

__all__ = ["LogPosition", "TransparencyLog"]

_log = logging.getLogger("rempart.log")

CheckpointSigner = Callable[[Checkpoint], bytes]
"""Turns a checkpoint into its signed note (the log's own signature)."""


@dataclass(frozen=True, slots=True)
class LogPosition:
    index: int
    leaf_hash: bytes


class _Ticket:
    __slots__ = ("entry", "error", "future", "loop", "position")

    def __init__(
        self,
        entry: bytes,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[LogPosition] | None = None,
    ) -> None:
        self.entry = entry
        self.position: LogPosition | None = None
        self.error: RempartError | None = None
        self.loop = loop
        self.future = future


def _check_entry(entry: bytes) -> bytes:
    if not isinstance(entry, bytes | bytearray | memoryview):
        raise InvalidInput(f"a log entry is bytes, got {type(entry).__name__}")
    entry = bytes(entry)
    if len(entry) > MAX_ENTRY_SIZE:
        raise InvalidInput(
            f"a log entry is at most {MAX_ENTRY_SIZE} bytes (tlog-tiles bundles use a "
            f"16-bit length), got {len(entry)}"
        )
    return entry


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
    ) -> None:
        if checkpoint_interval <= 0:
            raise InvalidInput("checkpoint_interval must be positive")
        if max_batch < 1:
            raise InvalidInput("max_batch must be at least 1")
        self.storage = storage
        self.origin = origin
        self._sign = sign
        self.checkpoint_interval = checkpoint_interval
        self.max_batch = max_batch
        self.append_timeout = append_timeout
        self._pending: list[_Ticket] = []
        self._work = threading.Condition()
        self._done = threading.Condition()
        self._state = threading.RLock()  # held while committing or publishing
        self._frontier: Frontier | None = None
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
        frontier = Frontier.from_hashes(
            size, self.storage.read_hashes(Frontier.nodes_for_size(size))
        )
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
        self._frontier = frontier
        self._latest = latest

    def _current_frontier(self) -> Frontier:
        """The committed tree's right edge, re-read from storage after a failure."""
        if self._frontier is None:
            self._recover()
        if self._frontier is None:  # pragma: no cover - _recover sets it or raises
            raise AuditUnavailable("the log's state could not be recovered")
        return self._frontier

    # -- appending ----------------------------------------------------------

    def append(self, entry: bytes) -> LogPosition:
        """Append one entry; return once it is durable. Raises AuditUnavailable on failure."""
        return self.append_many([entry])[0]

    def append_many(self, entries: Sequence[bytes]) -> list[LogPosition]:
        """Append entries in order; return once all are durable."""
        tickets = [_Ticket(_check_entry(e)) for e in entries]
        if not tickets:
            return []
        self._enqueue(tickets)
        deadline = time.monotonic() + self.append_timeout + len(tickets) / 10_000
        last = tickets[-1]
        with self._done:
            while last.position is None and last.error is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._done.wait(remaining):
                    break
        return [self._outcome(t) for t in tickets]

    async def append_async(self, entry: bytes) -> LogPosition:
        """Append from asyncio code without blocking the event loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[LogPosition] = loop.create_future()
        ticket = _Ticket(_check_entry(entry), loop, future)
        self._enqueue([ticket])
        try:
            return await asyncio.wait_for(future, self.append_timeout)
        except TimeoutError:
            self._withdraw([ticket])
            raise AuditUnavailable(
                f"the log did not record the entry within {self.append_timeout} s"
            ) from None

    def _enqueue(self, tickets: list[_Ticket]) -> None:
        with self._work:
            if self._stopping:
                raise AuditUnavailable("the log is closed")
            self._pending.extend(tickets)
            self._work.notify()

    def _withdraw(self, tickets: list[_Ticket]) -> None:
        """Take back tickets that no batch has taken yet, so they are never written."""
        with self._work:
            ids = {id(t) for t in tickets}
            self._pending = [t for t in self._pending if id(t) not in ids]

    def _outcome(self, ticket: _Ticket) -> LogPosition:
        if ticket.position is not None:
            return ticket.position
        if ticket.error is not None:
            raise ticket.error
        self._withdraw([ticket])
        if ticket.position is not None:  # committed while we withdrew
            return ticket.position
        raise AuditUnavailable(f"the log did not record the entry within {self.append_timeout} s")

    # -- the sequencer thread -----------------------------------------------

    def _run(self) -> None:
        while True:
            with self._work:
                while not self._pending and not self._stopping and not self._checkpoint_due():
                    self._work.wait(self._wait_time())
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                stopping = self._stopping and not self._pending
            if batch:
                self._commit(batch)
            if self._checkpoint_due():
                self._publish_safely()
            if stopping:
                return

    def _wait_time(self) -> float | None:
        if self._frontier is None or self._latest_size() >= self._frontier.size:
            return None
        return max(0.0, self._last_publish + self.checkpoint_interval - time.monotonic())

    def _checkpoint_due(self) -> bool:
        return (
            self._frontier is not None
            and self._frontier.size > self._latest_size()
            and time.monotonic() - self._last_publish >= self.checkpoint_interval
        )

    def _latest_size(self) -> int:
        return -1 if self._latest is None else self._latest.size

    def _commit(self, batch: list[_Ticket]) -> None:
        with self._state:
            try:
                frontier = self._current_frontier().copy()
                first = frontier.size
                entries = [t.entry for t in batch]
                leaves = [leaf_hash(e) for e in entries]
                nodes = frontier.extend(leaves)
                self.storage.append(first, entries, nodes)
            except Exception as exc:
                if not isinstance(exc, RempartError):
                    _log.exception("unexpected failure appending %d entries", len(batch))
                _log.error("log append of %d entries failed: %s", len(batch), exc)
                self._frontier = None  # re-read from storage before the next batch
                error = AuditUnavailable(f"the log could not record the entry: {exc}")
                for t in batch:
                    t.error = error
            else:
                self._frontier = frontier
                for i, t in enumerate(batch):
                    t.position = LogPosition(first + i, leaves[i])
        self._notify(batch)

    def _notify(self, batch: list[_Ticket]) -> None:
        by_loop: dict[
            asyncio.AbstractEventLoop,
            list[tuple[asyncio.Future[LogPosition], LogPosition | RempartError]],
        ] = defaultdict(list)
        for t in batch:
            if t.loop is not None and t.future is not None:
                outcome: LogPosition | RempartError = t.position or t.error or AuditUnavailable(
                    "no outcome"
                )
                by_loop[t.loop].append((t.future, outcome))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_resolve, items)
        with self._done:
            self._done.notify_all()

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
            frontier = self._current_frontier()
            self._last_publish = time.monotonic()
            size = frontier.size
            if self._latest is not None and self._latest.size == size:
                return self._latest
            checkpoint = Checkpoint(self.origin, size, frontier.root())
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
            return self._current_frontier().size

    def close(self) -> None:
        """Drain the queue, publish a final checkpoint, stop the sequencer, close storage."""
        with self._work:
            if self._stopping:
                return
            self._stopping = True
            self._work.notify()
        self._thread.join()
        if self._frontier is not None and self._frontier.size > self._latest_size():
            self._publish_safely()
        self.storage.close()

    def __enter__(self) -> TransparencyLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
