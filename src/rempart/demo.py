"""The demo deployment, and the story of the agreement told against it.

:func:`seed_demo` turns a freshly opened deployment into a small realistic
one: regions ``us`` and ``row`` (from the configuration), principals of every
org (operator admin, support, engineer and services; a parent-company
engineer; custodian approvers and a release reviewer; board members; an
auditor), a trust root version 1 signed by two of the three board members,
subjects in both regions with records written through the gateway, and a
token per principal. Private keys are written as key files (mode 0600) under
``<data>/demo/keys``; the tokens under ``<data>/demo/tokens.json`` (0600), so
``make run`` can show them again and ``rempart demo`` can act as each
principal. Seeding twice changes nothing but re-issuing tokens that stopped
working.

:func:`tell_story` runs the story through the SDK (remote or embedded, the
same calls): data lands in its region; a support employee asks for access;
a custodian approves with their key file; the employee reads exactly the
approved fields; a parent-company employee is denied; a transfer of
protected data is refused; the log's checkpoint is verified offline.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from rempart.access import Principal
from rempart.client import Embedded, _Operations
from rempart.config import Config
from rempart.db import Database
from rempart.deployment import Deployment
from rempart.errors import PermissionDenied, RempartError, Unauthenticated
from rempart.governance import TrustRootBundle, sign_trust_root
from rempart.governance.trustroot import example_document
from rempart.keyfiles import read_secret_file, write_secret_file
from rempart.log.export import export_tiles
from rempart.log.source import DirectorySource, HttpSource, TileSource
from rempart.log.verifier import verify_log
from rempart.store.catalog import Catalog, Category
from rempart.store.records import Actor
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import leaf_hash, verify_inclusion
from rempart.tlog.note import Note, Signer, Verifier
from rempart.tlog.tiles import TILE_WIDTH, TilePath, decode_entry_bundle

__all__ = [
    "DEMO_PEOPLE",
    "DEMO_SUBJECTS",
    "DemoFiles",
    "DemoPerson",
    "seed_demo",
    "tell_story",
]

TOKEN_LIFETIME: Final = timedelta(days=30)
SEED_ACTOR: Final = "system:demo-seed"


@dataclass(frozen=True, slots=True)
class DemoPerson:
    id: str
    display_name: str
    org: str
    location: str
    roles: frozenset[str]
    purposes: frozenset[str] = frozenset()
    signs: bool = False
    """Holds a note signing key (approvers, reviewers, board members)."""
    what: str = ""


def _p(
    pid: str,
    name: str,
    org: str,
    loc: str,
    roles: set[str],
    purposes: set[str] | None = None,
    *,
    signs: bool = False,
    what: str = "",
) -> DemoPerson:
    return DemoPerson(pid, name, org, loc, frozenset(roles), frozenset(purposes or ()), signs, what)


DEMO_PEOPLE: Final = (
    _p("operator:admin", "Ada Admin", "operator", "US", {"admin"}, what="manages principals and tokens"),
    _p("operator:alice", "Alice Support", "operator", "US", {"support"}, what="support employee"),
    _p("operator:eve", "Eve Engineer", "operator", "US", {"engineer"}, what="operator engineer"),
    _p(
        "operator:svc-ingest",
        "Ingest service",
        "operator",
        "US",
        {"service"},
        {"customer_support", "service_debugging", "interoperability", "business_metrics"},
        what="writes records as users sign up",
    ),
    _p(
        "operator:svc-metrics",
        "Metrics export service",
        "operator",
        "US",
        {"service"},
        {"business_metrics"},
        what="exports aggregated metrics",
    ),
    _p(
        "parent:bob",
        "Bob Parent",
        "parent",
        "CN",
        {"engineer", "support"},
        {"interoperability"},
        what="engineer of the foreign parent",
    ),
    _p(
        "custodian:carol",
        "Carol Custodian",
        "custodian",
        "US",
        {"approver"},
        signs=True,
        what="custodian approver",
    ),
    _p(
        "custodian:dan",
        "Dan Custodian",
        "custodian",
        "US",
        {"approver"},
        signs=True,
        what="custodian approver",
    ),
    _p(
        "custodian:rita",
        "Rita Reviewer",
        "custodian",
        "US",
        {"reviewer"},
        signs=True,
        what="custodian release reviewer",
    ),
    _p("board:grace", "Grace Board", "board", "US", {"member"}, signs=True, what="board member"),
    _p("board:heidi", "Heidi Board", "board", "US", {"member"}, signs=True, what="board member"),
    _p("board:ivan", "Ivan Board", "board", "US", {"member"}, signs=True, what="board member"),
    _p("auditor:judy", "Judy Auditor", "auditor", "US", {"auditor"}, what="external auditor"),
)

DEMO_SUBJECTS: Final[Mapping[str, tuple[str, Mapping[str, Mapping[str, Any]]]]] = {
    "us-0001": (
        "us",
        {
            "profile": {
                "handle": "@mia.dances",
                "display_name": "Mia",
                "bio": "choreo every friday",
                "full_name": "Mia Thompson",
                "birthdate": "2001-04-17",
                "language": "en-US",
                "account_created": "2021-06-02",
            },
            "contact": {
                "email": "mia.thompson@example.com",
                "phone": "+1 512 555 0142",
                "postal_address": "1201 Lavaca St, Austin, TX 78701",
                "email_verified": True,
            },
            "device": {
                "device_id": "ios-6F2C91",
                "ip_address": "203.0.113.24",
                "os_name": "iOS",
                "os_version": "17.4",
                "app_version": "34.2.1",
                "device_model": "iPhone 14",
            },
            "location": {"city": "Austin", "country": "US", "timezone": "America/Chicago"},
        },
    ),
    "us-0002": (
        "us",
        {
            "profile": {
                "handle": "@grillmaster_joe",
                "display_name": "Joe",
                "full_name": "Joseph Alvarez",
                "birthdate": "1987-11-03",
                "language": "en-US",
                "account_created": "2020-01-19",
            },
            "contact": {
                "email": "joe.alvarez@example.net",
                "phone": "+1 305 555 0199",
                "email_verified": False,
            },
            "location": {"city": "Miami", "country": "US", "timezone": "America/New_York"},
        },
    ),
    "us-0003": (
        "us",
        {
            "profile": {
                "handle": "@lena_paints",
                "display_name": "Lena",
                "full_name": "Lena Park",
                "birthdate": "1995-08-22",
                "language": "ko-KR",
                "account_created": "2022-03-11",
            },
            "contact": {"email": "lena.park@example.org", "email_verified": True},
        },
    ),
    "row-0001": (
        "row",
        {
            "profile": {
                "handle": "@klaus.kocht",
                "display_name": "Klaus",
                "full_name": "Klaus Becker",
                "birthdate": "1979-02-09",
                "language": "de-DE",
                "account_created": "2019-09-30",
            },
            "contact": {
                "email": "klaus.becker@example.de",
                "phone": "+49 30 5550 1234",
                "email_verified": True,
            },
            "location": {"city": "Berlin", "country": "DE", "timezone": "Europe/Berlin"},
        },
    ),
    "row-0002": (
        "row",
        {
            "profile": {
                "handle": "@ana.viaja",
                "display_name": "Ana",
                "full_name": "Ana Souza",
                "birthdate": "1998-12-01",
                "language": "pt-BR",
                "account_created": "2023-02-14",
            },
            "contact": {"email": "ana.souza@example.com.br", "email_verified": True},
        },
    ),
}


@dataclass(frozen=True, slots=True)
class DemoFiles:
    """Where the demo keeps its secrets and public keys in the data folder."""

    data_dir: Path

    @property
    def folder(self) -> Path:
        return self.data_dir / "demo"

    @property
    def tokens(self) -> Path:
        return self.folder / "tokens.json"

    @property
    def log_vkey(self) -> Path:
        return self.folder / "log.vkey"

    def key(self, principal_id: str) -> Path:
        return self.folder / "keys" / f"{principal_id.replace(':', '-')}.key"

    def signer(self, principal_id: str) -> Signer:
        return Signer.parse(read_secret_file(self.key(principal_id)).decode("utf-8").strip())

    def read_tokens(self) -> dict[str, str]:
        if not self.tokens.exists():
            raise Unauthenticated(
                f"no demo tokens in {self.tokens}; create the demo with: rempart init --demo "
                f"--data-dir {self.data_dir}"
            )
        data: dict[str, str] = json.loads(read_secret_file(self.tokens))
        return data


def _signer(path: Path, name: str) -> Signer:
    """The signing key kept at ``path``, made (named ``name``) on first use."""
    if path.exists():
        return Signer.parse(read_secret_file(path).decode("utf-8").strip())
    signer = Signer.generate(name)
    write_secret_file(path, (signer.skey() + "\n").encode())
    return signer


def _ingest_purpose(
    catalog: Catalog, collection: str, fields: Mapping[str, Any], allowed: frozenset[str]
) -> str:
    """A purpose the ingest service may write every one of these fields for (excepted fields list theirs)."""
    spec = catalog.collection(collection)
    for purpose in sorted(allowed):
        if all(
            spec.fields[name].category is not Category.EXCEPTED or purpose in spec.fields[name].purposes
            for name in fields
        ):
            return purpose
    raise RempartError(f"no purpose of the ingest service covers every field of {collection}")


def _install_trust_root(d: Deployment, signers: Mapping[str, Signer], files: DemoFiles) -> None:
    if d.governance.trust_roots.current_or_none() is not None:
        return
    registry = _signer(files.key("registry"), "registry." + d.config.log.origin.split("/")[0])
    document = example_document(
        board=[signers["board:grace"], signers["board:heidi"], signers["board:ivan"]],
        threshold=2,
        deployment=d.config.name,
        issued=d.clock.now(),
        approvers=[signers["custodian:carol"], signers["custodian:dan"]],
        reviewers=[signers["custodian:rita"]],
        regions=tuple(sorted(d.config.regions)),
        log=d.log_signer,
        registry=registry,
    )
    bundle: TrustRootBundle | bytes = document
    for member in ("board:grace", "board:heidi"):
        bundle = sign_trust_root(bundle, signers[member])
    assert isinstance(bundle, TrustRootBundle)  # noqa: S101 - two signatures were just added
    d.governance.trust_roots.install(bundle, now=d.clock.now())


def seed_demo(d: Deployment, data_dir: Path) -> dict[str, str]:
    """Make ``d`` the demo deployment (idempotent); returns every demo principal's token."""
    files = DemoFiles(Path(data_dir))
    signers: dict[str, Signer] = {}
    for person in DEMO_PEOPLE:
        signer = _signer(files.key(person.id), person.id) if person.signs else None
        if signer is not None:
            signers[person.id] = signer
        if d.principals.find(person.id) is None:
            d.principals.create(
                Principal.build(
                    id=person.id,
                    display_name=person.display_name,
                    org=person.org,
                    location=person.location,
                    screening="cleared",
                    roles=person.roles,
                    purposes=person.purposes,
                    vkey=None if signer is None else signer.vkey(),
                ),
                actor=SEED_ACTOR,
            )
    _install_trust_root(d, signers, files)
    if not files.log_vkey.exists():
        files.log_vkey.parent.mkdir(parents=True, exist_ok=True)
        files.log_vkey.write_text(d.log_signer.vkey() + "\n")

    ingest = d.principals.get("operator:svc-ingest")
    for subject_id, (region, records) in DEMO_SUBJECTS.items():
        if d.records.directory.find(subject_id) is not None:
            continue
        d.records.create_subject(Actor(ingest.id, ingest.org), subject_id, region)
        for collection, values in records.items():
            purpose = _ingest_purpose(d.records.catalog, collection, values, ingest.purposes)
            d.gateway.write(
                ingest,
                subject_id=subject_id,
                collection=collection,
                record_id="main",
                values=values,
                purpose=purpose,
            )

    tokens: dict[str, str] = {}
    if files.tokens.exists():
        tokens = files.read_tokens()
    now = d.clock.now()
    changed = False
    for person in DEMO_PEOPLE:
        token = tokens.get(person.id)
        if token is not None:
            try:
                d.tokens.authenticate(token, now)
                continue
            except Unauthenticated:
                pass
        tokens[person.id] = d.tokens.issue(person.id, expires_at=now + TOKEN_LIFETIME, label="demo").token
        changed = True
    if changed:
        write_secret_file(files.tokens, (json.dumps(tokens, indent=2) + "\n").encode(), overwrite=True)
    return tokens


