r"""The log's side of C2SP tlog-witness: send each new checkpoint to the witnesses, keep their cosignatures.

:class:`CheckpointWitnessing` listens to the sequencer (``on_checkpoint``) and
does its work on its own thread, so the sequencer never waits for a witness.
For each checkpoint it asks every configured witness in parallel, with a
consistency proof from the size that witness last cosigned (``old 0`` and no
proof for a witness it has not heard from; on ``409`` it learns the witness's
size from the body and retries once with the right proof). The cosignature
lines that verify against the witness's key are added to the checkpoint note,
which is stored again for the same size (``put_checkpoint`` replaces it), so
the read path serves the cosigned checkpoint.

A witness that is down, slow or refusing does not stop the log: its error is
kept in :meth:`CheckpointWitnessing.status`, and a checkpoint with fewer
cosignatures than the threshold is flagged ``below_threshold`` with a warning
in the log. Witnesses and threshold are passed in (from the trust root).

What a crash does: the uncosigned checkpoint is already stored and served;
cosignatures are only ever added to it, and the next checkpoint is witnessed
from scratch (``old 0`` then the witness's own size), so nothing is lost but
the cosignatures of the checkpoint in flight.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Protocol

import httpx

from rempart.clock import Clock, format_time
from rempart.errors import Conflict, InvalidInput, RempartError, StorageUnavailable, VerificationFailed
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.merkle import consistency_proof
from rempart.tlog.note import Note, NoteSignature, open_note

__all__ = [
    "CheckpointWitnessing",
    "WitnessAddress",
    "WitnessEndpoint",
    "WitnessHealth",
    "WitnessingStatus",
]

_log = logging.getLogger("rempart.log.witnessing")

_MAX_RESPONSE = 64 * 1024


class WitnessAddress(Protocol):
    """A witness as the trust root lists it: its submission URL prefix and its cosignature key."""

    @property
    def url(self) -> str: ...

    @property
    def verifier(self) -> CosignatureVerifier: ...


@dataclass(frozen=True, slots=True)
class WitnessEndpoint:
    """A witness's submission prefix (``POST <url>/add-checkpoint``) and its 0x04 verifier key."""

    url: str
    verifier: CosignatureVerifier

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise InvalidInput(f"witness URL {self.url!r} must start with http:// or https://")


@dataclass(frozen=True, slots=True)
class WitnessHealth:
    """One witness as seen from the log: what it last cosigned, and its last error."""

    name: str
    url: str
    known_size: int | None
    """The size this witness last cosigned (learned from a 200 or a 409), if known."""
    last_success_size: int | None = None
    last_success_at: str | None = None
    last_error: str | None = None
    last_error_at: str | None = None


@dataclass(frozen=True, slots=True)
class WitnessingStatus:
    """How the latest witnessed checkpoint stands: who cosigned it and whether that is enough."""

    size: int | None
    """The size of the latest checkpoint sent to the witnesses (None before the first)."""
    cosigned_by: tuple[str, ...]
    threshold: int
    witnesses: tuple[WitnessHealth, ...] = field(default=())

    @property
    def below_threshold(self) -> bool:
        return self.size is not None and len(self.cosigned_by) < self.threshold


class _Refused(Exception):
    """A witness answered with a status that ends this attempt (kept as the witness's last error)."""


