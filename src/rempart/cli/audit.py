"""``rempart audit …``: what an outside auditor runs against a log's public read path.

``sync`` mirrors and verifies the log incrementally (and notes, in
``<state>/sync-trust.json``, the keys and witness threshold it verified with);
``compare`` is the gossip check between two parties' checkpoints; ``check``
replays the mirror against the agreement's invariants (``check --sync`` syncs
first and replays as entries verify: the full audit in one pass); ``report`` writes the
regulator's HTML and JSON report with a proof per finding; ``subject-report``
writes one data subject's "who accessed my data" report with a proof per
line; ``verify-proof`` checks C2SP tlog-proof files offline.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rempart.audit.full import full_audit
from rempart.audit.invariants import ReplayResult, replay
from rempart.audit.mirror import LogTrust, Mirror, compare_checkpoints
from rempart.audit.report import write_report
from rempart.audit.subject_report import MirrorView, build_subject_report, verify_entry_proof, write_file
from rempart.cli._app import app, console, emit_json, inline_or_file
from rempart.clock import SystemClock, format_time, parse_time
from rempart.errors import InvalidInput, NotFound
from rempart.events import Event
from rempart.governance.rootstore import TrustRootBundle
from rempart.log.source import open_source
from rempart.tlog.cosignature import CosignatureVerifier
from rempart.tlog.note import Verifier

__all__ = ["audit_app"]

audit_app = typer.Typer(
    help="Outside verification of a log: mirror and verify, compare checkpoints, check the agreement's "
    "invariants, write reports and per-subject reports, verify proof files."
)
app.add_typer(audit_app, name="audit")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
VkeyOption = Annotated[str, typer.Option("--vkey", help="The log's verifier key, or @FILE.")]
OriginOption = Annotated[str | None, typer.Option(help="Expected origin (default: the log key's name).")]
WitnessOption = Annotated[
    list[str] | None,
    typer.Option("--witness", help="A witness's cosignature key (repeat for each), or @FILE."),
]
WitnessThresholdOption = Annotated[
    int | None,
    typer.Option(help="How many of the --witness keys must cosign (default: all of them).", min=0),
]


def _read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read the {what} {path}: {exc}") from exc


def _trust(
    vkey_text: str, witnesses: list[str] | None, threshold: int | None, origin: str | None
) -> LogTrust:
    log = Verifier.parse(inline_or_file(vkey_text, "log key"))
    keys = tuple(CosignatureVerifier.parse(inline_or_file(w, "witness key")) for w in witnesses or [])
    if threshold is None:
        threshold = len(keys)
    return LogTrust(origin=origin or log.name, log=log, witnesses=keys, threshold=threshold)


@audit_app.command("sync")
def sync(
    url: Annotated[str, typer.Argument(help="The log's read path: https://…/log/ or a directory of tiles.")],
    state: Annotated[
        Path, typer.Option(help="The mirror's folder (entries, right edge, checkpoint, evidence).")
    ],
    vkey_text: VkeyOption,
    witness: WitnessOption = None,
    witness_threshold: WitnessThresholdOption = None,
    origin: OriginOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Mirror the log incrementally and verify it: signatures, cosignatures, consistency, every new entry."""
    trust = _trust(vkey_text, witness, witness_threshold, origin)
    source = open_source(url)
    try:
        with Mirror(state, trust=trust, clock=SystemClock()) as mirror:
            report = mirror.sync(source)
    finally:
        source.close()
    _save_trust(state, trust)
    if json_out:
        emit_json(
            {
                "verified": True,
                "origin": report.origin,
                "size": report.size,
                "root": base64.b64encode(report.root).decode(),
                "previous_size": report.previous_size,
                "new_entries": report.new_entries,
                "cosigned_by": list(report.cosigned_by),
            }
        )
        return
    table = Table(title="log mirrored and verified", show_header=False)
    table.add_row("origin", report.origin)
    table.add_row("size", str(report.size))
    table.add_row("root", base64.b64encode(report.root).decode())
    table.add_row(
        "consistency",
        "first sync: state saved"
        if report.previous_size is None
        else f"consistent with the checkpoint of size {report.previous_size} verified before",
    )
    table.add_row("new entries", str(report.new_entries))
    table.add_row("cosigned by", ", ".join(report.cosigned_by) or "-")
    console.print(table)


