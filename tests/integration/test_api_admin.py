"""Principals and tokens administration, metrics, the public log read path and proofs, release
verification and TUF files: a deployment made with the CLI (init --demo, release publish), then served."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest

from rempart import Client
from rempart.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.merkle import leaf_hash, verify_consistency, verify_inclusion
from rempart.tlog.note import Note
from rempart.tlog.tiles import TilePath, decode_entry_bundle
from tests.unit.api.harness import RunningServer, rempart_cli, rempart_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    data = tmp_path_factory.mktemp("admin") / "data"
    made = rempart_cli("init", "--demo", "--data-dir", str(data))
    assert made.returncode == 0, made.stderr
    published = rempart_cli(
        "release",
        "publish",
        "--out",
        str(data / "tuf"),
        "--registry-key",
        str(data / "demo" / "keys" / "registry.key"),
        "--data-dir",
        str(data),
    )
    assert published.returncode == 0, published.stderr
    with rempart_server(data) as running:
        yield running


def admin(server: RunningServer) -> Client:
    return Client(server.url, server.tokens["operator:admin"])


def test_principals_crud_by_an_admin(server: RunningServer) -> None:
    with admin(server) as a:
        created = a.create_principal(
            id="operator:zoe",
            display_name="Zoe",
            org="operator",
            location="FR",
            screening="pending",
            roles=["support"],
        )
        assert (created.id, created.location, created.screening, created.disabled) == (
            "operator:zoe",
            "FR",
            "pending",
            False,
        )
        with pytest.raises(Conflict):
            a.create_principal(
                id="operator:zoe", display_name="Zoe", org="operator", location="FR", screening="pending"
            )
        changed = a.update_principal("operator:zoe", screening="cleared", roles=["support", "engineer"])
        assert (changed.screening, changed.roles) == ("cleared", ("engineer", "support"))
        assert a.get_principal("operator:zoe") == changed
        assert "operator:zoe" in {p.id for p in a.list_principals(org="operator")}
        assert {p.org for p in a.list_principals(org="custodian")} == {"custodian"}
        a.delete_principal("operator:zoe")
        with pytest.raises(NotFound):
            a.get_principal("operator:zoe")
        with pytest.raises(InvalidInput) as bad:
            a.create_principal(
                id="operator:x", display_name="X", org="operator", location="usa", screening="cleared"
            )
        assert bad.value.code == "invalid_input"


def test_tokens_issue_list_revoke(server: RunningServer) -> None:
    with admin(server) as a:
        issued = a.issue_token(label="ci for alice", principal="operator:alice", lifetime_seconds=3600)
        assert "token" not in repr(issued) and issued.token.startswith(f"rpt_{issued.id}_")
        listed = {t.id: t for t in a.list_tokens(principal="operator:alice")}
        assert listed[issued.id].label == "ci for alice" and listed[issued.id].status == "active"
    with Client(server.url, server.tokens["operator:alice"]) as alice:
        assert issued.id in {t.id for t in alice.list_tokens()}
        assert alice.revoke_token(issued.id).status == "revoked"
        with pytest.raises(NotFound):
            alice.revoke_token(server.tokens["operator:admin"][4:20])


def test_metrics_count_requests_decisions_and_the_log(server: RunningServer) -> None:
    with Client(server.url, server.tokens["parent:bob"]) as bob, pytest.raises(PermissionDenied):
        bob.get_record("us-0001", "contact", "main", purpose="customer_support")
    with admin(server) as a:
        text = a.metrics()
    assert (
        'rempart_http_requests_total{method="GET",route="/subjects/{subject_id}/records/{collection}/'
        '{record_id}",status="403"}' in text
    )
    assert 'rempart_gateway_decisions_total{outcome="denied"}' in text
    lines = {line.split(" ")[0]: line.split(" ")[1] for line in text.splitlines() if line and line[0] != "#"}
    assert float(lines['rempart_gateway_decisions_total{outcome="denied"}']) >= 1
    assert float(lines["rempart_log_size"]) > 40
    assert float(lines["rempart_log_checkpoint_age_seconds"]) >= 0
    assert (
        'rempart_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/health"}' in text
        or "rempart_http_request_duration_seconds_count" in text
    )
    route = "/subjects/{subject_id}/records/{collection}/{record_id}"
    assert float(lines[f'rempart_http_request_duration_seconds_count{{method="GET",route="{route}"}}']) >= 1


def test_the_log_read_path_and_proofs_verify(server: RunningServer) -> None:
    with Client(server.url) as public:
        note = public.checkpoint()
        cp = Checkpoint.parse(Note.parse(note).text)
        assert cp.size > 40  # the seeded deployment: principals, trust root, subjects, records
        width = min(256, cp.size)
        bundle = public.log_resource(TilePath(None, 0, width).path())
        entries = decode_entry_bundle(bundle, width)
        proof = public.inclusion_proof(3, cp.size)
        assert proof.leaf_hash == leaf_hash(entries[3])
        verify_inclusion(leaf_hash(entries[3]), 3, cp.size, list(proof.hashes), cp.root)
        consistency = public.consistency_proof(10, cp.size)
        hashes = [
            base64.b64decode(h)
            for h in httpx.get(f"{server.url}/log/proof/inclusion", params={"index": 0, "size": 10}).json()[
                "hashes"
            ]
        ]
        assert len(hashes) == 4
        old_root = _root_of_first(entries, 10)
        verify_consistency(10, cp.size, old_root, cp.root, list(consistency.hashes))
        with pytest.raises(InvalidInput):
            public.inclusion_proof(cp.size + 5, cp.size)
    tile = httpx.get(f"{server.url}/log/{TilePath(0, 0, width).path()}")
    assert tile.status_code == 200 and len(tile.content) == 32 * width
    assert httpx.get(f"{server.url}/log/tile/0/x999/000").status_code == 404
    assert httpx.get(f"{server.url}/log/tile/banana").json()["code"] == "not_found"


def _root_of_first(entries: list[bytes], n: int) -> bytes:
    from rempart.tlog.merkle import naive_root

    return naive_root([leaf_hash(e) for e in entries[:n]])


def test_release_verification_and_tuf_files(server: RunningServer) -> None:
    with Client(server.url, server.tokens["operator:eve"]) as eve:
        status = eve.verify_release("sha256:" + "ab" * 32, "us")
        assert (status.state.value, status.reviewers) == ("unknown", ())
        with pytest.raises(InvalidInput) as bad:
            eve.verify_release("ab" * 32, "mars")
        assert bad.value.message == "region 'mars' is not in trust root version 1"
    root = httpx.get(f"{server.url}/tuf/us/metadata/1.root.json")
    assert root.status_code == 200 and root.headers["content-type"] == "application/json"
    assert json.loads(root.content)["signed"]["_type"] == "root"
    assert httpx.get(f"{server.url}/tuf/us/metadata/%2E%2E/%2E%2E/control.db").json()["code"] == "not_found"
    assert httpx.get(f"{server.url}/tuf/us/metadata/nope.json").json()["code"] == "not_found"
