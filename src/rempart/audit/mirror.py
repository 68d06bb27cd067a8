"""The auditor's mirror: ``rempart audit sync`` fetches a log over tlog-tiles and checks everything.

A :class:`Mirror` keeps, in ``<state>/mirror.db`` (SQLite), every entry it has
verified (as the tlog-tiles entry bundles it fetched, one row per bundle),
the tree's right edge (one hash per set bit of the size) and the last
verified signed checkpoint; ``<state>/checkpoint`` is a copy of that note
for other tools. Each :meth:`Mirror.sync`:

1. fetches ``checkpoint`` and verifies the log's signature and, when witness
   keys are given, at least ``threshold`` valid cosignatures;
2. checks the new checkpoint against the stored one: a smaller size is a
   rollback, another root at the same size a fork, and a larger size needs a
   consistency proof built from the served hash tiles;
3. fetches only the entry bundles from the stored size on (the partial bundle
   the last sync ended in is fetched again, wider, and its already mirrored
   entries must not have changed), checks each entry against the served
   level-0 hash tile to name any altered, missing or moved entry by its
   index, and extends the stored right edge with the new leaves: the root it
   reaches must be the checkpoint's.

Only then does the new state replace the old one, in one transaction. Any
failure raises :class:`~rempart.errors.VerificationFailed` with the sizes and
hashes in its details; when the log signed what contradicts, the evidence is
kept under ``<state>/evidence/`` and the previous good state stays as it was.

:func:`compare_checkpoints` is the gossip check: two parties who were served
two checkpoints of the same log learn whether both can be true.
"""

from __future__ import annotations

import base64
import hashlib
import queue
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import zstandard

from rempart.audit._files import write_file
from rempart.audit.evidence import EvidenceLocker, EvidenceRecord
from rempart.clock import Clock, format_time
from rempart.db import Database
from rempart.errors import ConfigurationError, InvalidInput, NotFound, RempartError, VerificationFailed
from rempart.log.source import TileSource
from rempart.tlog.checkpoint import Checkpoint, open_checkpoint
from rempart.tlog.cosignature import CosignatureVerifier, open_cosigned_checkpoint
from rempart.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_proof,
    covering_nodes,
    fold_range,
    leaf_hash,
    node_hash,
    tree_root,
    verify_consistency,
)
from rempart.tlog.note import Verifier
from rempart.tlog.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    TileHashReader,
    TilePath,
    entry_bundles_for_size,
    split_hash_tile,
    tile_root,
)

__all__ = [
    "MIRROR_SCHEMA",
    "CheckpointComparison",
    "LogTrust",
    "Mirror",
    "MirroredCheckpoint",
    "SyncReport",
    "compare_checkpoints",
]

MIRROR_SCHEMA: list[tuple[str, str]] = [
    (
        "mirror-0001",
        """
        CREATE TABLE mirror_entries (idx {bigint} PRIMARY KEY, data {blob} NOT NULL);
        CREATE TABLE mirror_state (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            origin TEXT NOT NULL,
            size {bigint} NOT NULL,
            root {blob} NOT NULL,
            edge {blob} NOT NULL,
            note {blob} NOT NULL,
            synced TEXT NOT NULL
        )
        """,
    ),
    (
        # Entries as the bundles they came in (one row per 256 entries, not one per entry):
        # what a sync writes and a replay reads in bulk. Rows of mirror_entries are moved
        # into bundles by Mirror when it opens, then the table is dropped.
        "mirror-0002",
        "CREATE TABLE mirror_bundles "
        "(tile {bigint} PRIMARY KEY, count INTEGER NOT NULL, data {blob} NOT NULL)",
    ),
    (
        # How a bundle's bytes are kept: 'none' (as served) or 'zstd' (a Zstandard frame with
        # its content size and checksum, what syncs write: log entries shrink about 15-20x).
        "mirror-0003",
        "ALTER TABLE mirror_bundles ADD COLUMN codec TEXT NOT NULL DEFAULT 'none'",
    ),
]
"""The mirror's tables; entries at or past the state's size are scratch."""