@audit_app.command("compare")
def compare(
    first: Annotated[Path, typer.Argument(help="A signed checkpoint one party was served.")],
    second: Annotated[Path, typer.Argument(help="A signed checkpoint another party was served.")],
    vkey_text: VkeyOption,
    tiles: Annotated[
        str | None,
        typer.Option(help="The larger tree's read path (URL or directory), when the sizes differ."),
    ] = None,
    origin: OriginOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Gossip: check that two signed checkpoints of one log can both be true (no split view)."""
    trust = _trust(vkey_text, None, None, origin)
    source = None if tiles is None else open_source(tiles)
    try:
        result = compare_checkpoints(
            _read_file(first, "checkpoint"), _read_file(second, "checkpoint"), trust=trust, tiles=source
        )
    finally:
        if source is not None:
            source.close()
    if json_out:
        emit_json({"consistent": True, "older_size": result.older.size, "newer_size": result.newer.size})
    else:
        console.print(
            f"consistent: the checkpoint of size {result.older.size} is a prefix of the one of size "
            f"{result.newer.size}",
            highlight=False,
        )


# -- replay, reports, proofs ------------------------------------------------------------------------

SYNC_TRUST = "sync-trust.json"

StateOption = Annotated[Path, typer.Option(help="The mirror's folder (from rempart audit sync).")]
TrustRootOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--trust-root",
        help="Your own trust root chain: every version from 1 (signed notes or bundles), or the folder "
        "rempart trust-root export wrote. Default: the chain the log itself recorded.",
    ),
]
NowOption = Annotated[
    str | None, typer.Option(help="Judge deadlines (break-glass reviews) at this RFC 3339 time.")
]
OptionalVkey = Annotated[
    str | None,
    typer.Option("--vkey", help="The log's verifier key, or @FILE (default: the one the last sync used)."),
]


def _save_trust(state: Path, trust: LogTrust) -> None:
    """Note which keys and witness threshold the mirror was verified with (replay reports it)."""
    doc = {
        "origin": trust.origin,
        "vkey": trust.log.vkey(),
        "witnesses": [w.vkey() for w in trust.witnesses],
        "threshold": trust.threshold,
    }
    write_file(state / SYNC_TRUST, (json.dumps(doc, indent=2) + "\n").encode())


def _load_trust(state: Path, vkey_text: str | None) -> LogTrust:
    if vkey_text is not None:
        return _trust(vkey_text, None, None, None)
    path = state / SYNC_TRUST
    if not path.exists():
        raise NotFound(
            f"{state} holds no mirror synced by this version of rempart ({SYNC_TRUST} is missing); "
            "run rempart audit sync first, or give --vkey"
        )
    try:
        doc = json.loads(path.read_text())
        return _trust(doc["vkey"], doc["witnesses"], int(doc["threshold"]), doc["origin"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{path} is not what rempart audit sync writes: {exc}") from exc


def _version_of(path: Path) -> int:
    found = re.match(r"(\d+)", path.name)
    return int(found.group(1)) if found else 0


def _trust_chain(paths: list[Path] | None) -> tuple[list[bytes] | None, str]:
    """The auditor's own chain (and how to name it), or None to take the log's."""
    if not paths:
        return None, "log (verified from version 1)"
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted((p for p in path.iterdir() if p.is_file()), key=_version_of))
        else:
            files.append(path)
    chain = []
    for file in files:
        data = _read_file(file, "trust root")
        if data.lstrip().startswith(b"{"):
            data = TrustRootBundle.parse(data).signed_note
        chain.append(data)
    names = ", ".join(str(p) for p in paths)
    return chain, f"auditor's file ({names})"


def _now(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise InvalidInput(f"--now {value!r} is not an RFC 3339 time: {exc}") from exc


def _print_result(result: ReplayResult) -> None:
    console.print(
        f"replayed {result.entries} entries ({result.first_time} to {result.last_time}); "
        f"trust root version {result.trust_root_version} from the {result.trust_source}; "
        f"deadlines judged at {result.now}",
        highlight=False,
    )
    table = Table(title="invariants")
    for column in ("invariant", "checked", "violations", "notices"):
        table.add_column(column)
    for row in result.summary():
        table.add_row(row["invariant"], str(row["checked"]), str(row["violations"]), str(row["notices"]))
    console.print(table)
    if result.findings:
        findings = Table(title="findings")
        for column in ("entry", "invariant", "severity", "what", "related"):
            findings.add_column(column, overflow="fold")
        for f in result.findings:
            findings.add_row(
                "-" if f.index is None else str(f.index),
                f.invariant,
                f.severity,
                f.message,
                ", ".join(map(str, f.related)) or "-",
            )
        console.print(findings)
    verdict = "no violations" if result.ok else f"{len(result.violations)} violation(s)"
    console.print(f"{verdict}, {len(result.notices)} notice(s)", highlight=False)


@audit_app.command("check")
def check(
    state: StateOption,
    trust_root: TrustRootOption = None,
    now: NowOption = None,
    vkey_text: OptionalVkey = None,
    sync_from: Annotated[
        str | None,
        typer.Option(
            "--sync",
            help="First sync the mirror from this read path (URL or directory), replaying entries as they "
            "verify, in a second process: a full audit in one pass.",
        ),
    ] = None,
    witness: WitnessOption = None,
    witness_threshold: WitnessThresholdOption = None,
    origin: OriginOption = None,
    json_out: JsonFlag = False,
) -> None:
    """Replay every mirrored entry and check the agreement's invariants; exit 1 on any violation."""
    sync_keys = bool(witness) or witness_threshold is not None or origin is not None
    if sync_from is not None and vkey_text is not None:
        trust = _trust(vkey_text, witness, witness_threshold, origin)
    elif sync_keys:
        raise InvalidInput("--witness, --witness-threshold and --origin need --sync and --vkey")
    else:
        trust = _load_trust(state, vkey_text)
    chain, source_name = _trust_chain(trust_root)
    with Mirror(state, trust=trust, clock=SystemClock()) as mirror:
        if sync_from is not None:
            source = open_source(sync_from)
            try:
                audit = full_audit(mirror, source, trust_chain=chain, trust_source=source_name, now=_now(now))
            finally:
                source.close()
            _save_trust(state, trust)
            result = audit.replay
            if not json_out:
                console.print(
                    f"synced: size {audit.sync.size}, {audit.sync.new_entries} new entries, "
                    f"root {base64.b64encode(audit.sync.root).decode()}",
                    highlight=False,
                )
        else:
            mirrored = mirror.state
            if mirrored is None:
                raise NotFound(f"the mirror in {state} was never synced; run rempart audit sync first")
            result = replay(
                mirror.entries(),
                trust_chain=chain,
                trust_source=source_name,
                now=_now(now),
                checkpoint=mirrored.note,
                mirror_threshold=trust.threshold,
            )
    if json_out:
        emit_json(result.to_json())
    else:
        _print_result(result)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("report")
def report(
    state: StateOption,
    out: Annotated[Path, typer.Option(help="Folder for report.html, report.json and proofs/.")],
    trust_root: TrustRootOption = None,
    now: NowOption = None,
    vkey_text: OptionalVkey = None,
    json_out: JsonFlag = False,
) -> None:
    """Write the regulator's report (HTML with charts, the same facts in JSON, a proof per finding)."""
    trust = _load_trust(state, vkey_text)
    chain, source_name = _trust_chain(trust_root)
    with Mirror(state, trust=trust, clock=SystemClock()) as mirror:
        files = write_report(
            MirrorView(mirror),
            out,
            generated=SystemClock().now(),
            trust_chain=chain,
            trust_source=source_name,
            now=_now(now),
            mirror_threshold=trust.threshold,
        )
    result = files.result
    if json_out:
        emit_json(
            {
                "ok": result.ok,
                "violations": len(result.violations),
                "notices": len(result.notices),
                "html": str(files.html),
                "json": str(files.json),
                "proofs": [str(p) for p in files.proofs],
            }
        )
        return
    console.print(
        f"wrote {files.html} and {files.json} ({len(files.proofs)} proof file(s)): "
        + ("no violations" if result.ok else f"{len(result.violations)} violation(s)"),
        highlight=False,
    )


def _key_bytes(value: str) -> bytes:
    text = inline_or_file(value, "commitment key")
    try:
        return bytes.fromhex(text)
    except ValueError:
        try:
            return base64.b64decode(text, validate=True)
        except ValueError as exc:
            raise InvalidInput("the commitment key is hex or base64") from exc


@audit_app.command("subject-report")
def subject_report(
    state: StateOption,
    subject: Annotated[str, typer.Option(help="The subject's id.")],
    key: Annotated[str, typer.Option(help="The subject's commitment key (hex or base64), or @FILE.")],
    out: Annotated[Path, typer.Option(help="Folder for subject-report.html/.json, proofs/, entries/.")],
    vkey_text: OptionalVkey = None,
    json_out: JsonFlag = False,
) -> None:
    """Who accessed my data: every entry about one subject, each with a proof file checkable offline."""
    trust = _load_trust(state, vkey_text)
    with Mirror(state, trust=trust, clock=SystemClock()) as mirror:
        bundle = build_subject_report(mirror, _key_bytes(key), subject)
    bundle.write(out)
    if json_out:
        emit_json(bundle.to_json())
        return
    table = Table(title=f"entries about subject {bundle.report.commitment[:16]}…")
    for column in ("entry", "time", "what", "org", "who", "purpose", "decision", "fields"):
        table.add_column(column, overflow="fold")
    for line in bundle.report.entries:
        table.add_row(
            str(line.index),
            line.time,
            line.kind,
            line.org or "-",
            line.principal or "-",
            line.purpose or "-",
            line.decision or "-",
            ", ".join(line.fields_allowed) or "-",
        )
    console.print(table)
    console.print(
        f"{len(bundle.report.accesses)} access decision(s); report and {len(bundle.proofs)} proof file(s) "
        f"in {out}",
        highlight=False,
    )


@audit_app.command("verify-proof")
def verify_proof(
    files: Annotated[list[Path], typer.Argument(help="C2SP tlog-proof files.")],
    vkey_text: VkeyOption,
    witness: WitnessOption = None,
    witness_threshold: WitnessThresholdOption = None,
    origin: OriginOption = None,
    entry: Annotated[
        Path | None, typer.Option(help="The entry's bytes (default: the proof file's extra line).")
    ] = None,
    json_out: JsonFlag = False,
) -> None:
    """Check proof files offline: each entry is in the log at a checkpoint signed and witnessed enough."""
    if entry is not None and len(files) != 1:
        raise InvalidInput("--entry goes with exactly one proof file")
    trust = _trust(vkey_text, witness, witness_threshold, origin)
    checked: list[dict[str, Any]] = []
    for path in files:
        verified, data = verify_entry_proof(
            _read_file(path, "proof file"),
            origin=trust.origin,
            log=trust.log,
            witnesses=trust.witnesses,
            threshold=trust.threshold,
            entry=None if entry is None else _read_file(entry, "entry"),
        )
        try:
            event = Event.decode(data)
            what = f"{event.type} of {format_time(event.time)}"
        except InvalidInput as exc:
            what = f"an entry that is not a valid event ({exc.message})"
        checked.append(
            {
                "file": str(path),
                "index": verified.index,
                "tree_size": verified.checkpoint.size,
                "cosigned_by": [c.name for c in verified.cosignatures],
                "entry": what,
            }
        )
    if json_out:
        emit_json({"verified": True, "proofs": checked})
        return
    for c in checked:
        cosigned = ", ".join(c["cosigned_by"]) or "no witness"
        console.print(
            f"{c['file']}: entry {c['index']} ({c['entry']}) is in the log of size {c['tree_size']} "
            f"(cosigned by {cosigned})",
            highlight=False,
        )
