"""A real deployment with a trust root and traffic, mirrored by a real auditor: for the replay tests.

:func:`clean_world` runs a deployment (tests/world.py) through the life the
agreement covers: a board-signed trust root naming the custodian approvers,
single-subject and bulk grants approved with signed notes, reads allowed and
denied, public reads, a break-glass grant reviewed in time, a policy set
changed by a board proposal, an egress of excepted data. :class:`Auditor`
mirrors its read path with the real :class:`~rempart.audit.mirror.Mirror`
(the checkpoint cosigned by a witness key) and replays the mirror.
"""

from __future__ import annotations

import base64
import hashlib
import tomllib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from rempart.access import ReviewVerdict, sign_review
from rempart.audit.invariants import ReplayResult, replay
from rempart.audit.mirror import LogTrust, Mirror
from rempart.clock import format_time
from rempart.config import Config, default_config_text, parse_config
from rempart.events import Event
from rempart.governance import ProposalKind, sign_proposal, sign_trust_root
from rempart.governance.rootstore import TrustRootBundle
from rempart.governance.trustroot import parse_document
from rempart.log.serving import LogReadPath
from rempart.policy import DEFAULT_POLICIES
from rempart.store.egress import EgressRequest
from rempart.store.records import Actor
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.note import Note, Signer
from tests.world import World

__all__ = ["Auditor", "ReadPathSource", "Scene", "clean_world", "postgres_config"]


class ReadPathSource:
    """The deployment's read path as a tile source, its checkpoint cosigned by one witness key."""

    def __init__(self, reader: LogReadPath, witness: Cosigner, timestamp: int) -> None:
        self.reader = reader
        self.witness = witness
        self.timestamp = timestamp

    def fetch(self, path: str) -> bytes:
        body = self.reader.get(path).body
        if path != "checkpoint":
            return body
        note = Note.parse(body)
        cosignature = self.witness.cosign(Checkpoint.parse(note.text), self.timestamp)
        return Note(note.text, (*note.signatures, cosignature.to_note_signature())).to_bytes()

    def close(self) -> None:
        pass


@dataclass
class Scene:
    """The world and the keys the tests need to act as its board, witness and rogue operator."""

    world: World
    board: list[Signer]
    witness: Cosigner
    trust_root: TrustRootBundle
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def recorder(self) -> Any:
        return self.world.deployment.recorder

    def record(self, kind: str, body: dict[str, Any]) -> int:
        """What a rogue operator with database access does: write an entry of its own making."""
        return self.recorder.record(Event(kind, self.world.now, body)).index

    def publish(self) -> None:
        self.world.deployment.log.publish_checkpoint()

    def source(self) -> ReadPathSource:
        self.publish()
        return ReadPathSource(self.world.deployment.read_path, self.witness, int(self.world.now.timestamp()))


def _trust_root(world: World, board: list[Signer], witness: Cosigner) -> TrustRootBundle:
    deployment = world.deployment
    log = deployment.log_signer
    reviewer = Signer.generate("keys.example/custodian-rita")
    registry = Signer.generate("registry.example")
    document = parse_document(
        {
            "version": 1,
            "deployment": deployment.config.name,
            "issued": format_time(world.now),
            "log": {"origin": log.name, "vkey": log.vkey()},
            "board": {
                "members": [
                    {"id": f"board:m{i}", "org": "board", "vkey": s.vkey()} for i, s in enumerate(board)
                ],
                "threshold": 2,
            },
            "custodian_approvers": [
                {"id": pid, "org": "custodian", "vkey": world.signers[pid].vkey()}
                for pid in ("custodian:carol", "custodian:dan")
            ],
            "release_reviewers": {
                "members": [{"id": "custodian:rita", "org": "custodian", "vkey": reviewer.vkey()}],
                "threshold": 1,
            },
            "witnesses": {
                "members": [{"name": witness.name, "vkey": witness.vkey(), "url": "https://w1.example/"}],
                "threshold": 1,
            },
            "regions": ["us", "row"],
            "registry": {
                "vkey": registry.vkey(),
                "root_expires": format_time(world.now + timedelta(days=365)),
            },
        }
    ).document
    bundle = sign_trust_root(document, board[0])
    return sign_trust_root(bundle, board[1])


CONTACT = {"email": "ana@example.com", "phone": "+1 555 0100", "email_verified": True}
PROFILE = {"handle": "ana", "display_name": "Ana", "full_name": "Ana Lopez", "birthdate": "1990-01-01"}


def postgres_config(folder: Path, control: str, log: str) -> Config:
    """The embedded deployment with its control database and its log on PostgreSQL."""
    text = default_config_text().replace("sqlite:///control.db", control).replace("sqlite:///log.db", log)
    folder.mkdir(parents=True, exist_ok=True)
    return parse_config(tomllib.loads(text), base=folder.resolve())