class CheckpointWitnessing:
    """Collects witness cosignatures for each new checkpoint, on a background thread.

    ``storage`` is the log's storage: it gives the consistency proofs (it is a
    :class:`~rempart.tlog.merkle.HashReader`) and stores the cosigned note.
    """

    def __init__(
        self,
        *,
        storage: LogStorage,
        witnesses: Sequence[WitnessAddress],
        threshold: int,
        clock: Clock,
        timeout: float = 5.0,
    ) -> None:
        if not 0 <= threshold <= len(witnesses):
            raise InvalidInput(
                f"witness threshold {threshold} is not in 0..{len(witnesses)} (the number of witnesses)"
            )
        names = [w.verifier.name for w in witnesses]
        if len(set(names)) != len(names):
            raise InvalidInput(f"witness names must be distinct, got {', '.join(names)}")
        self.storage = storage
        self.threshold = threshold
        self.clock = clock
        self._witnesses = tuple(witnesses)
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._health = {w.verifier.name: WitnessHealth(w.verifier.name, w.url, None) for w in witnesses}
        self._status = WitnessingStatus(None, (), threshold, tuple(self._health.values()))
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: StoredCheckpoint | None = None
        self._busy = False
        self._closed = False
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(witnesses)), thread_name_prefix="rempart-witness"
        )
        self._thread = threading.Thread(target=self._run, name="rempart-witnessing", daemon=True)
        self._thread.start()

    # -- wiring ---------------------------------------------------------------

    def attach(self, log: _CheckpointSource) -> None:
        """Witness every checkpoint ``log`` publishes from now on."""
        log.on_checkpoint(self.submit)

    def submit(self, checkpoint: StoredCheckpoint) -> None:
        """Queue ``checkpoint`` and return at once; a newer one replaces one not yet sent."""
        with self._wake:
            if self._closed:
                return
            if self._pending is None or checkpoint.size >= self._pending.size:
                self._pending = checkpoint
            self._wake.notify_all()

    def status(self) -> WitnessingStatus:
        with self._lock:
            return self._status

    def wait_idle(self, timeout: float = 10.0) -> WitnessingStatus:
        """Wait until every submitted checkpoint has been witnessed (for tests and the CLI)."""
        with self._wake:
            if not self._wake.wait_for(lambda: self._pending is None and not self._busy, timeout):
                raise StorageUnavailable(f"witnessing did not finish within {timeout} s")
            return self._status

    def close(self) -> None:
        with self._wake:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> CheckpointWitnessing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the background thread --------------------------------------------

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                checkpoint, self._pending = self._pending, None
                self._busy = True
            try:
                if checkpoint is not None:
                    self.witness(checkpoint)
            except Exception:
                _log.exception("witnessing the checkpoint failed")
            finally:
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def witness(self, stored: StoredCheckpoint) -> WitnessingStatus:
        """Ask every witness to cosign ``stored`` now, store what they return, return the status."""
        note = Note.parse(stored.note)
        checkpoint = Checkpoint.parse(note.text)
        futures = [
            self._pool.submit(self._ask, w, checkpoint, stored.note, note.text) for w in self._witnesses
        ]
        collected: list[NoteSignature] = []
        for future in futures:
            collected.extend(future.result())
        cosigned_by = tuple(dict.fromkeys(s.name for s in collected))
        if collected:
            cosigned = note.with_signatures(collected).to_bytes()
            try:
                self.storage.put_checkpoint(StoredCheckpoint(stored.size, cosigned))
            except Conflict as exc:  # a newer checkpoint was published meanwhile: that one counts
                _log.info("cosignatures for size %d not stored: %s", stored.size, exc)
            except RempartError as exc:
                _log.error("storing the cosigned checkpoint of size %d failed: %s", stored.size, exc)
        with self._lock:
            self._status = WitnessingStatus(
                stored.size, cosigned_by, self.threshold, tuple(self._health.values())
            )
            status = self._status
        if status.below_threshold:
            _log.warning(
                "checkpoint of size %d has %d of the %d required cosignatures (cosigned by: %s)",
                stored.size,
                len(cosigned_by),
                self.threshold,
                ", ".join(cosigned_by) or "none",
            )
        return status

    # -- one witness ---------------------------------------------------------

    def _ask(
        self, witness: WitnessAddress, checkpoint: Checkpoint, signed: bytes, text: str
    ) -> list[NoteSignature]:
        name = witness.verifier.name
        with self._lock:
            old = self._health[name].known_size
        try:
            if old is None or old > checkpoint.size:
                old = 0
            status, body = self._post(witness, self._body(old, checkpoint.size, signed))
            if status == 409:
                old = self._learn_size(witness, body, checkpoint.size)
                status, body = self._post(witness, self._body(old, checkpoint.size, signed))
            if status == 409:
                learned = self._learn_size(witness, body, checkpoint.size)
                if learned == old == checkpoint.size:
                    raise _Refused(
                        f"409: the witness cosigned another root for size {old}: this checkpoint forks"
                    )
                raise _Refused(f"409: the witness is at size {learned}, not {old}, after a retry")
            if status != 200:
                raise _Refused(f"HTTP {status}: {_reason(body)}")
            signatures = self._verify(witness, text, body)
        except (_Refused, RempartError, httpx.HTTPError) as exc:
            message = f"{type(exc).__name__}: {exc}" if isinstance(exc, httpx.HTTPError) else str(exc)
            _log.warning("witness %s did not cosign size %d: %s", name, checkpoint.size, message)
            self._update(name, last_error=message, last_error_at=format_time(self.clock.now()))
            return []
        self._update(
            name,
            known_size=checkpoint.size,
            last_success_size=checkpoint.size,
            last_success_at=format_time(self.clock.now()),
        )
        return signatures

    def _body(self, old: int, size: int, signed: bytes) -> bytes:
        proof = [] if old in (0, size) else consistency_proof(old, size, self.storage)
        lines = [b"old %d" % old, *(base64.b64encode(h) for h in proof)]
        return b"\n".join(lines) + b"\n\n" + signed

    def _post(self, witness: WitnessAddress, body: bytes) -> tuple[int, bytes]:
        url = witness.url.rstrip("/") + "/add-checkpoint"
        response = self._client.post(url, content=body)
        return response.status_code, response.content[:_MAX_RESPONSE]

    def _learn_size(self, witness: WitnessAddress, body: bytes, size: int) -> int:
        """Parse a 409 body (``<size>\\n``); refuse sizes this checkpoint cannot be proven from."""
        text = body.decode("ascii", "replace")
        if not text.endswith("\n") or not text[:-1].isdigit() or (len(text) > 2 and text[0] == "0"):
            raise _Refused(f"409 with a body that is not '<size>\\n': {text[:60]!r}")
        learned = int(text[:-1])
        self._update(witness.verifier.name, known_size=learned)
        if learned > size:
            raise _Refused(
                f"409: the witness already cosigned size {learned}, larger than this checkpoint ({size})"
            )
        return learned

    def _verify(self, witness: WitnessAddress, text: str, body: bytes) -> list[NoteSignature]:
        """Keep the response lines that are valid cosignatures by this witness's key."""
        try:
            opened = open_note(text.encode("utf-8") + b"\n" + body, [witness.verifier])
        except (InvalidInput, VerificationFailed) as exc:
            raise _Refused(
                f"the witness's answer does not hold a valid cosignature by its key: {exc}"
            ) from exc
        return [v.signature for v in opened.verified]

    def _update(self, name: str, **changes: int | str | None) -> None:
        with self._lock:
            self._health[name] = replace(self._health[name], **changes)  # type: ignore[arg-type]


def _reason(body: bytes) -> str:
    """A refusal's reason: the ``detail`` of an RFC 9457 problem document, else the text itself."""
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if isinstance(detail, str):
        return detail[:1000]
    return body[:300].decode("utf-8", "replace").strip()


class _CheckpointSource(Protocol):
    def on_checkpoint(self, listener: Callable[[StoredCheckpoint], None]) -> None: ...
