r"""A C2SP tlog-witness (https://c2sp.org/tlog-witness): state, protocol logic, HTTP app.

A witness keeps, for each log it knows (an origin and its verifier keys), the
latest checkpoint it cosigned. It cosigns a new checkpoint only if the log's
signature verifies and a Merkle consistency proof links it to that stored
checkpoint, so a log that shows two different trees to two parties cannot get
both cosigned by the same honest witness.

``POST <prefix>/add-checkpoint`` takes ``old <size>\n``, zero to 63 base64
proof lines, an empty line, then the signed checkpoint note, and answers:

=====  =====================================================================
200    the cosignature line(s) (C2SP tlog-cosignature, type 0x04)
400    a malformed body, or ``old`` larger than the checkpoint's size
403    no signature from the log's known key verifies (bad or missing)
404    the checkpoint's origin is not a log this witness knows
409    ``old`` is not the witness's size (body ``<size>\n``, ``Content-Type:
       text/x.tlog.size``), or equal sizes with a different root hash
422    the consistency proof does not verify (or is not empty for ``old 0``)
=====  =====================================================================

The spec says 404 for an unknown origin; litewitness (torchwood) answers 403
there. Rempart follows the spec.

The check of ``old`` against the stored size and the update of the stored
checkpoint are one compare-and-swap statement, so two concurrent requests
for the same log can never both advance it (the rollback race the spec warns
of). Time comes from a :class:`~rempart.clock.Clock` passed in.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from rempart.clock import Clock, format_time
from rempart.db import Database
from rempart.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    RempartError,
    StorageUnavailable,
    VerificationFailed,
)
from rempart.tlog.checkpoint import MAX_TREE_SIZE, Checkpoint
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.merkle import HASH_SIZE, verify_consistency
from rempart.tlog.note import MAX_NOTE_SIZE, Verifier, open_note

__all__ = [
    "MAX_PROOF_LINES",
    "MAX_REQUEST_SIZE",
    "SIZE_CONTENT_TYPE",
    "WITNESS_SCHEMA",
    "AddCheckpointRequest",
    "SizeConflict",
    "Witness",
    "WitnessLog",
    "WitnessRejection",
    "WitnessStore",
    "status_for",
    "witness_app",
]

_log = logging.getLogger("rempart.witness")

MAX_PROOF_LINES = 63  # the spec's bound: a proof in a tree of at most 2^63 - 1 leaves
MAX_REQUEST_SIZE = MAX_NOTE_SIZE + 64 * (MAX_PROOF_LINES + 1)
SIZE_CONTENT_TYPE = "text/x.tlog.size"
_OLD_LINE = re.compile(rb"old (0|[1-9][0-9]{0,18})")

WITNESS_SCHEMA: list[tuple[str, str]] = [
    (
        "witness-0001",
        """
        CREATE TABLE witness_logs (
            origin TEXT PRIMARY KEY,
            size {bigint} NOT NULL,
            root {blob} NOT NULL,
            note {blob},
            updated TEXT NOT NULL
        );
        CREATE TABLE witness_log_keys (
            origin TEXT NOT NULL REFERENCES witness_logs (origin),
            vkey TEXT NOT NULL,
            PRIMARY KEY (origin, vkey)
        );
        CREATE TABLE witness_rejections (
            id {serial},
            origin TEXT NOT NULL,
            received TEXT NOT NULL,
            status INTEGER NOT NULL,
            reason TEXT NOT NULL,
            request {blob} NOT NULL
        )
        """,
    )
]
"""The witness's tables (``witness_`` prefix), applied with :meth:`Database.migrate`."""


class SizeConflict(Conflict):
    """409: the request's ``old`` is not the witness's size for the log (``size`` says what is)."""

    code = "witness_size_conflict"

    def __init__(self, message: str, /, *, size: int, **details: Any) -> None:
        super().__init__(message, size=size, **details)
        self.size = size


def status_for(exc: RempartError) -> int:
    """The tlog-witness HTTP status for a refusal (one mapping, used by the app and the tests)."""
    if isinstance(exc, Conflict):
        return 409
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, VerificationFailed):
        return 422
    if isinstance(exc, InvalidInput):
        return 400
    if isinstance(exc, StorageUnavailable):
        return 503
    return 500


