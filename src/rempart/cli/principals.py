"""``rempart principals …`` and ``rempart tokens …``: who may act, and their API tokens."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import typer

from rempart.cli._app import app, console, emit_json, inline_or_file
from rempart.cli._connect import DEFAULT_DATA_DIR, As, ConfigFile, DataDir, Json, Server, Token, connect, show
from rempart.client import PrincipalInfo, TokenRecord
from rempart.clock import format_time
from rempart.config import parse_duration
from rempart.errors import InvalidInput

__all__ = ["principals_app", "tokens_app"]

principals_app = typer.Typer(help="Principals: people and services, their org, roles, purposes and keys.")
tokens_app = typer.Typer(help="API tokens: issue (shown once), list, revoke.")
app.add_typer(principals_app, name="principals")
app.add_typer(tokens_app, name="tokens")

Roles = Annotated[list[str] | None, typer.Option("--role", help="A role (repeat).")]
Purposes = Annotated[list[str] | None, typer.Option("--purpose", help="A registered purpose (repeat).")]


def _principal(p: PrincipalInfo) -> dict[str, Any]:
    return dataclasses.asdict(p)


def _vkey(value: str | None) -> str | None:
    return None if value is None else inline_or_file(value, "--vkey")


@principals_app.command("list")
def list_principals(
    org: Annotated[str | None, typer.Option(help="Only this org.")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Every principal (admins and oversight orgs)."""
    with connect(server, token, data_dir, acting, config) as api:
        rows = [_principal(p) for p in api.list_principals(org=org)]
    show(
        rows,
        json_out,
        title="principals",
        columns=["id", "org", "display_name", "location", "screening", "roles", "purposes", "disabled"],
    )


@principals_app.command("show")
def show_principal(
    principal_id: Annotated[str, typer.Argument(help="e.g. operator:alice")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    with connect(server, token, data_dir, acting, config) as api:
        show(_principal(api.get_principal(principal_id)), json_out, title=principal_id)


@principals_app.command("whoami")
def whoami(
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """The principal your token (or --as) stands for."""
    with connect(server, token, data_dir, acting, config) as api:
        show(_principal(api.whoami()), json_out, title="you")


@principals_app.command("create")
def create(
    principal_id: Annotated[str, typer.Argument(help="kind:name, e.g. operator:alice")],
    name: Annotated[str, typer.Option("--name", help="Display name.")],
    org: Annotated[str, typer.Option(help="operator, parent, custodian, board or auditor.")],
    location: Annotated[str, typer.Option(help="ISO 3166-1 alpha-2 country code.")] = "US",
    screening: Annotated[str, typer.Option(help="cleared, pending or none.")] = "none",
    role: Roles = None,
    purpose: Purposes = None,
    vkey: Annotated[str | None, typer.Option(help="Note verifier key (or @FILE) for signers.")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Add a principal (operator admins only); recorded in the log."""
    with connect(server, token, data_dir, acting, config) as api:
        created = api.create_principal(
            id=principal_id,
            display_name=name,
            org=org,
            location=location,
            screening=screening,
            roles=role or [],
            purposes=purpose or [],
            vkey=_vkey(vkey),
        )
    show(_principal(created), json_out, title=f"created {principal_id}")


@principals_app.command("update")
def update(
    principal_id: Annotated[str, typer.Argument()],
    name: Annotated[str | None, typer.Option("--name")] = None,
    location: Annotated[str | None, typer.Option()] = None,
    screening: Annotated[str | None, typer.Option()] = None,
    role: Roles = None,
    purpose: Purposes = None,
    vkey: Annotated[str | None, typer.Option(help="New verifier key (or @FILE).")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable", help="Enable or disable.")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Change attributes; --role/--purpose replace the whole list."""
    changes: dict[str, Any] = {}
    for key, value in (
        ("display_name", name),
        ("location", location),
        ("screening", screening),
        ("roles", role),
        ("purposes", purpose),
        ("vkey", _vkey(vkey)),
    ):
        if value is not None:
            changes[key] = value
    if enable is not None:
        changes["disabled"] = not enable
    if not changes:
        raise InvalidInput("nothing to change: give at least one option (see --help)")
    with connect(server, token, data_dir, acting, config) as api:
        show(_principal(api.update_principal(principal_id, **changes)), json_out, title=principal_id)


@principals_app.command("disable")
def disable(
    principal_id: Annotated[str, typer.Argument()],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
) -> None:
    """Disable a principal: their tokens stop working at once."""
    with connect(server, token, data_dir, acting, config) as api:
        api.disable_principal(principal_id)
    console.print(f"disabled {principal_id}")


@principals_app.command("delete")
def delete(
    principal_id: Annotated[str, typer.Argument()],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
) -> None:
    """Delete a principal nothing refers to (else: disable it)."""
    with connect(server, token, data_dir, acting, config) as api:
        api.delete_principal(principal_id)
    console.print(f"deleted {principal_id}")


def _token(t: TokenRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "principal": t.principal,
        "label": t.label,
        "status": t.status,
        "created_at": format_time(t.created_at),
        "expires_at": format_time(t.expires_at),
        "revoked_at": None if t.revoked_at is None else format_time(t.revoked_at),
    }


@tokens_app.command("issue")
def issue(
    label: Annotated[str, typer.Option(help="What the token is for.")],
    for_principal: Annotated[str | None, typer.Option("--for", help="Another principal (admins).")] = None,
    lifetime: Annotated[
        str | None, typer.Option(help="e.g. 1h, 7d (default: [server] token_lifetime).")
    ] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Issue a token; the secret is printed this once and stored only as a hash."""
    seconds = None
    if lifetime is not None:
        try:
            seconds = int(parse_duration(lifetime).total_seconds())
        except ValueError as exc:
            raise InvalidInput(f"--lifetime: {exc}") from exc
    with connect(server, token, data_dir, acting, config) as api:
        new = api.issue_token(label=label, principal=for_principal, lifetime_seconds=seconds)
    if json_out:
        emit_json(
            {
                "id": new.id,
                "principal": new.principal,
                "label": new.label,
                "expires_at": format_time(new.expires_at),
                "token": new.token,
            }
        )
        return
    console.print(
        f"token {new.id} for {new.principal}, expires {format_time(new.expires_at)}", highlight=False
    )
    console.print(new.token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def list_tokens(
    for_principal: Annotated[str | None, typer.Option("--for", help="Another principal (admins).")] = None,
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Tokens, without their secrets."""
    with connect(server, token, data_dir, acting, config) as api:
        rows = [_token(t) for t in api.list_tokens(principal=for_principal)]
    show(rows, json_out, title="tokens", columns=["id", "principal", "label", "status", "expires_at"])


@tokens_app.command("revoke")
def revoke(
    token_id: Annotated[str, typer.Argument(help="The 16 hex digits after rpt_.")],
    server: Server = None,
    token: Token = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    acting: As = None,
    config: ConfigFile = None,
    json_out: Json = False,
) -> None:
    """Revoke a token at once."""
    with connect(server, token, data_dir, acting, config) as api:
        info = api.revoke_token(token_id)
    if json_out:
        emit_json(_token(info))
    else:
        console.print(f"revoked token {info.id} of {info.principal}")
