"""Per-subject reports: "who accessed my data, when, why", each line with a proof anyone can check offline.

A data subject (through the operator's support flow, or a token scoped to
them) holds their commitment key (``RecordService.commitment_key``) and their
subject id; :func:`rempart.events.subject_commitment` turns them into the
commitment under which the log names them. :func:`subject_access_report` is
the pure part: it scans entries for that commitment and lists every access
decision about the subject (who, which org, why, when, what was allowed),
every access request or break-glass grant naming them, and what the store did
(creation, relocation, erasure). :func:`build_subject_report` adds, for every
line, a C2SP tlog-proof file proving the entry is in the log at a witnessed
checkpoint; :func:`verify_entry_proof` (``rempart audit verify-proof``) or any
C2SP tool checks those files with the log's and witnesses' public keys.

Where the entries and proofs come from is a :class:`LogView`: an auditor's
:class:`MirrorView` (the tree recomputed from the verified mirror), or the
operator's own :class:`ReadPathView` (what the API serves).

>>> report = subject_access_report([], "00" * 32)
>>> report.entries, report.scanned
((), 0)
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from rempart.audit._files import write_file
from rempart.audit.invariants import DecisionEntry, decode_entry
from rempart.audit.mirror import Mirror
from rempart.errors import InvalidInput, NotFound, VerificationFailed
from rempart.events import subject_commitment
from rempart.log.serving import LogReadPath
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.merkle import NodeId, inclusion_proof, leaf_hash, node_hash, tree_root
from rempart.tlog.note import MAX_NOTE_SIZE, Note, NoteVerifier
from rempart.tlog.proof_file import ProofFile, VerifiedProof, verify_proof_file
from rempart.tlog.tiles import TILE_WIDTH

__all__ = [
    "LogView",
    "MirrorTree",
    "MirrorView",
    "ReadPathView",
    "SubjectEntry",
    "SubjectReport",
    "SubjectReportBundle",
    "build_subject_report",
    "proof_file",
    "subject_access_report",
    "verify_entry_proof",
    "write_file",
]

_STORE_EVENTS = {
    "store.subject.created": "created",
    "store.subject.relocated": "relocation",
    "store.subject.relocation_refused": "relocation refused",
    "store.erasure": "erasure",
    "store.residency_violation": "residency violation refused",
    "store.leftover_purged": "leftover purged",
}
_REQUEST_EVENTS = {"access.request.submitted": "access request", "access.break_glass.opened": "break-glass"}
_MAX_EXTRA = (MAX_NOTE_SIZE // 2) // 4 * 3


@dataclass(frozen=True, slots=True)
class SubjectEntry:
    """One line of a subject's report: one log entry about them, in plain words."""

    index: int
    time: str
    kind: str
    type: str
    org: str | None = None
    principal: str | None = None
    purpose: str | None = None
    action: str | None = None
    decision: str | None = None
    collection: str | None = None
    fields_allowed: tuple[str, ...] = ()
    fields_denied: tuple[str, ...] = ()
    grant: str | None = None
    break_glass: bool = False
    reasons: tuple[str, ...] = ()
    summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "time": self.time,
            "kind": self.kind,
            "type": self.type,
            "org": self.org,
            "principal": self.principal,
            "purpose": self.purpose,
            "action": self.action,
            "decision": self.decision,
            "collection": self.collection,
            "fields_allowed": list(self.fields_allowed),
            "fields_denied": list(self.fields_denied),
            "grant": self.grant,
            "break_glass": self.break_glass,
            "reasons": list(self.reasons),
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class SubjectReport:
    """Every entry about one commitment, in log order, out of ``scanned`` entries read."""

    commitment: str
    entries: tuple[SubjectEntry, ...]
    scanned: int

    @property
    def accesses(self) -> tuple[SubjectEntry, ...]:
        return tuple(e for e in self.entries if e.kind == "access")

    def to_json(self) -> dict[str, Any]:
        return {
            "commitment": self.commitment,
            "scanned": self.scanned,
            "accesses": len(self.accesses),
            "entries": [e.to_json() for e in self.entries],
        }