_INSERT_BATCH = 64  # bundles per transaction
_READ_PAGE = 16  # bundles per query when reading entries back
_MAX_BUNDLE = TILE_WIDTH * (2 + 0xFFFF)  # 256 entries, each at most what a two-byte length can say


def _unpack(codec: object, data: object) -> bytes | None:
    """A stored bundle's bytes, or None when the row is not something a sync wrote."""
    if type(data) is not bytes:
        return None
    if codec == "none":
        return data
    if codec != "zstd":
        return None
    try:
        size = zstandard.frame_content_size(data)
        if not 0 <= size <= _MAX_BUNDLE:
            return None
        return zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError:
        return None


@dataclass(frozen=True, slots=True)
class LogTrust:
    """What an auditor trusts a log by: its origin, its key, and the witnesses with their threshold."""

    origin: str
    log: Verifier
    witnesses: tuple[CosignatureVerifier, ...] = ()
    threshold: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "witnesses", tuple(self.witnesses))
        if not 0 <= self.threshold <= len(self.witnesses):
            raise InvalidInput(
                f"witness threshold {self.threshold} is not in 0..{len(self.witnesses)} "
                "(the number of witness keys given)"
            )

    def open_signed(self, note: bytes) -> Checkpoint:
        """Verify the log's signature (and any cosignature from a listed witness), not the threshold."""
        return open_checkpoint(note, origin=self.origin, log=self.log, witnesses=self.witnesses).checkpoint

    def cosigned_by(self, note: bytes) -> tuple[str, ...]:
        """Verify the threshold; return the names of the witnesses whose cosignatures verified."""
        if self.threshold == 0:
            opened = open_checkpoint(note, origin=self.origin, log=self.log, witnesses=self.witnesses)
            return tuple(v.verifier.name for v in opened.note.verified if v.verifier in self.witnesses)
        cosigned = open_cosigned_checkpoint(
            note, origin=self.origin, log=self.log, witnesses=self.witnesses, threshold=self.threshold
        )
        return cosigned.witnesses


@dataclass(frozen=True, slots=True)
class MirroredCheckpoint:
    """The last verified checkpoint of a mirror and the tree's right edge at its size."""

    size: int
    root: bytes
    note: bytes
    edge: tuple[bytes, ...] = field(repr=False)
    synced: str


@dataclass(frozen=True, slots=True)
class SyncReport:
    """What one sync did: sizes before and after, entries fetched, who cosigned."""

    origin: str
    size: int
    root: bytes
    previous_size: int | None
    new_entries: int
    cosigned_by: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CheckpointComparison:
    """Two checkpoints of one log that can both be true: the older is a prefix of the newer."""

    older: Checkpoint
    newer: Checkpoint


def _proof_text(old: int, new: int, proof: Sequence[bytes]) -> bytes:
    lines = [f"consistency {old} {new}", *(base64.b64encode(h).decode() for h in proof)]
    return ("\n".join(lines) + "\n").encode()


class _RightEdge:
    """The tree's right edge: one complete-subtree hash per set bit of the size, stored between syncs.

    Like :class:`~rempart.tlog.merkle.Frontier`, but it also takes whole
    aligned subtrees (a full entry bundle is one level-8 node), so a sync
    folds 256 verified leaves with one :func:`tile_root` instead of 256 appends.
    """

    def __init__(self, size: int, hashes: Sequence[bytes]) -> None:
        nodes = covering_nodes(0, size)
        if len(nodes) != len(hashes):
            raise VerificationFailed(
                f"a right edge of size {size} has {len(nodes)} hashes; the mirror holds {len(hashes)}"
            )
        self.size = size
        self._stack = [(n.level, h) for n, h in zip(nodes, hashes, strict=True)]

    @property
    def hashes(self) -> list[bytes]:
        return [h for _, h in self._stack]

    def append(self, level: int, subtree: bytes) -> None:
        """Add a complete subtree of ``2**level`` leaves; the size must be a multiple of that."""
        if self.size % (1 << level):
            raise InvalidInput(f"a subtree of 2^{level} leaves cannot start at leaf {self.size}")
        stack = self._stack
        stack.append((level, subtree))
        self.size += 1 << level
        while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
            (top, right), (_, left) = stack.pop(), stack.pop()
            stack.append((top + 1, node_hash(left, right)))

    def root(self) -> bytes:
        return fold_range(self.hashes)