def _decode_hash(line: bytes, index: int) -> bytes:
    """One proof line: canonical standard base64 of a 32-byte hash."""
    try:
        raw = base64.b64decode(line, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"consistency proof line {index + 1} is not valid base64") from exc
    if base64.b64encode(raw) != line:
        raise InvalidInput(f"consistency proof line {index + 1} is not canonical base64")
    if len(raw) != HASH_SIZE:
        raise InvalidInput(
            f"consistency proof line {index + 1} holds {len(raw)} bytes, not a {HASH_SIZE}-byte hash"
        )
    return raw


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A parsed ``add-checkpoint`` body; the note is still unverified bytes."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpointRequest:
        """Split the body strictly as the spec writes it; raise InvalidInput (400) otherwise."""
        if len(body) > MAX_REQUEST_SIZE:
            raise InvalidInput(f"request body is {len(body)} bytes, more than the {MAX_REQUEST_SIZE} allowed")
        head, sep, note = body.partition(b"\n\n")
        if not sep:
            raise InvalidInput(
                "request body has no empty line between the old size and proof and the checkpoint"
            )
        lines = head.split(b"\n")
        match = _OLD_LINE.fullmatch(lines[0])
        if match is None:
            raise InvalidInput(
                f"first line {lines[0][:40]!r} is not 'old <size>' (ASCII decimal, no leading zeros)"
            )
        old_size = int(match.group(1))
        if old_size > MAX_TREE_SIZE:
            raise InvalidInput(f"old size {old_size} is larger than {MAX_TREE_SIZE}")
        proof_lines = lines[1:]
        if len(proof_lines) > MAX_PROOF_LINES:
            raise InvalidInput(
                f"request has {len(proof_lines)} consistency proof lines, "
                f"more than the {MAX_PROOF_LINES} allowed"
            )
        proof = tuple(_decode_hash(line, i) for i, line in enumerate(proof_lines))
        if not note:
            raise InvalidInput("request body has no checkpoint after the empty line")
        return cls(old_size, proof, note)

    def to_bytes(self) -> bytes:
        lines = [b"old %d" % self.old_size, *(base64.b64encode(h) for h in self.proof)]
        return b"\n".join(lines) + b"\n\n" + self.note


@dataclass(frozen=True, slots=True)
class WitnessLog:
    """What the witness knows of one log: its keys and the latest checkpoint it cosigned."""

    origin: str
    keys: tuple[Verifier, ...]
    size: int
    root: bytes
    """The stored root hash; empty (b'') before the first cosigned checkpoint."""
    note: bytes | None
    updated: str


@dataclass(frozen=True, slots=True)
class WitnessRejection:
    """A log-signed checkpoint the witness refused for inconsistency: possible evidence of a fork."""

    origin: str
    received: str
    status: int
    reason: str
    request: bytes


