"""A stock TUF client (tuf.ngclient.Updater) verifies the published metadata over real HTTP.

The registry writes each region's repository as files; `python -m http.server`
serves them on a free loopback port (started and stopped here). Verification
succeeds for approved artifacts and fails for pending, revoked, unknown and
tampered ones, and the client follows a board rotation from root version 1.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tuf.api.exceptions import LengthOrHashMismatchError
from tuf.ngclient import Updater

from rempart.db import Database
from rempart.governance import (
    DirectoryArtifacts,
    ProposalKind,
    TufPublisher,
    revocation_text,
    sign_proposal,
    sign_release,
    target_path,
)
from rempart.tlog.note import Signer, open_note
from tests.unit.governance.world import Principal, World, document, signed_by


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served by a real `python -m http.server` process on loopback."""
    root = tmp_path / "repo"
    root.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the local HTTP server did not start") from None
                time.sleep(0.05)
        yield root, base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    # The stock client checks expiry against the real clock, so this deployment lives now.
    w = World(Database.open(f"sqlite:///{tmp_path / 'control.db'}"), start=datetime.now(UTC))
    bundle = signed_by(document(w.keys, issued=w.now()), w.keys.board[:3])
    w.gov.trust_roots.install(bundle, now=w.now())
    yield w
    w.close()


def _approve(w: World, data: bytes, name: str) -> str:
    release = w.submit(data, name=name)
    w.gov.releases.review(release.id, sign_release(release.text, w.keys.reviewers[:2]), now=w.now())
    return str(release.id)


def _client(root: Path, base: str, client_dir: Path, region: str = "us") -> Updater:
    client_dir.mkdir(parents=True, exist_ok=True)
    (client_dir / "targets").mkdir(exist_ok=True)
    updater = Updater(
        metadata_dir=str(client_dir),
        metadata_base_url=f"{base}/{region}/metadata/",
        target_dir=str(client_dir / "targets"),
        target_base_url=f"{base}/{region}/targets/",
        bootstrap=(root / region / "metadata" / "1.root.json").read_bytes(),
    )
    updater.refresh()
    return updater


def test_stock_client_verifies_approved_and_refuses_the_rest(
    world: World, served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    blobs = {name: f"{name} contents".encode() for name in ("approved", "pending", "revoked", "tampered")}
    for data in blobs.values():
        (artifacts / hashlib.sha256(data).hexdigest()).write_bytes(data)
    approved = world.gov.releases.get(_approve(world, blobs["approved"], "approved.json"))
    pending = world.submit(blobs["pending"], name="pending.json")
    revoked = world.gov.releases.get(_approve(world, blobs["revoked"], "revoked.json"))
    world.gov.releases.revoke(
        revoked.id,
        sign_release(
            revocation_text(release=revoked.id, region="us", digest=revoked.digest, reason="bad rule"),
            [world.keys.reviewers[2]],
        ),
        now=world.now(),
    )
    tampered = world.gov.releases.get(_approve(world, blobs["tampered"], "tampered.json"))
    publisher = world.gov.publisher(world.keys.registry, artifacts=DirectoryArtifacts(artifacts))
    published = publisher.publish("us", root, now=world.now())
    assert published.targets == tuple(sorted([target_path(approved), target_path(tampered)]))

    # An attacker with write access to the file server swaps the artifact's bytes.
    served_file = root / "us" / "targets" / tampered.kind.value
    victim = served_file / f"{tampered.digest[7:]}.{tampered.digest[7:]}"
    victim.write_bytes(bytes(b ^ 0x01 for b in victim.read_bytes()))

    updater = _client(root, base, tmp_path / "client")
    info = updater.get_targetinfo(target_path(approved))
    assert info is not None
    assert info.hashes == {"sha256": approved.digest[7:]}
    path = updater.download_target(info, str(tmp_path / "client" / "approved.json"))
    assert Path(path).read_bytes() == blobs["approved"]
    # The custodian's signatures travel in the target's custom field, checkable with stock note tools.
    note = open_note(info.custom["rempart"]["signed_note"], [s.verifier() for s in world.keys.reviewers])
    assert sorted(v.verifier.name for v in note.verified) == ["reviewer-1", "reviewer-2"]
    assert info.custom["rempart"]["submitter"] == "engineer-1"

    assert updater.get_targetinfo(target_path(pending)) is None
    assert updater.get_targetinfo(target_path(revoked)) is None
    assert updater.get_targetinfo(f"moderation_rule_set/{'ab' * 32}") is None

    tampered_info = updater.get_targetinfo(target_path(tampered))
    assert tampered_info is not None
    with pytest.raises(LengthOrHashMismatchError):
        updater.download_target(tampered_info, str(tmp_path / "client" / "tampered.json"))
    # A deployer holding the bytes locally checks them against the metadata the same way.
    local = tmp_path / "local-copy"
    local.write_bytes(blobs["approved"][:-1] + b"!")
    assert updater.find_cached_target(info, str(local)) is None
    local.write_bytes(blobs["approved"])
    assert updater.find_cached_target(info, str(local)) == str(local)


def test_revocation_reaches_a_client_that_trusted_the_release(
    world: World, served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    release = world.gov.releases.get(_approve(world, b"model config v7", "model.json"))
    publisher = world.gov.publisher(world.keys.registry)
    publisher.publish("us", root, now=world.now())
    assert _client(root, base, tmp_path / "client").get_targetinfo(target_path(release)) is not None

    world.gov.releases.revoke(
        release.id,
        sign_release(
            revocation_text(release=release.id, region="us", digest=release.digest, reason="steers content"),
            [world.keys.reviewers[0]],
        ),
        now=world.now(),
    )
    second = publisher.publish("us", root, now=world.now())
    assert second.version == 2
    assert second.targets == ()
    assert _client(root, base, tmp_path / "client").get_targetinfo(target_path(release)) is None
    # The other region's repository never listed it.
    publisher.publish("row", root, now=world.now())
    assert (
        _client(root, base, tmp_path / "client-row", region="row").get_targetinfo(target_path(release))
        is None
    )


def test_client_follows_a_board_rotation_from_root_version_one(
    world: World, served: tuple[Path, str], tmp_path: Path
) -> None:
    root, base = served
    release = world.gov.releases.get(_approve(world, b"source bundle", "src.tar"))
    publisher: TufPublisher = world.gov.publisher(world.keys.registry)
    publisher.publish("us", root, now=world.now())

    newcomer = Signer.generate("board-6")
    new_board = [*world.keys.board[:4], newcomer]  # board-5 rotated out
    bundle = signed_by(
        document(world.keys, version=2, board=new_board, issued=world.now()),
        [*world.keys.board[:3], newcomer],
    )
    proposal = world.gov.proposals.draft(
        kind=ProposalKind.TRUST_ROOT,
        payload={"trust_root": bundle.to_json()},
        drafter=Principal("board-1", "board"),
        now=world.now(),
    )
    world.gov.proposals.sign(proposal.id, sign_proposal(proposal, world.keys.board[:3]), now=world.now())
    world.gov.proposals.apply(proposal.id, now=world.now())
    assert world.gov.trust_roots.current().version == 2

    publisher.publish("us", root, now=world.now())
    client_dir = tmp_path / "client"
    updater = _client(root, base, client_dir)
    assert updater.get_targetinfo(target_path(release)) is not None
    trusted = json.loads((client_dir / "root.json").read_bytes())
    assert trusted["signed"]["version"] == 2
    assert len(trusted["signed"]["roles"]["root"]["keyids"]) == 5
