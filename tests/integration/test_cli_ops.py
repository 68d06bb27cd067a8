"""The `rempart` command as real processes: against a running server (through the SDK), and embedded
on a data folder; tables for people, --json for scripts, one error line with exit code 3 or 2."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.api.harness import RunningServer, rempart_cli, rempart_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with rempart_server(tmp_path_factory.mktemp("cli") / "data") as running:
        yield running


def as_(server: RunningServer, principal: str) -> dict[str, str]:
    return {"REMPART_SERVER": server.url, "REMPART_TOKEN": server.tokens[principal]}


def test_request_approve_with_a_key_file_and_read(server: RunningServer) -> None:
    filed = rempart_cli(
        "access",
        "request",
        "--region",
        "us",
        "--field",
        "contact.email",
        "--subject",
        "us-0003",
        "--purpose",
        "customer_support",
        "--ticket",
        "SUP-77",
        "--duration",
        "30m",
        "--json",
        env=as_(server, "operator:alice"),
    )
    assert filed.returncode == 0, filed.stderr
    request_id = json.loads(filed.stdout)["id"]
    key = server.key("custodian:carol")
    approved = rempart_cli(
        "access", "approve", request_id, "--key", str(key), env=as_(server, "custodian:carol")
    )
    assert approved.returncode == 0, approved.stderr
    assert "approve by custodian:carol" in approved.stdout
    assert "PRIVATE+KEY" not in approved.stdout + approved.stderr  # keys are never printed
    read = rempart_cli(
        "records",
        "get",
        "us-0003",
        "contact",
        "main",
        "--purpose",
        "customer_support",
        "--json",
        env=as_(server, "operator:alice"),
    )
    assert read.returncode == 0, read.stderr
    body = json.loads(read.stdout)
    assert body["fields"] == {"email": "lena.park@example.org"}
    assert body["masked"] == ["phone", "postal_address", "email_verified"]
    listed = rempart_cli("access", "list", "--state", "active", env=as_(server, "custodian:carol"))
    assert listed.returncode == 0 and request_id in listed.stdout


def test_a_refusal_is_one_clear_line_and_exit_code_3(server: RunningServer) -> None:
    denied = rempart_cli(
        "records",
        "get",
        "us-0001",
        "contact",
        "main",
        "--purpose",
        "customer_support",
        env=as_(server, "parent:bob"),
    )
    assert denied.returncode == 3
    first = denied.stderr.splitlines()[0]
    assert first.startswith(
        "error (permission_denied): read of contact/main denied: principals of the foreign parent never read"
    )
    assert "Traceback" not in denied.stderr
    bad = rempart_cli(
        "records",
        "get",
        "us-0001",
        "contact",
        "main",
        "--purpose",
        "gossip",
        env=as_(server, "operator:alice"),
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error (invalid_input): query.purpose: Input should be ")
    no_token = rempart_cli("principals", "whoami", "--server", server.url)
    assert no_token.returncode == 3
    assert no_token.stderr.startswith(f"error (unauthenticated): no token for {server.url}: pass --token")


def test_tokens_and_principals_for_people_and_scripts(server: RunningServer) -> None:
    issued = rempart_cli(
        "tokens", "issue", "--label", "laptop", "--lifetime", "2h", "--json", env=as_(server, "operator:eve")
    )
    assert issued.returncode == 0, issued.stderr
    token = json.loads(issued.stdout)
    me = rempart_cli(
        "principals", "whoami", "--json", env={"REMPART_SERVER": server.url, "REMPART_TOKEN": token["token"]}
    )
    assert json.loads(me.stdout)["id"] == "operator:eve"
    listed = rempart_cli("tokens", "list", env=as_(server, "operator:eve"))
    assert token["id"] in listed.stdout and token["token"] not in listed.stdout
    revoked = rempart_cli("tokens", "revoke", token["id"], env=as_(server, "operator:eve"))
    assert revoked.returncode == 0 and f"revoked token {token['id']}" in revoked.stdout
    table = rempart_cli("principals", "list", "--org", "custodian", env=as_(server, "operator:admin"))
    assert table.returncode == 0
    assert "custodian:carol" in table.stdout and "custodian:dan" in table.stdout


def test_subjects_and_egress(server: RunningServer, tmp_path: Path) -> None:
    shown = rempart_cli("subjects", "show", "row-0001", "--json", env=as_(server, "operator:alice"))
    assert json.loads(shown.stdout)["region"] == "row"
    out = tmp_path / "sent.json"
    sent = rempart_cli(
        "egress",
        "--region",
        "row",
        "--collection",
        "profile",
        "--field",
        "account_created",
        "--purpose",
        "business_metrics",
        "--destination",
        "parent-analytics",
        "--out",
        str(out),
        "--json",
        env=as_(server, "operator:svc-metrics"),
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["count"] == len(json.loads(out.read_bytes())["records"]) == 2
    refused = rempart_cli(
        "egress",
        "--region",
        "row",
        "--collection",
        "contact",
        "--field",
        "email",
        "--purpose",
        "business_metrics",
        "--destination",
        "parent-analytics",
        env=as_(server, "operator:svc-metrics"),
    )
    assert refused.returncode == 3 and "protected data never leaves its region" in refused.stderr


def test_the_demo_story_against_the_server(server: RunningServer) -> None:
    told = rempart_cli("demo", "--server", server.url, "--data-dir", str(server.data_dir))
    assert told.returncode == 0, told.stderr
    for step in (
        "1. Data lands in its home region",
        "row database, read directly: 0 wrapped key row(s)",
        "3. A custodian approves",
        "masked (not in the grant): phone, postal_address, email_verified",
        "bob's read is refused: principals of the foreign parent never read",
        "contact.email to parent-analytics: refused: protected data never leaves its region",
        "an inclusion proof of",
    ):
        assert step in told.stdout, step


def test_embedded_init_principals_and_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    made = rempart_cli("init", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    assert "admin operator:admin, token (shown once): rpt_" in made.stdout
    assert (data / "rempart.toml").read_text().startswith("# Rempart: the embedded deployment")
    created = rempart_cli(
        "principals",
        "create",
        "custodian:kim",
        "--name",
        "Kim",
        "--org",
        "custodian",
        "--screening",
        "cleared",
        "--role",
        "approver",
        "--data-dir",
        str(data),
        "--as",
        "operator:admin",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["roles"] == ["approver"]
    key = tmp_path / "kim.key"
    made_key = rempart_cli("keys", "keygen", "custodian:kim", "--out", str(key))
    assert made_key.returncode == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert made_key.stdout.strip().splitlines()[-1].startswith("custodian:kim+")
    assert "PRIVATE" not in made_key.stdout
    rotated = rempart_cli(
        "keys",
        "rotate",
        "--region",
        "us",
        "--reason",
        "yearly",
        "--data-dir",
        str(data),
        "--as",
        "custodian:kim",
        "--json",
    )
    assert rotated.returncode == 0, rotated.stderr
    assert (json.loads(rotated.stdout)["previous_key"], json.loads(rotated.stdout)["key"]) == (
        "us-v1",
        "us-v2",
    )
    not_custodian = rempart_cli(
        "keys", "rotate", "--region", "us", "--reason", "x", "--data-dir", str(data), "--as", "operator:admin"
    )
    assert not_custodian.returncode == 3
    assert "operator:admin is not an enabled custodian principal" in not_custodian.stderr
    nowhere = rempart_cli(
        "principals", "list", "--data-dir", str(tmp_path / "empty"), "--as", "operator:admin"
    )
    assert nowhere.returncode == 2 and "rempart init --data-dir" in nowhere.stderr