class WitnessStore:
    """The witness's state in a :class:`~rempart.db.Database` (SQLite or PostgreSQL).

    Contract: :meth:`advance` is an atomic compare-and-swap, durable when it
    returns; the stored size of a log never goes down.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        database.migrate(WITNESS_SCHEMA)

    def add_log(self, origin: str, keys: Sequence[Verifier], *, when: str) -> WitnessLog:
        """Know a log (idempotent): add its origin at size 0 if new, and each key not yet listed."""
        if not origin or "\n" in origin:
            raise InvalidInput(f"log origin {origin!r} must be one non-empty line")
        if not keys:
            raise InvalidInput(f"log {origin!r} needs at least one verifier key")
        with self.database.transaction() as tx:
            exists = tx.execute("SELECT 1 FROM witness_logs WHERE origin = ?", (origin,)).fetchone()
            if exists is None:
                tx.execute(
                    "INSERT INTO witness_logs (origin, size, root, note, updated) VALUES (?, 0, ?, NULL, ?)",
                    (origin, b"", when),
                )
            known = {
                r[0]
                for r in tx.execute(
                    "SELECT vkey FROM witness_log_keys WHERE origin = ?", (origin,)
                ).fetchall()
            }
            for key in keys:
                if key.vkey() not in known:
                    tx.execute(
                        "INSERT INTO witness_log_keys (origin, vkey) VALUES (?, ?)", (origin, key.vkey())
                    )
                    known.add(key.vkey())
        return self.log(origin)

    def log(self, origin: str) -> WitnessLog:
        """The log's keys and state; NotFound (404) if the witness does not know the origin."""
        row = self.database.query_one(
            "SELECT size, root, note, updated FROM witness_logs WHERE origin = ?", (origin,)
        )
        if row is None:
            raise NotFound(f"unknown log origin {origin[:200]!r}: this witness does not witness it")
        keys = tuple(
            Verifier.parse(r[0])
            for r in self.database.query_all(
                "SELECT vkey FROM witness_log_keys WHERE origin = ? ORDER BY vkey", (origin,)
            )
        )
        note = None if row[2] is None else bytes(row[2])
        return WitnessLog(origin, keys, int(row[0]), bytes(row[1]), note, str(row[3]))

    def logs(self) -> list[WitnessLog]:
        return [
            self.log(r[0]) for r in self.database.query_all("SELECT origin FROM witness_logs ORDER BY origin")
        ]

    def advance(
        self,
        origin: str,
        *,
        old_size: int,
        old_root: bytes,
        checkpoint: Checkpoint,
        note: bytes,
        when: str,
    ) -> None:
        """Store ``checkpoint`` only if the log is still at (old_size, old_root): one atomic statement.

        Raises :class:`SizeConflict` with the stored size when another request
        moved the log first.
        """
        with self.database.transaction() as tx:
            changed = tx.execute(
                "UPDATE witness_logs SET size = ?, root = ?, note = ?, updated = ? "
                "WHERE origin = ? AND size = ? AND root = ?",
                (checkpoint.size, checkpoint.root, note, when, origin, old_size, old_root),
            ).rowcount
        if changed != 1:
            now = self.log(origin)
            raise SizeConflict(
                f"the witness's checkpoint for {origin} moved to size {now.size} while this "
                f"request (old {old_size}) was checked; retry from size {now.size}",
                size=now.size,
            )

    def record_rejection(self, origin: str, *, status: int, reason: str, request: bytes, when: str) -> None:
        with self.database.transaction() as tx:
            tx.execute(
                "INSERT INTO witness_rejections (origin, received, status, reason, request) "
                "VALUES (?, ?, ?, ?, ?)",
                (origin, when, status, reason, request),
            )

    def rejections(self, origin: str) -> list[WitnessRejection]:
        rows = self.database.query_all(
            "SELECT received, status, reason, request FROM witness_rejections WHERE origin = ? ORDER BY id",
            (origin,),
        )
        return [WitnessRejection(origin, str(r[0]), int(r[1]), str(r[2]), bytes(r[3])) for r in rows]