class _RecordingFetch:
    """Fetches tiles through a source and remembers every one, for the evidence folder."""

    def __init__(self, source: TileSource) -> None:
        self.source = source
        self.seen: dict[str, bytes] = {}

    def __call__(self, tile: TilePath) -> bytes:
        data = self.source.fetch(tile.path())
        self.seen[tile.path()] = data
        return data


def _fetch_tile(fetch: Callable[[TilePath], bytes], tile: TilePath) -> bytes:
    """The tile as a tree of this size serves it; if the partial tile is gone, the full one cut down.

    tlog-tiles lets a log delete partial tiles once the full tile exists, so a
    client that wants width W may read the full tile and keep its first W items.
    """
    try:
        return fetch(tile)
    except NotFound:
        if tile.is_full:
            raise
        full = fetch(TilePath(tile.level, tile.index))
        if tile.is_entries:
            return _cut_bundle(full, tile.width)
        return full[: tile.width * HASH_SIZE]


def _cut_bundle(data: bytes, count: int) -> bytes:
    offset = 0
    for _ in range(count):
        if offset + 2 > len(data):
            break
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2 + length
    return data[:offset]


def _split_bundle(data: bytes) -> tuple[list[bytes], str | None]:
    """Every complete entry of a bundle, and what was wrong at its end, if anything."""
    entries: list[bytes] = []
    offset = 0
    while offset < len(data):
        if offset + 2 > len(data):
            return entries, f"truncated in a length prefix at byte {offset}"
        (length,) = struct.unpack_from(">H", data, offset)
        offset += 2
        if offset + length > len(data):
            return entries, f"entry {len(entries)} wants {length} bytes at byte {offset}, past the end"
        entries.append(data[offset : offset + length])
        offset += length
    return entries, None


