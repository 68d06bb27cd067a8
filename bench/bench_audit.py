"""The auditor's full audit of a large log, side by side with the floor of re-hashing its entries.

A log of N entries (1,000,000; ``--quick``: 100,000) with a realistic mix is
built in bulk through a real :class:`~rempart.log.sequencer.TransparencyLog`
on SQLite: a board-signed trust root, principals, an initial policy set, then
epochs of traffic, each opening a bulk access grant with two real signed
custodian approvals and carrying ~2,000 access decisions under the grants in
force (allowed protected reads, denials, public reads), with a policy change
through a board proposal, an excepted-data egress and a reviewed break-glass
grant now and then. The log's tiles are exported to a folder and its
checkpoint cosigned by a witness key.

Measured, in one run:

* **full audit** (the goal's row): :func:`~rempart.audit.full.full_audit`
  (``rempart audit check --sync``) into a fresh mirror: the sync (checkpoint
  signature and witness cosignature, every entry against its level-0 tile
  hash, the root recomputed, bundles stored) and, in a second process fed as
  entries verify, the replay of every entry through every invariant (signed
  approvals and board signatures verified against the trust root);
* **sync, then check**: the same two phases one after the other into another
  fresh mirror (``rempart audit sync`` then ``rempart audit check``), each
  timed; both audits must agree on every count and finding;
* **replay decode only**: the decoding and canonical check alone;
* **floor**: ``hashlib`` over the same entries in memory, a leaf hash and one
  node hash per entry.

``python -m bench audit [--quick]`` prints a table and writes bench/results/audit.json.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from bench.report import print_table, write_json
from rempart.access import (
    AccessRequest,
    ApprovalDecision,
    ReviewVerdict,
    Scope,
    lifecycle,
    sign_approval,
    sign_review,
)
from rempart.access.model import Approval, Review
from rempart.access.rules import AccessRules
from rempart.audit.full import full_audit
from rempart.audit.invariants import decode_entry, replay
from rempart.audit.mirror import LogTrust, Mirror
from rempart.clock import ManualClock, format_time
from rempart.events import Event, canonical_json, subject_commitment
from rempart.governance.proposals import PROPOSAL_HEADER, sign_proposal
from rempart.governance.trustroot import parse_document, sign_trust_root_note, trust_root_text
from rempart.log import open_log
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.log.source import DirectorySource
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.note import Note, Signer

START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
EPOCH = 2000  # access decisions per epoch
STEP = timedelta(milliseconds=40)
OPERATORS = [f"operator:agent{i:02d}" for i in range(20)]
APPROVERS = ["custodian:carol", "custodian:dan", "custodian:erin"]
FIELDS = ["email", "phone", "postal_address", "email_verified"]
CATEGORY = {
    "email": "protected",
    "phone": "protected",
    "postal_address": "protected",
    "email_verified": "excepted",
}
POLICY = "// the policy set in force\npermit (principal, action, resource) when { false };\n"


class Generator:
    """Builds the entries of the benchmark log, in order, as canonical event bytes."""

    def __init__(self, size: int, log_key: Signer) -> None:
        self.size = size
        self.rng = random.Random(7)
        self.now = START
        self.board = [Signer.generate(f"bench.example/board-{i}") for i in range(3)]
        self.approvers = {pid: Signer.generate(f"bench.example/{pid.replace(':', '-')}") for pid in APPROVERS}
        self.witness = Cosigner.generate("bench.example-witness")
        self.log_key = log_key
        self.encoder = msgspec.json.Encoder(order="sorted")
        self.subjects = [subject_commitment(b"k" * 32, f"user-{i}") for i in range(5000)]
        self.policy_version = hashlib.sha256(POLICY.encode()).hexdigest()
        self.grants: list[tuple[str, str, str]] = []  # (grant id, principal, expires_at)
        self.rules = AccessRules()
        self.signed = 0

    def event(self, kind: str, body: dict[str, Any]) -> bytes:
        return Event(kind, self.now, body).encode()

    def tick(self) -> None:
        self.now += STEP

    def prefix(self) -> list[bytes]:
        out = []
        doc = parse_document(
            {
                "version": 1,
                "deployment": "bench",
                "issued": format_time(self.now),
                "log": {"origin": self.log_key.name, "vkey": self.log_key.vkey()},
                "board": {
                    "members": [
                        {"id": f"board:m{i}", "org": "board", "vkey": s.vkey()}
                        for i, s in enumerate(self.board)
                    ],
                    "threshold": 2,
                },
                "custodian_approvers": [
                    {"id": pid, "org": "custodian", "vkey": s.vkey()} for pid, s in self.approvers.items()
                ],
                "release_reviewers": {
                    "members": [
                        {
                            "id": "custodian:rita",
                            "org": "custodian",
                            "vkey": Signer.generate("bench.example/rita").vkey(),
                        }
                    ],
                    "threshold": 1,
                },
                "witnesses": {
                    "members": [
                        {"name": self.witness.name, "vkey": self.witness.vkey(), "url": "https://w.example/"}
                    ],
                    "threshold": 1,
                },
                "regions": ["us"],
                "registry": {
                    "vkey": Signer.generate("bench.example/registry").vkey(),
                    "root_expires": format_time(self.now + timedelta(days=365)),
                },
            }
        ).document
        note = sign_trust_root_note(trust_root_text(doc), self.board[:2]).decode()
        out.append(
            self.event(
                "governance.trust_root.installed",
                {
                    "version": 1,
                    "deployment": "bench",
                    "document_sha256": hashlib.sha256(doc).hexdigest(),
                    "board_signers": ["board:m0", "board:m1"],
                    "previous_board_signers": [],
                    "proposal": None,
                    "signed_note": note,
                },
            )
        )
        for pid in [*OPERATORS, *APPROVERS]:
            org = pid.split(":")[0]
            out.append(
                self.event(
                    "access.principal.created",
                    {
                        "principal": {
                            "id": pid,
                            "org": org,
                            "location": "US",
                            "screening": "cleared",
                            "roles": ["approver"] if org == "custodian" else ["support"],
                            "purposes": [],
                            "vkey": self.approvers[pid].vkey() if pid in self.approvers else None,
                            "disabled": False,
                        },
                        "actor": "bench:setup",
                    },
                )
            )
        out.append(
            self.event(
                "policy.activated",
                {
                    "version": self.policy_version,
                    "previous_version": None,
                    "schema_digest": "00" * 32,
                    "actor": "system:rempart",
                    "reason": "initial policy set",
                    "policies": [],
                    "text": POLICY,
                },
            )
        )
        return out

    def grant(self, epoch: int) -> list[bytes]:
        """A bulk grant for one operator, with two real signed custodian approvals."""
        principal = OPERATORS[epoch % len(OPERATORS)]
        request = AccessRequest(
            id=f"req_{epoch:016x}",
            requester=principal,
            requester_org="operator",
            scope=Scope(
                "us", frozenset({"contact"}), frozenset(f"contact.{f}" for f in FIELDS[:3]), (), 100_000
            ),
            purpose="customer_support",
            ticket=f"SUP-{epoch}",
            duration=timedelta(hours=2),
            created_at=self.now,
        )
        submitted = lifecycle.submit(request, rules=self.rules, now=self.now)
        events = list(submitted.events)
        record = submitted.record
        for approver in self.rng.sample(APPROVERS, 2):
            self.tick()
            note = sign_approval(
                self.approvers[approver],
                request,
                approver=approver,
                decision=ApprovalDecision.APPROVE,
                time=self.now,
            ).decode()
            self.signed += 1
            moved = lifecycle.add_approval(
                record,
                Approval(approver, ApprovalDecision.APPROVE, self.now, self.now, note, True),
                rules=self.rules,
                now=self.now,
            )
            record = moved.record
            events.extend(moved.events)
        self.grants.append((request.id, principal, format_time(record.expires_at)))  # type: ignore[arg-type]
        self.grants = self.grants[-5:]
        return [e.encode() for e in events]

    def governance(self, epoch: int) -> list[bytes]:
        """A board proposal changing the policy set: drafted, signed by two members, applied, activated."""
        text = POLICY + f"// revision {epoch}\n"
        doc = {
            "id": f"p-{epoch:016x}",
            "kind": "policy_set",
            "payload": {"policies": text},
            "deployment": "bench",
            "drafted_by": "board:m0",
            "drafted": format_time(self.now),
            "expires": format_time(self.now + timedelta(days=7)),
            "trust_root_version": 1,
        }
        proposal = f"{PROPOSAL_HEADER}\n{canonical_json(doc).decode()}\n"
        digest = hashlib.sha256(proposal.encode()).hexdigest()
        out = [
            self.event(
                "governance.proposal.drafted",
                {
                    "proposal": doc["id"],
                    "kind": "policy_set",
                    "drafted_by": "board:m0",
                    "drafter_org": "board",
                    "expires": doc["expires"],
                    "trust_root_version": 1,
                    "proposal_sha256": digest,
                    "text": proposal,
                },
            )
        ]
        for i, member in enumerate(self.board[:2]):
            line = Note.parse(sign_proposal(proposal, [member])).signatures[0].line().rstrip("\n")
            out.append(
                self.event(
                    "governance.proposal.signed",
                    {
                        "proposal": doc["id"],
                        "kind": "policy_set",
                        "member": f"board:m{i}",
                        "key": f"{member.name}+{member.key_id:08x}",
                        "proposal_sha256": digest,
                        "trust_root_version": 1,
                        "signature": line,
                    },
                )
            )
        out.append(
            self.event(
                "governance.proposal.applied",
                {
                    "proposal": doc["id"],
                    "kind": "policy_set",
                    "proposal_sha256": digest,
                    "signers": ["board:m0", "board:m1"],
                    "threshold": 2,
                    "trust_root_version": 1,
                },
            )
        )
        version = hashlib.sha256(text.encode()).hexdigest()
        out.append(
            self.event(
                "policy.activated",
                {
                    "version": version,
                    "previous_version": self.policy_version,
                    "schema_digest": "00" * 32,
                    "actor": f"proposal:{doc['id']}",
                    "reason": f"governance proposal {doc['id']}",
                    "policies": [],
                    "text": text,
                },
            )
        )
        self.policy_version = version
        return out

    def break_glass(self, epoch: int) -> list[bytes]:
        request = AccessRequest(
            id=f"req_bb{epoch:014x}",
            requester="operator:agent00",
            requester_org="operator",
            scope=Scope("us", frozenset({"contact"}), frozenset({"contact.phone"}), (self.subjects[0],)),
            purpose="customer_support",
            ticket=f"INC-{epoch}",
            duration=timedelta(minutes=30),
            created_at=self.now,
            break_glass=True,
        )
        opened = lifecycle.open_break_glass(request, rules=self.rules, now=self.now)
        self.tick()
        note = sign_review(
            self.approvers["custodian:dan"],
            request,
            reviewer="custodian:dan",
            verdict=ReviewVerdict.UPHELD,
            time=self.now,
        ).decode()
        self.signed += 1
        reviewed = lifecycle.add_review(
            opened.record,
            Review("custodian:dan", ReviewVerdict.UPHELD, self.now, self.now, note, True),
            now=self.now,
        )
        return [e.encode() for e in (*opened.events, *reviewed.events)]

    def egress(self) -> bytes:
        return self.event(
            "egress.transfer",
            {
                "region": "us",
                "destination": "interop-partners",
                "purpose": "customer_support",
                "collection": "contact",
                "fields": ["email_verified"],
                "count": 250,
                "digest": "11" * 32,
                "bytes": 40_000,
                "exception": None,
                "requested_by": {"principal": "operator:svc", "org": "operator"},
            },
        )

    def decision(self) -> bytes:
        rng = self.rng
        roll = rng.random()
        grant_id, principal, _ = self.grants[rng.randrange(len(self.grants))]
        subject = self.subjects[rng.randrange(len(self.subjects))]
        if roll < 0.80:  # an allowed protected read under a grant, two fields masked
            wanted = FIELDS
            allowed = {"email", "phone"} if roll < 0.4 else {"email", "postal_address"}
            grant: str | None = grant_id
        elif roll < 0.92:  # a denial: no grant
            wanted, allowed, grant, principal = (
                FIELDS[:3],
                set(),
                None,
                OPERATORS[rng.randrange(len(OPERATORS))],
            )
        else:  # a public read
            return self.encoder.encode(
                {
                    "action": "read",
                    "allowed": True,
                    "break_glass": False,
                    "collection": "profile",
                    "fields": [
                        {
                            "allowed": True,
                            "category": "public",
                            "name": "handle",
                            "policies": ["public-for-all"],
                            "reasons": [],
                        }
                    ],
                    "grant": None,
                    "org": "operator",
                    "policy_version": self.policy_version,
                    "principal": principal,
                    "purpose": "customer_support",
                    "record": "main",
                    "region": "us",
                    "subject": subject,
                    "time": format_time(self.now),
                    "type": "access.decision",
                    "v": 1,
                }
            )
        fields = []
        for name in wanted:
            ok = name in allowed
            fields.append(
                {
                    "allowed": ok,
                    "category": CATEGORY[name],
                    "name": name,
                    "policies": ["protected-with-active-grant"]
                    if ok
                    else ["protected-read-needs-grant" if grant is None else "grant-field-out-of-scope"],
                    "reasons": [] if ok else ["the field is outside the grant's scope"],
                }
            )
        return self.encoder.encode(
            {
                "action": "read",
                "allowed": bool(allowed),
                "break_glass": False,
                "collection": "contact",
                "fields": fields,
                "grant": grant,
                "org": "operator",
                "policy_version": self.policy_version,
                "principal": principal,
                "purpose": "customer_support",
                "record": "main",
                "region": "us",
                "subject": subject,
                "time": format_time(self.now),
                "type": "access.decision",
                "v": 1,
            }
        )

    def epoch(self, epoch: int) -> list[bytes]:
        """One epoch: a new grant, now and then governance, break-glass, egress; then the decisions."""
        out = self.grant(epoch)
        if epoch % 100 == 50:
            out.extend(self.governance(epoch))
        if epoch % 50 == 25:
            out.extend(self.break_glass(epoch))
        if epoch % 10 == 5:
            out.append(self.egress())
        for _ in range(EPOCH):
            self.tick()
            out.append(self.decision())
        return out

    def chunks(self, chunk: int = 20_000) -> Iterator[list[bytes]]:
        """Lists of entries, in log order, ``size`` entries in all."""
        produced, epoch = 0, 0
        batch = self.prefix()
        while produced < self.size:
            if len(batch) < chunk and produced + len(batch) < self.size:
                batch.extend(self.epoch(epoch))
                epoch += 1
                continue
            take = batch[: min(chunk, self.size - produced)]
            yield take
            produced += len(take)
            batch = batch[len(take) :]


def build_log(folder: Path, size: int) -> tuple[Generator, Path, list[bytes]]:
    """The log on SQLite, its exported tiles (checkpoint cosigned by the witness), and its entries."""
    key = Signer.generate("bench.example/audit-log")
    generator = Generator(size, key)
    log = open_log(f"sqlite:///{folder / 'log.db'}", key, checkpoint_interval=3600)
    entries: list[bytes] = []
    try:
        for batch in generator.chunks():
            log.append_many(batch)
            entries.extend(batch)
        log.publish_checkpoint()
        reader = LogReadPath(log.storage)
        tiles = folder / "tiles"
        export_tiles(reader, tiles)
        note = Note.parse((tiles / "checkpoint").read_bytes())
        cosignature = generator.witness.cosign(Checkpoint.parse(note.text), int(generator.now.timestamp()))
        (tiles / "checkpoint").write_bytes(
            Note(note.text, (*note.signatures, cosignature.to_note_signature())).to_bytes()
        )
    finally:
        log.close()
    return generator, tiles, entries


def floor(entries: list[bytes]) -> float:
    """hashlib alone: a leaf hash and one node hash per entry."""
    sha256 = hashlib.sha256
    previous = b"\x00" * 32
    start = time.perf_counter()
    for e in entries:
        leaf = sha256(b"\x00" + e).digest()
        previous = sha256(b"\x01" + previous + leaf).digest()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    size = 100_000 if "--quick" in argv else 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="rempart-bench-audit-"))
    try:
        t0 = time.perf_counter()
        generator, tiles, entries = build_log(folder, size)
        built = time.perf_counter() - t0
        average = sum(map(len, entries)) / len(entries)
        trust = LogTrust(
            origin=generator.log_key.name,
            log=generator.log_key.verifier(),
            witnesses=(generator.witness.verifier(),),
            threshold=1,
        )
        source = DirectorySource(tiles)
        clock = ManualClock(generator.now)
        start = time.perf_counter()
        with Mirror(folder / "mirror-one-pass", trust=trust, clock=clock) as mirror:
            audit = full_audit(mirror, source)
        one_pass_s = time.perf_counter() - start
        start = time.perf_counter()
        with Mirror(folder / "mirror", trust=trust, clock=clock) as mirror:
            report = mirror.sync(source)
            synced = time.perf_counter()
            state = mirror.state
            assert state is not None
            result = replay(mirror.entries(), checkpoint=state.note, mirror_threshold=1)
        replayed = time.perf_counter()
        sync_s, replay_s, total_s = synced - start, replayed - synced, replayed - start
        if not result.ok or result.entries != size or report.size != size:
            raise SystemExit(
                f"the benchmark log did not audit clean: {[f.message for f in result.violations][:3]}"
            )
        if (audit.replay.entries, audit.replay.checked, audit.replay.findings) != (
            result.entries,
            result.checked,
            result.findings,
        ) or audit.sync.root != report.root:
            raise SystemExit("the one-pass audit and sync-then-check disagree")
        decode_start = time.perf_counter()
        for e in entries:
            decode_entry(e)
        decode_s = time.perf_counter() - decode_start
        floor_s = min(floor(entries) for _ in range(3))
        rows = [
            ("floor: hashlib leaf + node hash", floor_s, size / floor_s, 1.0),
            ("replay: decode + canonical check only", decode_s, size / decode_s, decode_s / floor_s),
            ("audit sync alone (tiles, signatures, hashes, root)", sync_s, size / sync_s, sync_s / floor_s),
            (
                "audit check alone (every invariant, from the mirror)",
                replay_s,
                size / replay_s,
                replay_s / floor_s,
            ),
            ("sync, then check (one after the other)", total_s, size / total_s, total_s / floor_s),
            (
                "full audit: one pass, sync and replay side by side",
                one_pass_s,
                size / one_pass_s,
                one_pass_s / floor_s,
            ),
        ]
        print_table(
            f"full audit of a {size:,}-entry log ({average:.0f} B/entry average; built in {built:.1f} s)",
            ["what", "seconds", "entries/s", "x floor"],
            [(name, round(s, 3), round(rate), round(ratio, 2)) for name, s, rate, ratio in rows],
        )
        write_json(
            "audit",
            {
                "entries": size,
                "average_entry_bytes": round(average, 1),
                "signed_statements_verified": generator.signed,
                "checked": dict(result.checked),
                "floor_seconds": round(floor_s, 3),
                "decode_seconds": round(decode_s, 3),
                "sync_seconds": round(sync_s, 3),
                "replay_seconds": round(replay_s, 3),
                "sync_then_check_seconds": round(total_s, 3),
                "sync_then_check_over_floor": round(total_s / floor_s, 2),
                "full_audit_seconds": round(one_pass_s, 3),
                "full_audit_over_floor": round(one_pass_s / floor_s, 2),
                "goal_over_floor": 5.0,
            },
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