def _decision_line(index: int, time: str, d: DecisionEntry) -> SubjectEntry:
    allowed = tuple(f.name for f in d.fields if f.allowed)
    denied = tuple(f.name for f in d.fields if not f.allowed)
    verdict = "allowed" if allowed and not denied else "partly allowed" if allowed else "denied"
    reasons = tuple(dict.fromkeys(r for f in d.fields if not f.allowed for r in f.reasons))
    what = ", ".join(allowed) if allowed else "nothing"
    summary = (
        f"{d.principal} ({d.org}) asked to {d.action} {d.collection} for {d.purpose}: {verdict}"
        + (f" ({what})" if allowed else "")
        + (" under break-glass" if d.break_glass else "")
    )
    return SubjectEntry(
        index=index,
        time=time,
        kind="access",
        type="access.decision",
        org=d.org,
        principal=d.principal,
        purpose=d.purpose,
        action=d.action,
        decision=verdict,
        collection=d.collection,
        fields_allowed=allowed,
        fields_denied=denied,
        grant=d.grant,
        break_glass=d.break_glass,
        reasons=reasons,
        summary=summary,
    )


def _other_line(
    index: int, kind: str, time: str, body: Mapping[str, Any], commitment: str
) -> SubjectEntry | None:
    if kind in _STORE_EVENTS and body.get("subject") == commitment:
        by = body.get("requested_by")
        principal = by.get("principal") if isinstance(by, dict) else None
        org = by.get("org") if isinstance(by, dict) else None
        where = body.get("region") or body.get("to_region") or body.get("home_region")
        summary = f"{_STORE_EVENTS[kind]}" + (f" in {where}" if where else "")
        if kind == "store.erasure":
            summary = (
                f"erased in {body.get('region')}: {', '.join(map(str, body.get('destroyed', [])))} destroyed"
            )
        elif kind == "store.subject.relocated":
            summary = f"moved from {body.get('from_region')} to {body.get('to_region')}"
        return SubjectEntry(
            index=index,
            time=time,
            kind=_STORE_EVENTS[kind],
            type=kind,
            org=org,
            principal=principal,
            purpose=None,
            action=None,
            decision=None,
            summary=summary,
            reasons=(str(body["reason"]),) if isinstance(body.get("reason"), str) else (),
        )
    if kind in _REQUEST_EVENTS:
        request = body.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("scope"), dict):
            return None
        scope = request["scope"]
        subjects = scope.get("subjects")
        if not isinstance(subjects, list) or commitment not in subjects:
            return None
        fields = tuple(str(f) for f in scope.get("fields", []))
        summary = (
            f"{request.get('requester')} ({request.get('requester_org')}) "
            f"{'opened a break-glass grant on' if kind == 'access.break_glass.opened' else 'asked for'} "
            f"{', '.join(fields)} for {request.get('purpose')} (ticket {request.get('ticket')})"
        )
        return SubjectEntry(
            index=index,
            time=time,
            kind=_REQUEST_EVENTS[kind],
            type=kind,
            org=str(request.get("requester_org")),
            principal=str(request.get("requester")),
            purpose=str(request.get("purpose")),
            fields_allowed=fields,
            grant=str(request.get("id")),
            break_glass=kind == "access.break_glass.opened",
            summary=summary,
        )
    return None


def subject_access_report(entries: Iterable[tuple[int, bytes]], commitment: str) -> SubjectReport:
    """Every entry of ``entries`` about the subject committed as ``commitment`` (pure: no I/O).

    Entries that do not mention the commitment's bytes are not even decoded;
    entries that do not decode are skipped (the auditor's check names them).
    """
    if len(commitment) != 64 or any(c not in "0123456789abcdef" for c in commitment):
        raise InvalidInput("a subject commitment is 64 lowercase hex digits")
    needle = commitment.encode()
    lines: list[SubjectEntry] = []
    scanned = 0
    for index, data in entries:
        scanned += 1
        if needle not in data:
            continue
        try:
            kind, time, body = decode_entry(data)
        except InvalidInput:
            continue
        if isinstance(body, DecisionEntry):
            if body.subject == commitment:
                lines.append(_decision_line(index, time, body))
            continue
        line = _other_line(index, kind, time, body, commitment)
        if line is not None:
            lines.append(line)
    return SubjectReport(commitment, tuple(lines), scanned)


# -- where entries and proofs come from ----------------------------------------------------


class LogView(Protocol):
    """A log at one signed checkpoint: its entries and inclusion proofs against that checkpoint."""

    def checkpoint(self) -> bytes:
        """The signed (and cosigned) checkpoint note the proofs are against."""
        ...

    def size(self) -> int: ...

    def entries(self) -> Iterable[tuple[int, bytes]]:
        """``(index, entry)`` for every entry the checkpoint covers, in order."""
        ...

    def entry(self, index: int) -> bytes: ...

    def inclusion_proof(self, index: int) -> list[bytes]: ...