# -- the story -----------------------------------------------------------------------------------


Say = Callable[[str], None]


def _count_rows(url: str, subject_id: str) -> tuple[int, int]:
    """(wrapped key rows, record rows) a region's database holds for this subject, read directly."""
    db = Database.open(url)
    try:
        keys = db.query_one("SELECT count(*) FROM store_subject_keys WHERE subject_id = ?", (subject_id,))
        records = db.query_one("SELECT count(*) FROM store_records WHERE subject_id = ?", (subject_id,))
    finally:
        db.close()
    return int(keys[0]) if keys else 0, int(records[0]) if records else 0


def _refusal(exc: RempartError) -> str:
    reasons = exc.details.get("reasons")
    if isinstance(reasons, list) and reasons:
        return "; ".join(str(r) for r in reasons)
    return exc.message


def tell_story(
    as_principal: Callable[[str], _Operations],
    *,
    config: Config,
    data_dir: Path,
    say: Say,
    server: str | None = None,
    subject: str = "us-0001",
) -> dict[str, Any]:
    """Tell the agreement's story step by step; returns the facts each step established (for tests)."""
    files = DemoFiles(Path(data_dir))
    facts: dict[str, Any] = {}
    alice = as_principal("operator:alice")
    carol = as_principal("custodian:carol")
    bob = as_principal("parent:bob")
    metrics = as_principal("operator:svc-metrics")

    say("[bold]1. Data lands in its home region[/]")
    home = alice.get_subject(subject)
    say(f"   subject {subject} lives in region [bold]{home.region}[/] (directory entry, no personal data)")
    counts = {name: _count_rows(region.store, subject) for name, region in sorted(config.regions.items())}
    for name, (keys, records) in counts.items():
        say(f"   {name} database, read directly: {keys} wrapped key row(s), {records} encrypted record(s)")
    facts["rows"] = counts
    others = [n for n in counts if n != home.region]
    say(f"   why: records are written only to the home region; {', '.join(others)} never held them")

    say("\n[bold]2. A support employee asks for access[/]")
    try:
        alice.get_record(subject, "contact", "main", purpose="customer_support")
    except PermissionDenied as exc:
        say(f"   without a grant, alice's read is refused: {_refusal(exc)}")
        facts["before_grant"] = exc.code
    request = alice.request_access(
        region=home.region,
        fields=["contact.email", "profile.full_name"],
        subjects=[subject],
        purpose="customer_support",
        ticket="SUP-4821",
        duration_seconds=3600,
    )
    say(
        f"   alice files {request.id}: contact.email and profile.full_name of {subject}, "
        f"purpose customer_support, ticket SUP-4821, 1 hour"
    )
    say(f"   state: {request.state}; it needs {request.record.required_approvals} custodian approval(s)")
    facts["request"] = request.id

    say("\n[bold]3. A custodian approves, signing with her own key[/]")
    approved = carol.approve(request.id, files.signer("custodian:carol"))
    approval = approved.record.approvals[-1]
    say(
        f"   carol signs the exact request (digest {approved.record.request.digest()[:16]}…) with "
        f"{files.key('custodian:carol').name}; the server holds no approver key"
    )
    say(f"   the signed note verifies with carol's key from the trust root: counted={approval.counted}")
    say(f"   state: {approved.state}")
    facts["approved_state"] = approved.state

    say("\n[bold]4. The employee reads exactly the approved fields[/]")
    record = alice.get_record(subject, "contact", "main", purpose="customer_support")
    say(f"   fields returned: {json.dumps(dict(record.fields), ensure_ascii=False)}")
    say(f"   masked (not in the grant): {', '.join(record.masked) or 'none'}")
    say(f"   the decision was in the log (entry {record.log_index}) before the data left the store")
    facts["read"] = {
        "fields": sorted(record.fields),
        "masked": sorted(record.masked),
        "log_index": record.log_index,
    }

    say("\n[bold]5. A parent-company employee tries, and is denied[/]")
    try:
        bob.get_record(subject, "contact", "main", purpose="customer_support")
        facts["parent"] = "allowed"
    except PermissionDenied as exc:
        say(f"   bob's read is refused: {_refusal(exc)}")
        say(f"   the refusal itself is in the log (entry {exc.details.get('log_index')})")
        facts["parent"] = exc.code
    try:
        bob.request_access(
            region=home.region,
            fields=["contact.email"],
            subjects=[subject],
            purpose="customer_support",
            ticket="SUP-4822",
            duration_seconds=600,
        )
    except PermissionDenied as exc:
        say(f"   and he cannot even ask: {exc.message}")

    say("\n[bold]6. A transfer of protected data out of the region is refused[/]")
    try:
        metrics.egress(
            region=home.region,
            collection="contact",
            fields=["email"],
            purpose="business_metrics",
            destination="parent-analytics",
        )
        facts["egress_protected"] = "allowed"
    except PermissionDenied as exc:
        say(f"   contact.email to parent-analytics: refused: {_refusal(exc)}")
        facts["egress_protected"] = exc.code
    allowed = metrics.egress(
        region=home.region,
        collection="profile",
        fields=["account_created"],
        purpose="business_metrics",
        destination="parent-analytics",
    )
    say(
        f"   profile.account_created (excepted, listed for business_metrics) may leave: {allowed.count} "
        f"record(s), sha256 {allowed.digest[:16]}…, recorded at entry {allowed.log_index}"
    )
    facts["egress_excepted"] = allowed.count

    say("\n[bold]7. Anyone verifies the log offline[/]")
    vkey = files.log_vkey.read_text().strip()
    verifier = Verifier.parse(vkey)
    wanted = record.log_index + 1
    deadline = time.monotonic() + 10
    cp = Checkpoint.parse(Note.parse(alice.checkpoint()).text)
    while cp.size < wanted and time.monotonic() < deadline:
        time.sleep(0.2)
        cp = Checkpoint.parse(Note.parse(alice.checkpoint()).text)
    with tempfile.TemporaryDirectory(prefix="rempart-demo-") as tmp:
        source: TileSource
        if server is not None:
            source = HttpSource(server.rstrip("/") + "/log/")
        else:
            assert isinstance(alice, Embedded)  # noqa: S101 - no server means embedded
            export_tiles(alice.deployment.read_path, Path(tmp))
            source = DirectorySource(Path(tmp))
        try:
            report = verify_log(source, verifier, origin=config.log.origin)
        finally:
            source.close()
    say(
        f"   checkpoint of {report.size} entries: signature by {verifier.name} verifies, and every entry "
        f"hashes up to its root"
    )
    proof = alice.inclusion_proof(record.log_index, report.size)
    entry = _entry(alice, record.log_index)
    verify_inclusion(leaf_hash(entry), record.log_index, report.size, list(proof.hashes), report.root)
    say(
        f"   alice's read (entry {record.log_index}) is in that tree: an inclusion proof of "
        f"{len(proof.hashes)} hashes verifies"
    )
    say(f"   the entry names no subject in clear: {json.loads(entry)['subject'][:16]}… is a keyed commitment")
    facts["verified_size"] = report.size
    return facts


def _entry(api: _Operations, index: int) -> bytes:
    """One log entry, from the entry bundle that holds it (as any tlog-tiles client reads it)."""
    size = Checkpoint.parse(Note.parse(api.checkpoint()).text).size
    tile_index, offset = divmod(index, TILE_WIDTH)
    width = min(TILE_WIDTH, size - tile_index * TILE_WIDTH)
    bundle = api.log_resource(TilePath(None, tile_index, width).path())
    return decode_entry_bundle(bundle, width)[offset]