class Witness:
    """The tlog-witness protocol over a :class:`WitnessStore`, cosigning with a 0x04 key.

    >>> from rempart.clock import ManualClock
    >>> from rempart.tlog.checkpoint import sign_checkpoint
    >>> from rempart.tlog.note import Signer
    >>> log = Signer.generate("example.com/log")
    >>> store = WitnessStore(Database.open("sqlite:///:memory:"))
    >>> w = Witness(cosigner=Cosigner.generate("w.example/1"), store=store, clock=ManualClock())
    >>> _ = w.add_log("example.com/log", [log.verifier()])
    >>> note = sign_checkpoint(Checkpoint("example.com/log", 0, bytes.fromhex(
    ...     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")), [log])
    >>> w.add_checkpoint(b"old 0\\n\\n" + note).startswith("— w.example/1 ")
    True
    """

    def __init__(self, *, cosigner: Cosigner, store: WitnessStore, clock: Clock) -> None:
        self.cosigner = cosigner
        self.store = store
        self.clock = clock

    def add_log(self, origin: str, keys: Sequence[Verifier]) -> WitnessLog:
        return self.store.add_log(origin, keys, when=format_time(self.clock.now()))

    def add_checkpoint(self, body: bytes) -> str:
        """Check one request and return the cosignature line(s); raise the refusal otherwise.

        The refusals map to HTTP statuses through :func:`status_for`.
        """
        request = AddCheckpointRequest.parse(body)
        origin = self._origin(request.note)
        known = self.store.log(origin)
        try:
            opened = open_note(request.note, known.keys)
        except VerificationFailed as exc:
            raise PermissionDenied(
                f"checkpoint for {origin} is not signed by the log's known key: {exc}"
            ) from exc
        checkpoint = Checkpoint.parse(opened.text)
        if request.old_size > checkpoint.size:
            raise InvalidInput(
                f"old size {request.old_size} is larger than the checkpoint's size {checkpoint.size}"
            )
        if request.old_size != known.size:
            raise SizeConflict(
                f"old size {request.old_size} is not the size of the latest checkpoint this witness "
                f"cosigned for {origin}, which is {known.size}",
                size=known.size,
            )
        self._check_consistency(request, checkpoint, known, body)
        now = self.clock.now()
        self.store.advance(
            origin,
            old_size=known.size,
            old_root=known.root,
            checkpoint=checkpoint,
            note=request.note,
            when=format_time(now),
        )
        # Parsing is strict, so checkpoint.body() is exactly the text the log signed.
        cosignature = self.cosigner.cosign(checkpoint, int(now.timestamp()))
        _log.info("cosigned %s at size %d (from %d)", origin, checkpoint.size, known.size)
        return cosignature.line()

    @staticmethod
    def _origin(note: bytes) -> str:
        first, newline, _ = note.partition(b"\n")
        if not newline or not first:
            raise InvalidInput("the checkpoint does not start with an origin line")
        try:
            return first.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput("the checkpoint's origin line is not valid UTF-8") from exc

    def _check_consistency(
        self, request: AddCheckpointRequest, checkpoint: Checkpoint, known: WitnessLog, body: bytes
    ) -> None:
        """The spec's rules after the size matched; a log-signed inconsistency is kept as evidence."""
        old, new = request.old_size, checkpoint.size
        if old == 0:
            if request.proof:
                raise VerificationFailed(
                    f"a consistency proof from old size 0 must be empty, got {len(request.proof)} hashes"
                )
            return
        if old == new:
            if request.proof:
                raise VerificationFailed(
                    f"a consistency proof between equal sizes ({old}) must be empty, "
                    f"got {len(request.proof)} hashes"
                )
            if checkpoint.root != known.root:
                reason = (
                    f"checkpoint of size {new} has root {checkpoint.root.hex()}, but the witness "
                    f"cosigned root {known.root.hex()} for that size: the log forked"
                )
                self._reject(known.origin, 409, reason, body)
                raise SizeConflict(reason, size=known.size)
            return
        try:
            verify_consistency(old, new, known.root, checkpoint.root, request.proof)
        except VerificationFailed as exc:
            reason = (
                f"consistency proof from size {old} (root {known.root.hex()}) to size {new} "
                f"(root {checkpoint.root.hex()}) does not verify: {exc}"
            )
            self._reject(known.origin, 422, reason, body)
            raise VerificationFailed(reason, old_size=old, new_size=new) from exc

    def _reject(self, origin: str, status: int, reason: str, body: bytes) -> None:
        _log.warning("refused a log-signed checkpoint for %s (%d): %s", origin, status, reason)
        try:
            self.store.record_rejection(
                origin, status=status, reason=reason, request=body, when=format_time(self.clock.now())
            )
        except StorageUnavailable as exc:  # the refusal stands; only the evidence copy is lost
            _log.error("could not record the refused checkpoint for %s: %s", origin, exc)


def _problem(exc: RempartError, status: int) -> Response:
    """RFC 9457 problem details for every refusal but 409, whose body the spec fixes."""
    document: dict[str, Any] = {
        "type": "about:blank",
        "title": exc.title,
        "status": status,
        "detail": exc.message,
        "code": exc.code,
    }
    for key, value in exc.details.items():
        document.setdefault(key, value)
    return JSONResponse(document, status_code=status, media_type="application/problem+json")


def witness_app(witness: Witness, *, prefix: str = "") -> Starlette:
    """The ASGI app: ``POST <prefix>/add-checkpoint`` and ``GET <prefix>/`` (the witness's key).

    The blocking database and signature work runs in Starlette's thread pool.
    """
    prefix = prefix.rstrip("/")

    async def add_checkpoint(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REQUEST_SIZE:
                return _problem(
                    InvalidInput(f"request body is more than the {MAX_REQUEST_SIZE} bytes allowed"), 400
                )
        try:
            lines = await run_in_threadpool(witness.add_checkpoint, bytes(body))
        except SizeConflict as exc:
            return Response(
                f"{exc.size}\n".encode(), status_code=409, headers={"Content-Type": SIZE_CONTENT_TYPE}
            )
        except RempartError as exc:
            status = status_for(exc)
            _log.info("add-checkpoint refused (%d): %s", status, exc.message)
            return _problem(exc, status)
        return Response(
            lines.encode("utf-8"), status_code=200, headers={"Content-Type": "text/plain; charset=utf-8"}
        )

    async def info(request: Request) -> Response:
        return Response(
            (witness.cosigner.vkey() + "\n").encode(),
            status_code=200,
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )

    return Starlette(
        routes=[
            Route(f"{prefix}/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route(f"{prefix}/", info, methods=["GET"]),
        ]
    )