class MirrorTree:
    """Every complete subtree hash of a list of leaves: inclusion proofs for any index, in memory.

    Built once from the leaves (one leaf hash per entry, one node hash per
    pair), it answers :class:`~rempart.tlog.merkle.HashReader` reads.
    """

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.size = len(leaves)
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            below = levels[-1]
            levels.append([node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)])
        self._levels = levels

    def read_hashes(self, nodes: Sequence[NodeId]) -> list[bytes]:
        out = []
        for node in nodes:
            if node.level >= len(self._levels) or node.index >= len(self._levels[node.level]):
                raise NotFound(f"node {node} is not a complete subtree of a tree of size {self.size}")
            out.append(self._levels[node.level][node.index])
        return out

    def root(self) -> bytes:
        return tree_root(self.size, self)


class MirrorView:
    """An auditor's view: the verified mirror's entries, and a tree recomputed from them.

    The recomputed root must be the mirror's verified checkpoint root, or the
    mirror's database was altered after it was verified (VerificationFailed).
    """

    def __init__(self, mirror: Mirror) -> None:
        state = mirror.state
        if state is None:
            raise NotFound(f"the mirror in {mirror.directory} was never synced; run rempart audit sync first")
        self.mirror = mirror
        self._note = state.note
        self._size = state.size
        self._root = state.root
        self._tree: MirrorTree | None = None
        self._bundle: tuple[int, list[bytes]] = (-1, [])  # the last bundle read: a report's lines cluster

    def checkpoint(self) -> bytes:
        return self._note

    def size(self) -> int:
        return self._size

    def entries(self) -> Iterator[tuple[int, bytes]]:
        return self.mirror.entries(0, self._size)

    def entry(self, index: int) -> bytes:
        if not 0 <= index < self._size:
            raise NotFound(f"entry {index} is not in the mirror (size {self._size})")
        tile = index // TILE_WIDTH
        if self._bundle[0] != tile:
            first = tile * TILE_WIDTH
            self._bundle = (tile, [data for _, data in self.mirror.entries(first, first + TILE_WIDTH)])
        return self._bundle[1][index % TILE_WIDTH]

    def tree(self) -> MirrorTree:
        if self._tree is None:
            tree = MirrorTree([leaf_hash(data) for _, data in self.entries()])
            if self._size and tree.root() != self._root:
                raise VerificationFailed(
                    f"the mirror's entries hash to root {tree.root().hex()}, not the verified checkpoint's "
                    f"{self._root.hex()}: the mirror's database was altered; sync into a fresh folder"
                )
            self._tree = tree
        return self._tree

    def inclusion_proof(self, index: int) -> list[bytes]:
        return inclusion_proof(index, self._size, self.tree())


class ReadPathView:
    """The operator's view: its log's read path at the latest published (cosigned) checkpoint."""

    def __init__(self, reader: LogReadPath) -> None:
        stored = reader.checkpoint()
        self.reader = reader
        self._note = stored.note
        self._size = stored.size

    def checkpoint(self) -> bytes:
        return self._note

    def size(self) -> int:
        return self._size

    def entries(self, *, page: int = 4096) -> Iterator[tuple[int, bytes]]:
        for start in range(0, self._size, page):
            stop = min(self._size, start + page)
            for offset, data in enumerate(self.reader.storage.read_entries(start, stop)):
                yield start + offset, data

    def entry(self, index: int) -> bytes:
        return self.reader.entry(index)

    def inclusion_proof(self, index: int) -> list[bytes]:
        return self.reader.inclusion_proof(index, self._size)


# -- proofs ---------------------------------------------------------------------------------


def proof_file(view: LogView, index: int, entry: bytes | None = None) -> bytes:
    """The C2SP tlog-proof file for entry ``index``; the entry rides in the extra line when it fits.

    The extra line is unauthenticated, but a verifier recomputes the leaf hash
    from it, so a changed entry fails the proof: the file is self-contained.
    """
    data = view.entry(index) if entry is None else entry
    extra = data if len(data) <= _MAX_EXTRA else None
    return ProofFile(
        index=index, proof=tuple(view.inclusion_proof(index)), checkpoint=view.checkpoint(), extra=extra
    ).to_bytes()


def verify_entry_proof(
    data: bytes,
    *,
    origin: str,
    log: NoteVerifier,
    witnesses: Sequence[CosignatureVerifier] = (),
    threshold: int = 0,
    entry: bytes | None = None,
) -> tuple[VerifiedProof, bytes]:
    """Check a proof file offline; the entry is ``entry`` or else the file's extra line.

    Returns the verified proof and the entry it proves (now authenticated).
    """
    parsed = ProofFile.parse(data)
    if entry is None:
        if parsed.extra is None:
            raise InvalidInput("the proof file carries no entry in its extra line; give the entry file too")
        entry = parsed.extra
    verified = verify_proof_file(
        parsed, origin=origin, log=log, witnesses=witnesses, threshold=threshold, entry=entry
    )
    return verified, entry


