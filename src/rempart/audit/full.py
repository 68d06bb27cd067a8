"""A full audit in one pass: sync the mirror and replay every invariant side by side.

``rempart audit sync`` then ``rempart audit check`` read every entry twice,
one command after the other, each on one core. :func:`full_audit` does both
in one pass: the mirror's sync runs here, and the replay runs in a second
process that receives each run of entries as soon as the sync has matched
them to their level-0 tile hashes. The replay's verdict stands only once the
sync has verified everything up to the signed checkpoint; if the sync raises,
the second process is stopped and its work thrown away, and the sync's error
is what the caller sees, exactly as ``Mirror.sync`` raises it.

Entries already mirrored by earlier syncs are replayed first (the invariants
need the whole history), then the new ones. Where ``fork`` is not available,
or with ``processes=1``, the same replay runs in this process, fed the same
way; its result is the same.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import multiprocessing
import pickle
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Protocol

from rempart.audit.invariants import InvariantReplay, ReplayResult
from rempart.audit.mirror import Mirror, SyncReport
from rempart.log.source import TileSource
from rempart.tlog.tiles import TILE_WIDTH

__all__ = ["FullAudit", "full_audit"]

_PIPE_BYTES = 1 << 20  # room for a few bundles in flight, so the sync rarely waits on the replay
_F_SETPIPE_SZ = 1031  # Linux's fcntl to resize a pipe (not exported by Python 3.11's fcntl module)


@dataclass(frozen=True, slots=True)
class FullAudit:
    """What one pass found: the sync's report and the replay's result."""

    sync: SyncReport
    replay: ReplayResult


class _Replay(Protocol):
    def feed(self, first: int, entries: list[bytes]) -> None: ...

    def finish(self, checkpoint: bytes, mirror_threshold: int) -> ReplayResult: ...

    def stop(self) -> None: ...


class _LocalReplay:
    """The replay in this process."""

    def __init__(self, engine: InvariantReplay) -> None:
        self._engine = engine

    def feed(self, first: int, entries: list[bytes]) -> None:
        feed = self._engine.feed
        for offset, data in enumerate(entries):
            feed(first + offset, data)

    def finish(self, checkpoint: bytes, mirror_threshold: int) -> ReplayResult:
        return self._engine.finish(checkpoint=checkpoint, mirror_threshold=mirror_threshold)

    def stop(self) -> None:
        pass


class _ForkedReplay:
    """The replay in a forked child, fed runs of entries over a pipe.

    The engine is built (and its trust chain verified) before the fork, so a bad
    chain fails here. Messages to the child are pickled ``(first, entries)``
    runs, then ``(checkpoint, threshold)``; the child answers with
    ``("result", ReplayResult)`` or ``("error", traceback text)``.
    """

    def __init__(self, engine: InvariantReplay) -> None:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        answer_receive, answer_send = context.Pipe(duplex=False)
        with contextlib.suppress(OSError):  # a smaller pipe is only slower
            fcntl.fcntl(send.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
        self._process = context.Process(
            target=_serve, args=(engine, receive, answer_send), name="rempart-audit-replay", daemon=True
        )
        # The child would otherwise copy every page of the parent's heap its collector walks.
        frozen_before = gc.get_freeze_count()
        gc.freeze()
        try:
            self._process.start()
        except BaseException:
            for end in (receive, send, answer_receive, answer_send):
                end.close()
            raise
        finally:
            if not frozen_before:  # a process that froze its heap itself (rempart serve) keeps it so
                gc.unfreeze()
        receive.close()
        answer_send.close()
        self._send = send
        self._answers = answer_receive

    def feed(self, first: int, entries: list[bytes]) -> None:
        try:
            self._send.send_bytes(pickle.dumps((first, entries), protocol=pickle.HIGHEST_PROTOCOL))
        except OSError:
            self._raise_answer()

    def finish(self, checkpoint: bytes, mirror_threshold: int) -> ReplayResult:
        try:
            self._send.send_bytes(pickle.dumps((checkpoint, mirror_threshold)))
        except OSError:
            self._raise_answer()
        return self._raise_answer()

    def _raise_answer(self) -> ReplayResult:
        """The child's answer: its result, or its failure raised here."""
        try:
            kind, value = self._answers.recv()
        except (EOFError, OSError):
            self._process.join(5)
            raise RuntimeError(
                f"the replay process ended without an answer (exit code {self._process.exitcode})"
            ) from None
        self._process.join(5)
        if kind == "result" and isinstance(value, ReplayResult):
            return value
        raise RuntimeError(f"the replay process failed:\n{value}")

    def stop(self) -> None:
        self._send.close()
        if self._process.is_alive():
            self._process.kill()
        self._process.join(5)
        self._answers.close()


def _serve(engine: InvariantReplay, receive: Connection, answers: Connection) -> None:
    """The child: replay every run it is sent, then answer with the result."""
    replay = _LocalReplay(engine)
    try:
        while True:
            message = pickle.loads(receive.recv_bytes())  # noqa: S301 - from our own parent, over a pipe
            if type(message[1]) is not list:
                checkpoint, threshold = message
                break
            replay.feed(*message)
        answers.send(("result", replay.finish(checkpoint, threshold)))
    except BaseException:
        with contextlib.suppress(OSError):  # a parent that is gone hears nothing
            answers.send(("error", traceback.format_exc()))


def full_audit(
    mirror: Mirror,
    source: TileSource,
    *,
    trust_chain: Sequence[bytes] | None = None,
    trust_source: str | None = None,
    now: datetime | None = None,
    processes: int = 2,
) -> FullAudit:
    """Sync ``mirror`` from ``source`` and replay every entry through every invariant, in one pass.

    Raises what :meth:`Mirror.sync` raises when the log does not verify (the
    replay is then discarded), and what :class:`InvariantReplay` raises for a
    trust chain that does not verify (before anything is fetched).
    """
    engine = InvariantReplay(trust_chain=trust_chain, trust_source=trust_source, now=now)
    replay: _Replay = _LocalReplay(engine)
    if processes > 1 and "fork" in multiprocessing.get_all_start_methods():
        with contextlib.suppress(OSError):  # no second process (out of memory, process limit): one is enough
            replay = _ForkedReplay(engine)
    try:
        run: list[bytes] = []
        first = 0
        for index, data in mirror.entries():  # what earlier syncs verified
            if not run:
                first = index
            run.append(data)
            if len(run) == TILE_WIDTH:
                replay.feed(first, run)
                run = []
        if run:
            replay.feed(first, run)
        report = mirror.sync(source, verified=replay.feed)
        state = mirror.state
        if state is None:  # pragma: no cover - a sync that returns has stored its state
            raise RuntimeError(f"the mirror in {mirror.directory} has no state after a sync")
        result = replay.finish(state.note, mirror.trust.threshold)
    finally:
        replay.stop()
    return FullAudit(report, result)
