"""``rempart access …``: request, approve/deny (signed with your key file), list, show, withdraw,
revoke, break-glass, review."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from rempart.cli._app import app, console, emit_json
from rempart.cli._connect import (
    DEFAULT_DATA_DIR,
    As,
    ConfigFile,
    DataDir,
    Json,
    Server,
    Token,
    connect,
    load_signer,
    show,
)
from rempart.client import AccessRequestInfo
from rempart.config import parse_duration
from rempart.errors import InvalidInput

__all__ = ["access_app"]

access_app = typer.Typer(help="Access requests: just-in-time, approved by custodian signatures.")
app.add_typer(access_app, name="access")

Fields = Annotated[list[str], typer.Option("--field", help="collection.field (repeat).")]
Subjects = Annotated[list[str] | None, typer.Option("--subject", help="A subject id (repeat).")]
KeyFile = Annotated[
    Path, typer.Option("--key", help="Your note signing key file (mode 0600); never printed.")
]
RequestId = Annotated[str, typer.Argument(help="req_…")]


def _summary(info: AccessRequestInfo) -> dict[str, Any]:
    r = info.record
    scope = r.request.scope
    return {
        "id": info.id,
        "requester": r.request.requester,
        "state": info.current_state,
        "purpose": r.request.purpose,
        "ticket": r.request.ticket,
        "region": scope.region,
        "fields": sorted(scope.fields),
        "subjects": len(scope.subjects) if scope.bulk_limit is None else f"bulk ≤ {scope.bulk_limit}",
        "approvals": f"{len(r.counted_approvers)}/{r.required_approvals}",
        "break_glass": r.request.break_glass,
    }


def _full(info: AccessRequestInfo) -> dict[str, Any]:
    body = info.record.to_json()
    return {"id": info.id, "current_state": info.current_state, **body}


def _print(info: AccessRequestInfo, json_out: bool, title: str) -> None:
    if json_out:
        emit_json(_full(info))
        return
    show(_summary(info), False, title=title)
    for a in info.record.approvals:
        why = "" if a.counted else f" — not counted: {'; '.join(a.reasons)}"
        console.print(
            f"  {a.decision.value} by {a.approver} at {a.signed_at:%Y-%m-%d %H:%M:%S}Z{why}", highlight=False
        )


def _seconds(duration: str) -> int:
    try:
        return int(parse_duration(duration).total_seconds())
    except ValueError as exc:
        raise InvalidInput(f"--duration: {exc}") from exc


@access_app.command("request")
def request(
    region: Annotated[str, typer.Option(help="The one region the request covers.")],
    field: Fields,
    purpose: Annotated[str, typer.Option(help="A purpose code, e.g. customer_support.")],
    ticket: Annotated[str, typer.Option(help="Your ticket reference, e.g. SUP-1234.")],
    duration: Annotated[str, typer.Option(help="How long, e.g. 30m, 2h.")] = "1h",
    subject: Subjects = None,
    bulk_limit: Annotated[
        int | None, typer.Option(help="Up to this many subjects instead of a list.")
    ] = None,
    start_at: Annotated[str | None, typer.Option(help="RFC 3339 start time (default: at approval).")] = None,
    first_use: Annotated[bool, typer.Option("--first-use", help="Start the clock at first use.")] = False,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """File a request for custodian approval."""
    with connect(server, token, data_dir, acting, config) as api:
        info = api.request_access(
            region=region,
            fields=field,
            purpose=purpose,
            ticket=ticket,
            duration_seconds=_seconds(duration),
            subjects=subject or [],
            bulk_limit=bulk_limit,
            start_at=start_at,
            clock_mode="at_first_use" if first_use else "at_approval",
        )
    _print(info, json_out, f"filed {info.id}")


@access_app.command("break-glass")
def break_glass(
    region: Annotated[str, typer.Option()],
    field: Fields,
    purpose: Annotated[str, typer.Option()],
    ticket: Annotated[str, typer.Option(help="The incident reference.")],
    duration: Annotated[str, typer.Option(help="At most the break-glass cap, e.g. 30m.")] = "30m",
    subject: Subjects = None,
    bulk_limit: Annotated[int | None, typer.Option()] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Open an emergency grant at once (flagged; a custodian approver must review it)."""
    with connect(server, token, data_dir, acting, config) as api:
        info = api.break_glass(
            region=region,
            fields=field,
            purpose=purpose,
            ticket=ticket,
            duration_seconds=_seconds(duration),
            subjects=subject or [],
            bulk_limit=bulk_limit,
        )
    _print(info, json_out, f"break-glass {info.id}")


def _decide(
    request_id: str,
    key: Path,
    decision: str,
    server: str | None,
    token: str | None,
    data_dir: Path,
    acting: str | None,
    config: Path | None,
    json_out: bool,
) -> None:
    signer = load_signer(key)
    with connect(server, token, data_dir, acting, config) as api:
        info = api.approve(request_id, signer, decision=decision)
    _print(info, json_out, f"{decision} recorded on {request_id}")


@access_app.command("approve")
def approve(
    request_id: RequestId,
    key: KeyFile,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Approve: sign the exact request with your key file here, and send the signed note."""
    _decide(request_id, key, "approve", server, token, data_dir, acting, config, json_out)


@access_app.command("deny")
def deny(
    request_id: RequestId,
    key: KeyFile,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Deny: a signed note with decision deny."""
    _decide(request_id, key, "deny", server, token, data_dir, acting, config, json_out)


@access_app.command("review")
def review(
    request_id: RequestId,
    key: KeyFile,
    verdict: Annotated[
        str, typer.Option(help="upheld or rejected (a rejection revokes the grant).")
    ] = "upheld",
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Review a break-glass grant, signed with your key file."""
    signer = load_signer(key)
    with connect(server, token, data_dir, acting, config) as api:
        info = api.review(request_id, signer, verdict=verdict)
    _print(info, json_out, f"review recorded on {request_id}")


@access_app.command("list")
def list_requests(
    state: Annotated[str | None, typer.Option(help="Only this recorded state, e.g. pending.")] = None,
    requester: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Requests, newest first (yours; all of them for custodian, auditor, board and admins)."""
    with connect(server, token, data_dir, acting, config) as api:
        items = api.list_access_requests(state=state, requester=requester, limit=limit)
    if json_out:
        emit_json({"items": [_full(i) for i in items]})
        return
    show(
        [_summary(i) for i in items],
        False,
        title="access requests",
        columns=["id", "requester", "state", "purpose", "ticket", "region", "fields", "approvals"],
    )


@access_app.command("show")
def show_request(
    request_id: RequestId,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """One request, its approvals and where it stands."""
    with connect(server, token, data_dir, acting, config) as api:
        _print(api.get_access_request(request_id), json_out, request_id)


@access_app.command("withdraw")
def withdraw(
    request_id: RequestId,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Withdraw your own pending request."""
    with connect(server, token, data_dir, acting, config) as api:
        _print(api.withdraw(request_id), json_out, f"withdrew {request_id}")


@access_app.command("revoke")
def revoke(
    request_id: RequestId,
    reason: Annotated[str, typer.Option(help="Why the grant ends now.")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """End a grant early (its grantee, or a custodian approver)."""
    with connect(server, token, data_dir, acting, config) as api:
        _print(api.revoke(request_id, reason=reason), json_out, f"revoked {request_id}")