@dataclass(frozen=True, slots=True)
class SubjectReportBundle:
    """A subject's report with its checkpoint and one proof file per line, ready to hand over."""

    report: SubjectReport
    checkpoint: bytes
    proofs: Mapping[int, bytes] = field(repr=False)
    entries: Mapping[int, bytes] = field(repr=False)

    @property
    def tree_size(self) -> int:
        return Checkpoint.parse(Note.parse(self.checkpoint).text).size

    def to_json(self) -> dict[str, Any]:
        """The report, each line with its proof file (base64) and the entry's leaf hash."""
        doc = self.report.to_json()
        doc["checkpoint"] = self.checkpoint.decode("utf-8")
        doc["tree_size"] = self.tree_size
        for line in doc["entries"]:
            index = line["index"]
            line["leaf_hash"] = leaf_hash(self.entries[index]).hex()
            line["proof_file"] = f"proofs/{index}.tlog-proof"
            line["proof"] = base64.b64encode(self.proofs[index]).decode()
        return doc

    def write(self, folder: Path) -> list[Path]:
        """``subject-report.json``, ``subject-report.html``, ``checkpoint``, ``proofs/``, ``entries/``."""
        written = []
        for index, data in self.proofs.items():
            write_file(folder / "proofs" / f"{index}.tlog-proof", data)
            write_file(folder / "entries" / f"{index}.json", self.entries[index])
            written.append(folder / "proofs" / f"{index}.tlog-proof")
        write_file(folder / "checkpoint", self.checkpoint)
        doc = self.to_json()
        write_file(
            folder / "subject-report.json", (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode()
        )
        write_file(folder / "subject-report.html", _html(doc).encode())
        return [folder / "subject-report.json", folder / "subject-report.html", *written]


def build_subject_report(
    view: LogView | Mirror | LogReadPath, commitment_key: bytes, subject_id: str
) -> SubjectReportBundle:
    """The service function: a subject's report with a proof file per line, against one checkpoint.

    ``view`` is the operator's read path (the API), an auditor's mirror, or
    any :class:`LogView`. The commitment is computed here from the subject's
    own key and id, so nothing else about the subject is needed.
    """
    if not isinstance(commitment_key, bytes) or len(commitment_key) < 16:
        raise InvalidInput("the subject commitment key is at least 16 bytes")
    if not isinstance(subject_id, str) or not subject_id:
        raise InvalidInput("the subject id is a non-empty string")
    if isinstance(view, Mirror):
        view = MirrorView(view)
    elif isinstance(view, LogReadPath):
        view = ReadPathView(view)
    commitment = subject_commitment(commitment_key, subject_id)
    report = subject_access_report(view.entries(), commitment)
    entries = {line.index: view.entry(line.index) for line in report.entries}
    proofs = {index: proof_file(view, index, data) for index, data in entries.items()}
    return SubjectReportBundle(report, view.checkpoint(), proofs, entries)


def _html(doc: Mapping[str, Any]) -> str:
    """A plain page (no scripts, no external resources) a subject can open offline."""
    rows = []
    for line in doc["entries"]:
        cells = [
            str(line["index"]),
            line["time"],
            line["kind"],
            line["org"] or "",
            line["principal"] or "",
            line["purpose"] or "",
            line["decision"] or "",
            ", ".join(line["fields_allowed"]),
            line["summary"],
        ]
        link = f'<a href="{html.escape(line["proof_file"])}">proof</a>'
        # Every cell but the link is what the log says, so it is escaped, whatever it looks like.
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + f"<td>{link}</td></tr>")
    head = "".join(
        f"<th>{h}</th>"
        for h in ("entry", "time", "what", "org", "who", "purpose", "decision", "fields", "summary", "proof")
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Who accessed my data</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:4px 8px;text-align:left;vertical-align:top}}</style></head>
<body><h1>Who accessed my data</h1>
<p>Subject commitment <code>{html.escape(doc["commitment"])}</code>; {doc["accesses"]} access decision(s) in
{len(doc["entries"])} log entries about you, out of {doc["scanned"]} entries, at the log checkpoint of size
{doc["tree_size"]}. Each line links a C2SP tlog-proof file: check it offline with
<code>rempart audit verify-proof FILE --vkey LOGKEY --witness WITNESSKEY</code> or any C2SP tool.</p>
<table><thead><tr>{head}</tr></thead><tbody>
{"".join(rows)}
</tbody></table>
<h2>Checkpoint</h2><pre>{html.escape(doc["checkpoint"])}</pre>
</body></html>
"""
