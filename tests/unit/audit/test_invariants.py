"""Invariant replay over a real deployment's log, mirrored by a real auditor.

A clean history passes; then, for each invariant, a rogue operator with
database access appends entries of its own making through the log's own
recorder (or a real deployment simply misses a deadline), the auditor syncs
and replays, and the violation is named exactly, at its index.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from rempart.access import AccessRequest, ApprovalDecision, Scope, lifecycle, sign_approval
from rempart.access.model import Approval
from rempart.access.rules import AccessRules
from rempart.audit.invariants import INVARIANTS, Finding, decode_entry, replay
from rempart.audit.mirror import Mirror
from rempart.clock import format_time
from rempart.errors import InvalidInput
from rempart.events import Event, canonical_json
from rempart.governance import record_deployment, sign_proposal, sign_trust_root
from rempart.governance.trustroot import parse_signed_trust_root
from rempart.policy import DEFAULT_POLICIES
from rempart.store.records import Actor
from rempart.tlog.note import Signer
from tests.unit.audit.audit_world import Auditor, Scene, clean_world


@pytest.fixture
def scene(tmp_path: Path) -> Any:
    s = clean_world(tmp_path)
    yield s
    s.world.close()


def violations_from(result: Any, first: int) -> list[tuple[str, int | None, str]]:
    return [
        (f.invariant, f.index, f.message) for f in result.violations if f.index is None or f.index >= first
    ]


def test_a_clean_history_passes(scene: Scene, tmp_path: Path) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    size = auditor.sync()
    result = auditor.check()
    assert result.findings == ()
    assert result.ok
    assert result.entries == size == scene.world.deployment.log.size
    assert result.trust_source == "log"
    assert result.trust_root_version == 1
    assert result.checked["access-grant"] == 6  # 2 approvals + 4 allowed protected reads (1 break-glass)
    assert result.checked["break-glass-review"] == 1
    assert result.checked["governance-threshold"] == 4  # trust root, initial + proposed policy, applied
    assert result.checked["egress-exception"] == 1
    assert result.witness is not None
    assert result.witness.cosigned_by == ("witness.example-w1",)
    assert [row["invariant"] for row in result.summary()] == list(INVARIANTS)


def _decision(scene: Scene, **body: Any) -> dict[str, Any]:
    world = scene.world
    base: dict[str, Any] = {
        "principal": "operator:alice",
        "org": "operator",
        "action": "read",
        "region": "us",
        "collection": "contact",
        "record": "main",
        "subject": world.commitment("u1"),
        "purpose": "customer_support",
        "grant": None,
        "break_glass": False,
        "allowed": True,
        "fields": [
            {
                "name": "email",
                "category": "protected",
                "allowed": True,
                "policies": ["protected-with-active-grant"],
                "reasons": [],
            }
        ],
        "policy_version": world.deployment.policy_engine.policies.version,
    }
    base.update(body)
    return base


def _record_transition(scene: Scene, events: tuple[Event, ...]) -> list[int]:
    return [scene.recorder.record(e).index for e in events]


def forge_parent_read(scene: Scene) -> list[tuple[str, int | None, str]]:
    index = scene.record("access.decision", _decision(scene, principal="parent:bob", org="parent"))
    subject = scene.world.commitment("u1")[:12]
    return [
        (
            "access-grant",
            index,
            f"allowed protected read of contact.email (subject {subject}…) by parent:bob cites no grant",
        ),
        (
            "parent-protected",
            index,
            f"parent principal parent:bob was allowed to read protected field(s) contact.email of subject "
            f"{subject}…",
        ),
    ]


def _bulk_request(scene: Scene, requester: str = "operator:alice") -> AccessRequest:
    world = scene.world
    return AccessRequest(
        id="req_" + hashlib.sha256(requester.encode() + world.now.isoformat().encode()).hexdigest()[:16],
        requester=requester,
        requester_org="operator",
        scope=Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (), 10),
        purpose="customer_support",
        ticket="ROGUE-1",
        duration=timedelta(hours=1),
        created_at=world.now,
    )


def forge_one_approval_where_two_needed(scene: Scene) -> list[tuple[str, int | None, str]]:
    world = scene.world
    request = _bulk_request(scene)
    submitted = lifecycle.submit(request, rules=AccessRules(), now=world.now)  # bulk: 2 approvals required
    _record_transition(scene, submitted.events)
    note = sign_approval(
        world.signers["custodian:carol"],
        request,
        approver="custodian:carol",
        decision=ApprovalDecision.APPROVE,
        time=world.now,
    )
    approval = Approval(
        "custodian:carol", ApprovalDecision.APPROVE, world.now, world.now, note.decode(), True
    )
    # The rogue operator lowers the threshold of its copy of the record, and the lifecycle approves.
    approved = lifecycle.add_approval(
        replace(submitted.record, required_approvals=1), approval, rules=AccessRules(), now=world.now
    )
    indexes = _record_transition(scene, approved.events)
    read = scene.record("access.decision", _decision(scene, grant=request.id))
    subject = world.commitment("u1")[:12]
    problem = (
        "it was approved with 1 verified custodian approval(s) (custodian:carol) where its request needs 2"
    )
    return [
        ("access-grant", indexes[1], f"access request {request.id} was recorded as approved, but {problem}"),
        (
            "access-grant",
            read,
            f"allowed protected read of contact.email (subject {subject}…) by operator:alice under grant "
            f"{request.id}: {problem}",
        ),
    ]


def forge_approval_by_a_non_approver_key(scene: Scene) -> list[tuple[str, int | None, str]]:
    world = scene.world
    request = AccessRequest(
        id="req_00000000000000aa",
        requester="operator:alice",
        requester_org="operator",
        scope=Scope("us", frozenset({"contact"}), frozenset({"contact.email"}), (world.commitment("u1"),)),
        purpose="customer_support",
        ticket="ROGUE-2",
        duration=timedelta(hours=1),
        created_at=world.now,
    )
    submitted = lifecycle.submit(request, rules=AccessRules(), now=world.now)
    _record_transition(scene, submitted.events)
    rogue = Signer.generate("keys.example/custodian-carol")  # the right name, the operator's own key
    note = sign_approval(
        rogue, request, approver="custodian:carol", decision=ApprovalDecision.APPROVE, time=world.now
    )
    approval = Approval(
        "custodian:carol", ApprovalDecision.APPROVE, world.now, world.now, note.decode(), True
    )
    approved = lifecycle.add_approval(submitted.record, approval, rules=AccessRules(), now=world.now)
    indexes = _record_transition(scene, approved.events)
    read = scene.record("access.decision", _decision(scene, grant=request.id))
    carol = world.signers["custodian:carol"].verifier()
    why = (
        f"its signed note (by key {rogue.name}+{rogue.key_id:08x}, naming custodian:carol) does not verify "
        f"with custodian:carol's key in trust root version 1 ({carol.name}+{carol.key_id:08x})"
    )
    problem = "it was approved with 0 verified custodian approval(s) (none) where its request needs 1"
    subject = world.commitment("u1")[:12]
    return [
        (
            "access-grant",
            indexes[0],
            f"the approval of {request.id} by custodian:carol is recorded as counted, but {why}",
        ),
        ("access-grant", indexes[1], f"access request {request.id} was recorded as approved, but {problem}"),
        (
            "access-grant",
            read,
            f"allowed protected read of contact.email (subject {subject}…) by operator:alice under grant "
            f"{request.id}: {problem}",
        ),
    ]


def forge_read_outside_the_grant(scene: Scene) -> list[tuple[str, int | None, str]]:
    grant = scene.facts["single_grant"]
    expires = scene.world.deployment.grants.get(grant).expires_at
    assert expires is not None
    index = scene.record(
        "access.decision",
        _decision(
            scene,
            grant=grant,
            subject=scene.world.commitment("u2"),
            purpose="legal_request",
            fields=[
                {"name": "phone", "category": "protected", "allowed": True, "policies": [], "reasons": []}
            ],
        ),
    )
    subject = scene.world.commitment("u2")[:12]
    return [
        (
            "access-grant",
            index,
            f"allowed protected read of contact.phone (subject {subject}…) by operator:alice "
            f"under grant {grant}: field(s) contact.phone are not in its scope; "
            "it is for purpose customer_support, not legal_request; "
            f"it expired at {format_time(expires)}; subject {subject}… is not in its scope",
        ),
    ]


def forge_expired_grant_use(scene: Scene) -> list[tuple[str, int | None, str]]:
    grant = scene.facts["single_grant"]
    record = scene.world.deployment.grants.get(grant)
    scene.world.clock.advance(hours=3)
    index = scene.record("access.decision", _decision(scene, grant=grant))
    subject = scene.world.commitment("u1")[:12]
    return [
        (
            "access-grant",
            index,
            f"allowed protected read of contact.email (subject {subject}…) by operator:alice "
            f"under grant {grant}: "
            f"it expired at {format_time(record.expires_at)}",
        ),  # type: ignore[arg-type]
    ]


def forge_protected_egress(scene: Scene) -> list[tuple[str, int | None, str]]:
    index = scene.record(
        "egress.transfer",
        {
            "region": "us",
            "destination": "parent-analytics",
            "purpose": "interoperability",
            "collection": "contact",
            "fields": ["email"],
            "count": 2,
            "digest": "00" * 32,
            "bytes": 100,
            "exception": None,
            "requested_by": {"principal": "operator:eve", "org": "operator"},
        },
    )
    return [
        (
            "egress-exception",
            index,
            "protected field(s) contact.email left region us for parent-analytics (interoperability) "
            "with no exception",
        ),
    ]


def forge_policy_without_proposal(scene: Scene) -> list[tuple[str, int | None, str]]:
    text = DEFAULT_POLICIES + "\n// quietly changed\n"
    version = hashlib.sha256(text.encode()).hexdigest()
    index = scene.record(
        "policy.activated",
        {
            "version": version,
            "previous_version": scene.world.deployment.policy_engine.policies.version,
            "schema_digest": "00" * 32,
            "actor": "operator:eve",
            "reason": "hotfix",
            "policies": [],
            "text": text,
        },
    )
    return [
        (
            "governance-threshold",
            index,
            f"policy set {version[:16]}… was activated at entry {index} by 'operator:eve' ('hotfix'), "
            "not by an applied policy_set proposal",
        ),
    ]


def forge_proposal_applied_below_threshold(scene: Scene) -> list[tuple[str, int | None, str]]:
    d, world = scene.world.deployment, scene.world
    drafter = type("Drafter", (), {"id": "board:m1", "org": "board"})()
    proposal = d.governance.proposals.draft(
        kind="policy_set", payload={"policies": DEFAULT_POLICIES}, drafter=drafter, now=world.now
    )
    d.governance.proposals.sign(proposal.id, sign_proposal(proposal, scene.board[:1]), now=world.now)
    index = scene.record(
        "governance.proposal.applied",
        {
            "proposal": proposal.id,
            "kind": "policy_set",
            "proposal_sha256": proposal.digest,
            "signers": ["board:m0", "board:m1"],
            "threshold": 2,
            "trust_root_version": 1,
        },
    )
    return [
        (
            "governance-threshold",
            index,
            f"proposal {proposal.id} (policy_set) was applied with 1 valid board signature(s) of trust root "
            "version 1, whose board threshold is 2 (signed: board:m0)",
        ),
    ]


def miss_a_break_glass_review(scene: Scene) -> list[tuple[str, int | None, str]]:
    world, gw = scene.world, scene.world.deployment.gateway
    scope = gw.scope(region="us", fields=["contact.phone"], subject_ids=["u2"])
    glass = gw.break_glass(
        world.principal("operator:eve"),
        scope=scope,
        purpose="customer_support",
        ticket="INC-9",
        duration=timedelta(minutes=10),
    )
    opened = world.deployment.log.size - 1
    due = format_time(world.now + timedelta(hours=24))
    world.clock.advance(hours=25)
    gw.read(
        world.principal("operator:eve"),
        subject_id="u1",
        collection="profile",
        record_id="main",
        purpose="customer_support",
        fields=["handle"],
    )
    return [
        (
            "break-glass-review",
            opened,
            f"break-glass grant {glass.request.id} of operator:eve has no counted custodian review; "
            "it was due "
            f"by {due} (now {format_time(world.now)})",
        ),
    ]


def deploy_an_unapproved_release(scene: Scene) -> list[tuple[str, int | None, str]]:
    digest = "sha256:" + "ab" * 32
    index = record_deployment(
        scene.recorder, region="us", digest=digest, deployer="deployer:us-edge", now=scene.world.now
    ).index
    return [
        (
            "release-approved",
            index,
            f"deployer:us-edge deployed {digest} in us at {format_time(scene.world.now)}: "
            "no approved release of this digest in us",
        ),
    ]


def access_after_erasure(scene: Scene) -> list[tuple[str, int | None, str]]:
    world = scene.world
    commitment = world.commitment("u2")
    world.deployment.records.erase(Actor("operator:olga", "operator"), "u2", reason="GDPR-17")
    receipt = world.deployment.log.size - 1
    index = scene.record(
        "access.decision",
        _decision(
            scene,
            collection="profile",
            subject=commitment,
            principal="operator:eve",
            fields=[
                {
                    "name": "handle",
                    "category": "public",
                    "allowed": True,
                    "policies": ["public-for-all"],
                    "reasons": [],
                }
            ],
        ),
    )
    return [
        (
            "erasure",
            index,
            f"operator:eve was allowed to read profile.handle of subject {commitment[:12]}… after that "
            f"subject's erasure receipt (entry {receipt})",
        ),
    ]


def append_a_non_canonical_entry(scene: Scene) -> list[tuple[str, int | None, str]]:
    index = scene.world.deployment.log.append(
        b'{"v": 1, "type": "x.y", "time": "2026-05-04T09:00:00Z"}'
    ).index
    return [
        ("entry-format", index, f"entry {index} is not a valid log event: log entry is not in canonical form")
    ]


SCENARIOS: list[tuple[str, Callable[[Scene], list[tuple[str, int | None, str]]]]] = [
    ("parent principal allowed protected data", forge_parent_read),
    ("one approval where two were needed", forge_one_approval_where_two_needed),
    ("approval signed by a non-approver key", forge_approval_by_a_non_approver_key),
    ("read outside the grant's scope", forge_read_outside_the_grant),
    ("read under an expired grant", forge_expired_grant_use),
    ("protected egress without exception", forge_protected_egress),
    ("policy activation with no proposal", forge_policy_without_proposal),
    ("proposal applied below the board threshold", forge_proposal_applied_below_threshold),
    ("break-glass never reviewed", miss_a_break_glass_review),
    ("unapproved release deployed", deploy_an_unapproved_release),
    ("access after erasure", access_after_erasure),
    ("entry that is not canonical", append_a_non_canonical_entry),
]


@pytest.mark.parametrize(("name", "forge"), SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_each_violation_is_named_at_its_index(
    scene: Scene, tmp_path: Path, name: str, forge: Callable[[Scene], list[tuple[str, int | None, str]]]
) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    auditor.sync()
    assert auditor.check().ok
    first = scene.world.deployment.log.size
    expected = forge(scene)
    auditor.sync()
    result = auditor.check()
    assert violations_from(result, first) == sorted(
        expected, key=lambda v: (v[1] or -1, list(INVARIANTS).index(v[0]), v[2])
    )
    assert not result.ok
    assert [
        f for f in result.findings if f.index is not None and f.index < first and f.severity == "violation"
    ] == [] or name == "break-glass never reviewed"


def test_findings_name_the_related_entries(scene: Scene, tmp_path: Path) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    first = scene.world.deployment.log.size
    forge_one_approval_where_two_needed(scene)
    auditor.sync()
    read = auditor.check().violations[-1]
    assert read.index == scene.world.deployment.log.size - 1
    assert read.related == (first, first + 1, first + 2)  # submitted, approval, approved
    assert read.details["grant"].startswith("req_")
    assert read.to_json()["related"] == [first, first + 1, first + 2]


def test_an_auditors_trust_root_file_replaces_the_logs_chain(scene: Scene, tmp_path: Path) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    auditor.sync()
    chain = [scene.trust_root.signed_note]
    assert auditor.check(trust_chain=chain, trust_source="file t.json").trust_source == "file t.json"
    assert auditor.check(trust_chain=chain).ok
    other = Signer.generate("keys.example/board-x")

    root, _ = parse_signed_trust_root(scene.trust_root.signed_note)
    doc = json.loads(root.document)
    doc["board"]["members"][2]["vkey"] = other.vkey()
    mine = sign_trust_root(canonical_json(doc), scene.board[0])
    mine = sign_trust_root(mine, scene.board[1])
    result = auditor.check(trust_chain=[mine.signed_note])
    installed = [e.type for e in scene.world.events()].index("governance.trust_root.installed")
    assert [(f.invariant, f.index, f.message) for f in result.violations] == [
        (
            "governance-threshold",
            installed,
            f"trust root version 1 installed at entry {installed} differs from version 1 "
            "of the auditor's chain",
        ),
    ]


def test_below_the_witness_threshold_is_a_notice_only_for_a_lax_mirror(scene: Scene, tmp_path: Path) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    size = auditor.sync()
    with Mirror(tmp_path / "mirror", trust=auditor.trust, clock=scene.world.clock) as mirror:
        mirrored = list(mirror.entries())
    stored = scene.world.deployment.read_path.checkpoint()  # what the log signed, without the cosignature
    assert stored.size == size
    lax = replay(mirrored, checkpoint=stored.note, mirror_threshold=0)
    strict = replay(mirrored, checkpoint=stored.note, mirror_threshold=1)
    message = (
        f"the checkpoint of size {size} is cosigned by 0 of the 1 witnesses trust root version 1 requires"
    )
    assert [(f.invariant, f.severity, f.message) for f in lax.findings] == [
        (
            "checkpoint-witnessed",
            "notice",
            message + " (the mirror was synced with witness threshold 0: a split view is not excluded)",
        )
    ]
    assert lax.ok
    assert [(f.severity, f.message) for f in strict.findings] == [("violation", message)]
    assert not strict.ok


# -- decoding parity with Event.decode -----------------------------------------------------------

_GOOD = Event(
    "access.decision",
    datetime(2026, 5, 4, 9, tzinfo=UTC),
    {
        "principal": "p",
        "org": "operator",
        "action": "read",
        "region": "us",
        "collection": "c",
        "record": None,
        "subject": None,
        "purpose": "x",
        "grant": None,
        "break_glass": False,
        "allowed": False,
        "fields": [],
        "policy_version": None,
    },
).encode()

_FIELD = b'{"allowed":true,"category":"protected","name":"email","policies":["p"],"reasons":[]}'

DECODE_CASES = [
    ("canonical decision", _GOOD),
    ("decision with a field", _GOOD.replace(b'"fields":[]', b'"fields":[' + _FIELD + b"]")),
    (
        "decision with two fields",
        _GOOD.replace(b'"fields":[]', b'"fields":[' + _FIELD + b"," + _FIELD + b"]"),
    ),
    (
        "decision field keys unsorted",
        _GOOD.replace(
            b'"fields":[]',
            b'"fields":[{"name":"email","allowed":true,"category":"protected","policies":[],"reasons":[]}]',
        ),
    ),
    ("decision fields with a space", _GOOD.replace(b'"fields":[]', b'"fields":[' + _FIELD + b" ]")),
    ("canonical other event", b'{"n":1,"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    (
        "unicode and escapes",
        canonical_json(
            {"s": 'é\u2028\n"\\\x01', "time": "2026-05-04T09:00:00.000000Z", "type": "a.b", "v": 1}
        ),
    ),
    (
        "big integer",
        b'{"n":123456789012345678901234567890,"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}',
    ),
    ("spaces", _GOOD.replace(b'"v":1', b'"v": 1')),
    ("a float", b'{"n":1.5,"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("an exponent", b'{"n":1e5,"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("v true", b'{"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":true}'),
    ("v 2", b'{"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":2}'),
    ("short time", b'{"time":"2026-05-04T09:00:00Z","type":"a.b","v":1}'),
    ("year 999", b'{"time":"0999-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("month 13", b'{"time":"2026-13-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("bad type", b'{"time":"2026-05-04T09:00:00.000000Z","type":"NotDotted","v":1}'),
    ("unsorted keys", b'{"v":1,"time":"2026-05-04T09:00:00.000000Z","type":"a.b"}'),
    ("uppercase escape", b'{"s":"\\u001F","time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("escaped slash", b'{"s":"\\/","time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("duplicate key", b'{"n":1,"n":1,"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'),
    ("not json", b"\xff\xfe"),
    ("a list", b"[1]"),
    ("decision with an unknown field", _GOOD.replace(b'"grant":null', b'"grant":null,"zz":1')),
    ("decision with a float field", _GOOD.replace(b'"grant":null', b'"grant":1.5')),
]


@pytest.mark.parametrize(("name", "data"), DECODE_CASES, ids=[c[0] for c in DECODE_CASES])
def test_decode_entry_accepts_exactly_what_event_decode_accepts(name: str, data: bytes) -> None:
    try:
        event = Event.decode(data)
    except InvalidInput as exc:
        expected = exc.message
    else:
        expected = None
    if expected is not None:
        with pytest.raises(InvalidInput) as caught:
            decode_entry(data)
        assert caught.value.message == expected
        return
    kind, time, body = decode_entry(data)
    assert (kind, time) == (event.type, format_time(event.time))
    as_dict = (
        body
        if isinstance(body, dict)
        else {
            k: v
            for k, v in msgspec.json.decode(msgspec.json.encode(body)).items()
            if k not in ("type", "time", "v")
        }
    )
    assert as_dict == dict(event.body)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (b"[" + _FIELD.replace(b'"email"', b"1") + b"]", "Expected `str`, got `int` - at `$.fields[0].name`"),
        (
            b"[" + _FIELD + b"," + _FIELD.replace(b'"name"', b'"extra":1,"name"') + b"]",
            "Object contains unknown field `extra` - at `$.fields[1]`",
        ),
        (b"{}", "Expected `array`, got `object` - at `$.fields`"),
    ],
)
def test_a_decision_whose_field_verdicts_are_malformed_says_where(fields: bytes, problem: str) -> None:
    data = _GOOD.replace(b'"fields":[]', b'"fields":' + fields)
    Event.decode(data)  # a well-formed event: its body is what is wrong
    with pytest.raises(InvalidInput) as caught:
        decode_entry(data)
    assert caught.value.message == f"access.decision body is malformed: {problem}"
    assert replay([(0, data)]).violations[0].message == (
        f"entry 0 is not a valid log event: access.decision body is malformed: {problem}"
    )


def test_a_decision_body_missing_fields_is_an_entry_format_finding() -> None:
    entry = Event("access.decision", datetime(2026, 5, 4, tzinfo=UTC), {"principal": "p"}).encode()
    result = replay([(0, entry)])
    assert [(f.invariant, f.index) for f in result.violations] == [("entry-format", 0)]
    assert result.violations[0].message.startswith(
        "entry 0 is not a valid log event: access.decision body is malformed"
    )


def test_finding_json_round_trip() -> None:
    f = Finding("erasure", "violation", 3, "m", (1, 2), {"subject": "ab"})
    assert f.to_json() == {
        "invariant": "erasure",
        "severity": "violation",
        "index": 3,
        "related": [1, 2],
        "message": "m",
        "details": {"subject": "ab"},
    }


def test_a_time_sharing_the_previous_entrys_hour_or_second_is_still_checked_in_full() -> None:
    good = b'{"time":"2026-05-04T09:00:00.000000Z","type":"a.b","v":1}'
    assert decode_entry(good)[1] == "2026-05-04T09:00:00.000000Z"
    for bad in (
        b"09:61:00.000000Z",
        b"09:00:60.000000Z",
        b"09:00:00.00000aZ",
        b"09:0\xc2\xb2:00.000000Z",
        b"09:00:00.00000\xd9\xa3Z",  # an Arabic-Indic digit, in the second just checked
        b"09:00:00.000001z",
        b"09:00:00.0000001",
    ):
        data = good.replace(b"09:00:00.000000Z", bad)
        with pytest.raises(InvalidInput) as reference:
            Event.decode(data)
        with pytest.raises(InvalidInput) as caught:
            decode_entry(data)
        assert caught.value.message == reference.value.message


def test_entries_out_of_time_order_are_a_notice_only_beyond_a_minute() -> None:
    def entry(when: str) -> bytes:
        return b'{"time":"' + when.encode() + b'","type":"a.b","v":1}'

    result = replay(
        [
            (0, entry("2026-05-04T09:10:00.000000Z")),
            (1, entry("2026-05-04T09:09:30.000000Z")),  # 30 s earlier: concurrent writers
            (2, entry("2026-05-04T09:08:00.000000Z")),  # 2 min earlier: worth a look
        ]
    )
    assert result.ok
    assert [(f.severity, f.index, f.message) for f in result.findings] == [
        (
            "notice",
            2,
            "entry 2 (a.b) is dated 2026-05-04T09:08:00.000000Z, more than 60 s before an earlier "
            "entry (2026-05-04T09:10:00.000000Z)",
        ),
    ]
    assert result.last_time == "2026-05-04T09:10:00.000000Z"


def test_with_the_auditors_chain_a_skipped_version_is_named(scene: Scene, tmp_path: Path) -> None:
    auditor = Auditor(scene, tmp_path / "mirror")
    chain = [scene.trust_root.signed_note]
    index = scene.record(
        "governance.trust_root.installed",
        {
            "version": 3,
            "deployment": "x",
            "document_sha256": "00" * 32,
            "board_signers": [],
            "previous_board_signers": [],
            "proposal": None,
            "signed_note": scene.trust_root.signed_note.decode(),
        },
    )
    auditor.sync()
    assert [(f.invariant, f.index, f.message) for f in auditor.check(trust_chain=chain).violations] == [
        (
            "governance-threshold",
            index,
            f"trust root version 3 installed at entry {index} where version 2 was due",
        ),
    ]
    from_log = auditor.check().violations
    assert [(f.invariant, f.index) for f in from_log] == [("governance-threshold", index)]
    assert from_log[0].message.startswith(
        f"trust root version 3 installed at entry {index} does not verify against version 1: "
    )