class _Writer:
    """Stores batches of verified bundles on a thread of its own, while the sync checks the next ones.

    SQLite copies a blob and writes its pages without holding the interpreter
    lock, so on a second core this is nearly free. At most two batches wait;
    the first failure is raised at the next :meth:`put` or on leaving the block,
    and leaving the block waits until every batch put is stored.
    """

    def __init__(self, store: Callable[[list[tuple[int, int, bytes]]], None], database: Database) -> None:
        self._store = store
        self._database = database
        self._queue: queue.Queue[list[tuple[int, int, bytes]] | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rempart-mirror-writer", daemon=True)

    def __enter__(self) -> _Writer:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error

    def put(self, bundles: list[tuple[int, int, bytes]]) -> None:
        if self._error is not None:
            raise self._error
        if bundles:
            self._queue.put(bundles)

    def _run(self) -> None:
        try:
            while (bundles := self._queue.get()) is not None:
                if self._error is None:
                    try:
                        self._store(bundles)
                    except BaseException as exc:
                        self._error = exc
        finally:
            self._database.release_thread()  # one thread per sync: leave no connection behind


class Mirror:
    """A verified local copy of one log, in a folder; see the module docstring for the checks.

    >>> import tempfile
    >>> from rempart.clock import ManualClock
    >>> from rempart.tlog.note import Signer
    >>> key = Signer.generate("example.com/log")
    >>> trust = LogTrust(origin="example.com/log", log=key.verifier())
    >>> with Mirror(Path(tempfile.mkdtemp()), trust=trust, clock=ManualClock()) as mirror:
    ...     mirror.state is None
    True
    """

    def __init__(self, directory: Path, *, trust: LogTrust, clock: Clock) -> None:
        self.directory = Path(directory)
        self.trust = trust
        self.clock = clock
        self.evidence = EvidenceLocker(self.directory, clock=clock)
        # A crash may roll the mirror back by its last few commits, never corrupt
        # it: the state row is written last, and entries past it are scratch that
        # the next sync writes again. So commits need not each wait for fsync.
        # A sync appends the whole log in bulk (a million entries is about 1 GB):
        # a rollback journal writes it once, where the WAL would write it twice.
        self.database = Database.open(
            f"sqlite:///{self.directory / 'mirror.db'}", fsync_each_commit=False, write_ahead_log=False
        )
        self.database.migrate(MIRROR_SCHEMA)
        self._move_entry_rows()
        row = self.database.query_one("SELECT origin FROM mirror_state WHERE id = 1")
        if row is not None and row[0] != trust.origin:
            self.database.close()
            raise ConfigurationError(
                f"the mirror in {self.directory} holds log {row[0]!r}, not {trust.origin!r}; "
                "use another --state folder",
                path=str(self.directory),
            )

    # -- reading the mirror ------------------------------------------------

    @property
    def state(self) -> MirroredCheckpoint | None:
        row = self.database.query_one("SELECT size, root, note, edge, synced FROM mirror_state WHERE id = 1")
        if row is None:
            return None
        edge = bytes(row[3])
        hashes = tuple(edge[i : i + HASH_SIZE] for i in range(0, len(edge), HASH_SIZE))
        return MirroredCheckpoint(int(row[0]), bytes(row[1]), bytes(row[2]), hashes, str(row[4]))

    @property
    def size(self) -> int:
        state = self.state
        return 0 if state is None else state.size

    def entries(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
        """The verified entries ``[start, end)`` as ``(index, bytes)``, in order, for replay."""
        size = self.size
        end = size if end is None else min(end, size)
        if start < 0:
            raise InvalidInput(f"start index {start} is negative")
        tile = start // TILE_WIDTH
        while start < end:
            page = range(tile, min(tile + _READ_PAGE, (end - 1) // TILE_WIDTH + 1))
            rows = self.database.query_all(
                "SELECT tile, count, codec, data FROM mirror_bundles WHERE tile >= ? AND tile < ?",
                (page.start, page.stop),
            )
            stored = {t: (count, codec, data) for t, count, codec, data in rows}
            for index in page:
                first = index * TILE_WIDTH
                wanted = min(end - first, TILE_WIDTH)
                count, codec, packed = stored.get(index, (0, "none", b""))
                data = _unpack(codec, packed)
                if type(count) is not int or data is None:
                    count, data = 0, b""  # a value of the wrong type or codec: as good as missing
                entries, defect = _split_bundle(data)
                if count < wanted or len(entries) != count or defect is not None:
                    raise VerificationFailed(
                        f"the mirror in {self.directory} lacks entries in [{start}, {end}): "
                        "its database was altered"
                    )
                for offset in range(start - first, wanted):
                    yield first + offset, entries[offset]
                start = first + wanted
            tile = page.stop

    def _move_entry_rows(self) -> None:
        """Bundle the entries of a mirror written before ``mirror-0002`` (one row per entry).

        Entries are taken in order from index 0 up to the first gap (or a value of
        the wrong type): whatever follows one would land at the wrong index, and a
        mirror lacking entries says so when they are read.
        """
        with self.database.transaction() as tx:
            tables = tx.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'mirror_entries'"
            ).fetchall()
            if not tables:
                return
            bundles: dict[int, list[bytes]] = {}
            for expected, (idx, data) in enumerate(
                tx.execute("SELECT idx, data FROM mirror_entries ORDER BY idx").fetchall()
            ):
                if idx != expected or type(data) is not bytes:
                    break
                bundles.setdefault(idx // TILE_WIDTH, []).append(data)
            for tile, entries in bundles.items():
                data = b"".join(struct.pack(">H", len(e)) + e for e in entries)
                tx.execute(
                    "INSERT OR REPLACE INTO mirror_bundles (tile, count, data) VALUES (?, ?, ?)",
                    (tile, len(entries), data),
                )
            tx.execute("DROP TABLE mirror_entries")

    def close(self) -> None:
        self.database.close()

    def __enter__(self) -> Mirror:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- syncing -------------------------------------------------------------

    def sync(
        self, source: TileSource, *, verified: Callable[[int, list[bytes]], None] | None = None
    ) -> SyncReport:
        """Fetch what is new, verify all of it, then (only then) store it. See the module docstring.

        ``verified(first, entries)``, if given, is called with each run of new
        entries (``first`` is the index of ``entries[0]``), in order, as soon as
        they match their level-0 tile hashes: before the root is checked against
        the checkpoint. Whoever listens must drop what it learned if ``sync``
        raises (:func:`rempart.audit.full.full_audit` does).
        """
        note = source.fetch("checkpoint")
        checkpoint = self._open(note)
        cosigned_by = self._check_threshold(note, checkpoint)
        previous = self.state
        fetch = _RecordingFetch(source)
        if previous is not None:
            self._check_against(previous, note, checkpoint, fetch)
        start = 0 if previous is None else previous.size
        frontier = _RightEdge(0, ()) if previous is None else _RightEdge(previous.size, previous.edge)
        if checkpoint.size > start:
            self._fetch_entries(frontier, checkpoint, note, fetch, verified)
        root = frontier.root()
        if root != checkpoint.root:
            message = (
                f"entries recompute to root {root.hex()} at size {checkpoint.size}, "
                f"but the checkpoint says {checkpoint.root.hex()}"
            )
            self._fail(
                "root-mismatch",
                message,
                {
                    "size": checkpoint.size,
                    "computed_root": root.hex(),
                    "checkpoint_root": checkpoint.root.hex(),
                },
                {"served-checkpoint": note, **fetch.seen},
            )
        self._commit(checkpoint, note, frontier)
        return SyncReport(
            checkpoint.origin,
            checkpoint.size,
            checkpoint.root,
            None if previous is None else previous.size,
            checkpoint.size - start,
            cosigned_by,
        )

    def _open(self, note: bytes) -> Checkpoint:
        try:
            return self.trust.open_signed(note)
        except RempartError as exc:
            raise VerificationFailed(f"the served checkpoint does not verify: {exc}", **exc.details) from exc

    def _check_threshold(self, note: bytes, checkpoint: Checkpoint) -> tuple[str, ...]:
        try:
            return self.trust.cosigned_by(note)
        except VerificationFailed as exc:
            message = (
                f"the checkpoint of size {checkpoint.size} (root {checkpoint.root.hex()}) is signed by the "
                f"log but not witnessed enough: {exc}"
            )
            self._fail(
                "below-threshold",
                message,
                {"size": checkpoint.size, "root": checkpoint.root.hex(), **exc.details},
                {"served-checkpoint": note},
            )

    def _check_against(
        self, previous: MirroredCheckpoint, note: bytes, checkpoint: Checkpoint, fetch: _RecordingFetch
    ) -> None:
        """Rollback, same-size fork, or a consistency proof from the served tiles."""
        old, new = previous.size, checkpoint.size
        facts = {
            "old_size": old,
            "old_root": previous.root.hex(),
            "new_size": new,
            "new_root": checkpoint.root.hex(),
        }
        files = {"previous-checkpoint": previous.note, "served-checkpoint": note}
        if new < old:
            self._fail(
                "rollback",
                f"rollback: the log now shows size {new} (root {checkpoint.root.hex()}), smaller than the "
                f"size {old} (root {previous.root.hex()}) verified before",
                facts,
                files,
            )
        if new == old:
            if checkpoint.root != previous.root:
                self._fail(
                    "fork",
                    f"fork: two signed checkpoints of size {new} with different roots: "
                    f"{previous.root.hex()} (verified before) and {checkpoint.root.hex()} (served now)",
                    facts,
                    files,
                )
            return
        if old == 0:
            return
        proof: list[bytes] = []
        try:
            proof = consistency_proof(old, new, TileHashReader(new, lambda t: _fetch_tile(fetch, t)))
            verify_consistency(old, new, previous.root, checkpoint.root, proof)
        except VerificationFailed as exc:
            self._fail(
                "fork",
                f"fork: the checkpoint of size {new} (root {checkpoint.root.hex()}) is not consistent with "
                f"the checkpoint of size {old} (root {previous.root.hex()}) verified before: {exc}",
                facts,
                {**files, "consistency-proof": _proof_text(old, new, proof), **fetch.seen},
            )

    def _fetch_entries(
        self,
        frontier: _RightEdge,
        checkpoint: Checkpoint,
        note: bytes,
        fetch: _RecordingFetch,
        verified: Callable[[int, list[bytes]], None] | None,
    ) -> None:
        """Fetch bundles from the mirrored size on; check, store as scratch, extend the right edge."""
        start = frontier.size
        pending: list[tuple[int, int, bytes]] = []
        with _Writer(self._insert, self.database) as writer:
            for bundle in entry_bundles_for_size(checkpoint.size, start // TILE_WIDTH):
                pending.append(
                    self._verify_bundle(bundle, start, frontier, checkpoint, note, fetch, verified)
                )
                if len(pending) >= _INSERT_BATCH:
                    writer.put(pending)
                    pending = []
            writer.put(pending)

    def _verify_bundle(
        self,
        bundle: TilePath,
        start: int,
        frontier: _RightEdge,
        checkpoint: Checkpoint,
        note: bytes,
        fetch: _RecordingFetch,
        verified: Callable[[int, list[bytes]], None] | None,
    ) -> tuple[int, int, bytes]:
        """One bundle against its hash tile: extend the right edge, tell ``verified``; the row to store."""
        first = bundle.index * TILE_WIDTH
        data = _fetch_tile(fetch, bundle)
        tile = TilePath(0, bundle.index, bundle.width)
        tile_data = _fetch_tile(fetch, tile)
        hashes = split_hash_tile(tile_data, tile)
        entries, defect = _split_bundle(data)
        sha256 = hashlib.sha256
        leaves = b"".join([sha256(b"\x00" + e).digest() for e in entries])
        if leaves != tile_data or len(entries) != bundle.width or defect is not None or start > first:
            self._check_bundle(bundle, tile, entries, defect, hashes, start, checkpoint, note, data, fetch)
        skip = max(0, start - first)
        if skip == 0 and bundle.is_full:
            frontier.append(TILE_HEIGHT, tile_root(hashes))
        else:
            for offset in range(skip, bundle.width):
                frontier.append(0, hashes[offset])
        if verified is not None:
            verified(first + skip, entries[skip:] if skip else entries)
        fetch.seen.clear()  # bundles that verified are no evidence of anything
        return bundle.index, bundle.width, data

    def _check_bundle(
        self,
        bundle: TilePath,
        tile: TilePath,
        entries: list[bytes],
        defect: str | None,
        hashes: list[bytes],
        start: int,
        checkpoint: Checkpoint,
        note: bytes,
        data: bytes,
        fetch: _RecordingFetch,
    ) -> None:
        """Every entry must hash to its level-0 tile hash; mirrored ones must not have changed."""
        first = bundle.index * TILE_WIDTH
        mismatched = [
            first + i for i in range(bundle.width) if i >= len(entries) or leaf_hash(entries[i]) != hashes[i]
        ]
        kept = dict(self.entries(first, min(start, first + bundle.width))) if start > first else {}
        rewritten = [i for i, old in kept.items() if i - first >= len(entries) or entries[i - first] != old]
        if not mismatched and not rewritten and len(entries) == bundle.width and defect is None:
            return
        files = {"served-checkpoint": note, bundle.path(): data, **fetch.seen}
        details: dict[str, object] = {
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "bundle": bundle.path(),
        }
        if rewritten:
            i = rewritten[0]
            served = entries[i - first] if i - first < len(entries) else None
            details |= {"entries": rewritten, "mirrored_size": start}
            details["mirrored_leaf_hash"] = leaf_hash(kept[i]).hex()
            details["served_leaf_hash"] = None if served is None else leaf_hash(served).hex()
            self._fail(
                "rewritten-entry",
                f"rewritten past: entry {i} served in {bundle.path()} differs from the copy verified at "
                f"size {start} (leaf hash {details['served_leaf_hash']} now, {details['mirrored_leaf_hash']} "
                f"then); changed entries: {_short(rewritten)}",
                details,
                files,
            )
        count = f"{bundle.path()} holds {len(entries)} entries, expected {bundle.width}"
        if defect is not None:
            count += f" ({defect})"
        if not mismatched:
            self._fail("bad-bundle", count, details, files)
        i = mismatched[0]
        served_hash = leaf_hash(entries[i - first]).hex() if i - first < len(entries) else None
        details |= {
            "entries": mismatched,
            "tile": tile.path(),
            "tile_hash": hashes[i - first].hex(),
            "served_leaf_hash": served_hash,
        }
        what = "is missing" if served_hash is None else f"has leaf hash {served_hash}"
        diagnosis = _diagnose(first, entries, hashes, [m - first for m in mismatched])
        details["diagnosis"] = diagnosis
        self._fail(
            "entry-mismatch",
            f"entry {i} served in {bundle.path()} {what}, but {tile.path()} says "
            f"{hashes[i - first].hex()}; entries that do not match their hashes: {_short(mismatched)}"
            + ("" if diagnosis is None else f" ({diagnosis})")
            + ("" if len(entries) == bundle.width else f"; {count}"),
            details,
            files,
        )

    def _insert(self, bundles: list[tuple[int, int, bytes]]) -> None:
        """Store verified bundles (tile index, entry count, bytes): a wider one replaces a partial one."""
        if not bundles:
            return
        compressor = zstandard.ZstdCompressor(level=1, write_checksum=True)
        rows = [(tile, count, "zstd", compressor.compress(data)) for tile, count, data in bundles]
        with self.database.transaction() as tx:
            tx.executemany(
                "INSERT OR REPLACE INTO mirror_bundles (tile, count, codec, data) VALUES (?, ?, ?, ?)", rows
            )

    def _commit(self, checkpoint: Checkpoint, note: bytes, frontier: _RightEdge) -> None:
        edge = b"".join(frontier.hashes)
        with self.database.transaction() as tx:
            tx.execute(
                "INSERT OR REPLACE INTO mirror_state (id, origin, size, root, edge, note, synced) "
                "VALUES (1, ?, ?, ?, ?, ?, ?)",
                (
                    checkpoint.origin,
                    checkpoint.size,
                    checkpoint.root,
                    edge,
                    note,
                    format_time(self.clock.now()),
                ),
            )
        write_file(self.directory / "checkpoint", note)

    def _fail(self, kind: str, message: str, details: dict[str, object], files: dict[str, bytes]) -> NoReturn:
        """Keep the evidence, then raise: the stored state is left as it was."""
        record: EvidenceRecord = self.evidence.keep(kind, message=message, details=details, files=files)
        raise VerificationFailed(message, **details, evidence=str(record.folder))


def _diagnose(first: int, entries: list[bytes], hashes: list[bytes], wrong: list[int]) -> str | None:
    """Name the common tampering patterns among mismatched positions of one bundle, if one fits.

    Two entries whose hashes sit at each other's place were swapped; from one
    position on, every entry sitting at the place of the next one means the
    entry at that position was dropped.
    """
    leaves = [leaf_hash(e) for e in entries]
    if len(wrong) == 2:
        i, j = wrong
        if j < len(leaves) and leaves[i] == hashes[j] and leaves[j] == hashes[i]:
            return f"entries {first + i} and {first + j} are swapped"
    i = wrong[0]
    shifted = range(i, min(len(leaves), len(hashes)) - 1)
    if len(shifted) and all(leaves[k] == hashes[k + 1] for k in shifted):
        return f"entry {first + i} was dropped: the entries after it moved up by one"
    return None


def _short(indexes: Sequence[int], limit: int = 8) -> str:
    shown = ", ".join(str(i) for i in indexes[:limit])
    return shown + (f" and {len(indexes) - limit} more" if len(indexes) > limit else "")


def compare_checkpoints(
    a: bytes, b: bytes, *, trust: LogTrust, tiles: TileSource | None = None
) -> CheckpointComparison:
    """Gossip: can two checkpoints of one log, seen by two parties, both be true?

    Both must carry a valid log signature (cosignatures are not required: a
    checkpoint the log signed binds the log even if no witness would sign it).
    Equal sizes need equal roots. Otherwise ``tiles`` must serve the larger
    tree (its hashes must reproduce the larger checkpoint's root), and a
    consistency proof built from them must link the two. A failure raises
    :class:`VerificationFailed` naming both sizes and roots: a split view.
    """
    first, second = trust.open_signed(a), trust.open_signed(b)
    older, newer = (first, second) if first.size <= second.size else (second, first)
    facts = {
        "old_size": older.size,
        "old_root": older.root.hex(),
        "new_size": newer.size,
        "new_root": newer.root.hex(),
    }
    if older.size == newer.size:
        if older.root != newer.root:
            raise VerificationFailed(
                f"split view: two signed checkpoints of size {older.size} with different roots "
                f"{older.root.hex()} and {newer.root.hex()}",
                **facts,
            )
        return CheckpointComparison(older, newer)
    if older.size == 0:
        if older.root != EMPTY_ROOT:
            raise VerificationFailed(
                f"split view: a signed checkpoint of size 0 has root {older.root.hex()}", **facts
            )
        return CheckpointComparison(older, newer)
    if tiles is None:
        raise InvalidInput(
            f"checkpoints of sizes {older.size} and {newer.size} differ in size: tiles of the larger tree "
            "are needed to compare them"
        )
    source = tiles

    def fetch(tile: TilePath) -> bytes:
        return _fetch_tile(lambda t: source.fetch(t.path()), tile)

    reader = TileHashReader(newer.size, fetch)
    try:
        served_root = tree_root(newer.size, reader)
    except NotFound as exc:
        raise InvalidInput(f"the tiles given do not serve a tree of size {newer.size}: {exc}") from exc
    if served_root != newer.root:
        raise InvalidInput(
            f"the tiles given do not serve the checkpoint of size {newer.size}: they give root "
            f"{served_root.hex()}, the checkpoint says {newer.root.hex()}; pass the tiles of the larger tree"
        )
    try:
        verify_consistency(
            older.size, newer.size, older.root, newer.root, consistency_proof(older.size, newer.size, reader)
        )
    except VerificationFailed as exc:
        raise VerificationFailed(
            f"split view: the signed checkpoint of size {older.size} (root {older.root.hex()}) "
            f"is not a prefix of the signed checkpoint of size {newer.size} (root {newer.root.hex()}): {exc}",
            **facts,
        ) from exc
    return CheckpointComparison(older, newer)