def clean_world(tmp_path: Path, *, config: Config | None = None) -> Scene:
    """A deployment that kept every promise (see the module docstring)."""
    world = World.open(tmp_path / "deployment", config=config)
    board = [Signer.generate(f"keys.example/board-{i}") for i in range(3)]
    witness = Cosigner.generate("witness.example-w1")
    bundle = _trust_root(world, board, witness)
    d = world.deployment
    d.governance.trust_roots.install(bundle, now=world.now)
    scene = Scene(world, board, witness, bundle)

    world.subject("u1", "us", {"contact": CONTACT, "profile": PROFILE})
    world.subject("u2", "us", {"contact": {"email": "bo@example.com", "phone": "+1 555 0101"}})
    world.clock.advance(minutes=1)

    # A single-subject grant (one approval), used.
    record = world.request(
        "operator:alice",
        collections={"contact"},
        fields={"contact.email", "contact.email_verified"},
        subjects=["u1"],
    )
    world.clock.advance(minutes=3)
    world.approve(record.request, "custodian:carol")
    scene.facts["single_grant"] = record.request.id
    world.clock.advance(minutes=1)
    gw = d.gateway
    gw.read(
        world.principal("operator:alice"),
        subject_id="u1",
        collection="contact",
        record_id="main",
        purpose="customer_support",
    )
    # A bulk grant needs two approvals.
    bulk = world.request("operator:olga", collections={"contact"}, fields={"contact.phone"}, bulk_limit=5)
    world.approve(bulk.request, "custodian:carol")
    world.clock.advance(minutes=10)
    world.approve(bulk.request, "custodian:dan")
    for subject in ("u1", "u2"):
        gw.read(
            world.principal("operator:olga"),
            subject_id=subject,
            collection="contact",
            record_id="main",
            purpose="customer_support",
            fields=["phone"],
        )
    # Denied: no grant; and a public read that needs none.
    try:
        gw.read(
            world.principal("operator:eve"),
            subject_id="u1",
            collection="contact",
            record_id="main",
            purpose="customer_support",
        )
    except Exception as exc:
        scene.facts["denied"] = type(exc).__name__
    gw.read(
        world.principal("operator:eve"),
        subject_id="u1",
        collection="profile",
        record_id="main",
        purpose="customer_support",
        fields=["handle"],
    )
    # Break-glass, reviewed in time by a custodian.
    scope = gw.scope(region="us", fields=["contact.postal_address"], subject_ids=["u1"])
    glass = gw.break_glass(
        world.principal("operator:eve"),
        scope=scope,
        purpose="customer_support",
        ticket="INC-7",
        duration=timedelta(minutes=30),
    )
    gw.read(
        world.principal("operator:eve"),
        subject_id="u1",
        collection="contact",
        record_id="main",
        purpose="customer_support",
        fields=["postal_address"],
    )
    world.clock.advance(hours=2)
    note = sign_review(
        world.signers["custodian:dan"],
        glass.request,
        reviewer="custodian:dan",
        verdict=ReviewVerdict.UPHELD,
        time=world.now,
    )
    d.access.record_review(glass.request.id, note, now=world.now)
    scene.facts["break_glass"] = glass.request.id
    # The board changes the policy set.
    board_member = type("Drafter", (), {"id": "board:m0", "org": "board"})()
    proposal = d.governance.proposals.draft(
        kind=ProposalKind.POLICY_SET,
        payload={"policies": DEFAULT_POLICIES + "\n// reviewed by the board\n"},
        drafter=board_member,
        now=world.now,
    )
    d.governance.proposals.sign(proposal.id, sign_proposal(proposal, board[:2]), now=world.now)
    d.governance.proposals.apply(proposal.id, now=world.now)
    scene.facts["policy_proposal"] = proposal.id
    # Excepted data leaves for its purpose.
    d.records.egress(
        Actor("operator:svc-ingest", "operator"),
        EgressRequest(
            region="us",
            collection="contact",
            fields=("email_verified",),
            purpose="customer_support",
            destination="interop-partners",
        ),
    )
    world.clock.advance(minutes=5)
    return scene


class Auditor:
    """An outside auditor: a mirror folder, the log's and the witness's keys."""

    def __init__(self, scene: Scene, state: Path) -> None:
        self.scene = scene
        self.state = state
        self.trust = LogTrust(
            origin=scene.world.deployment.log_signer.name,
            log=scene.world.deployment.log_signer.verifier(),
            witnesses=(scene.witness.verifier(),),
            threshold=1,
        )

    def sync(self) -> int:
        with Mirror(self.state, trust=self.trust, clock=self.scene.world.clock) as mirror:
            return mirror.sync(self.scene.source()).size

    def check(self, **kwargs: Any) -> ReplayResult:
        with Mirror(self.state, trust=self.trust, clock=self.scene.world.clock) as mirror:
            state = mirror.state
            assert state is not None
            return replay(mirror.entries(), checkpoint=state.note, mirror_threshold=1, **kwargs)


def digest_of(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
