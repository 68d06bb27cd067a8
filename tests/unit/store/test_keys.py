"""The local keyring: owner-only file, versioned KEKs, rotation, retirement, shredding; keys never shown."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from rempart.errors import ConfigurationError, Conflict, InvalidInput, NotFound, VerificationFailed
from rempart.store.keys import LocalKeyring, WrappedKey, next_key_id


def material(path: Path, ring: str) -> list[str]:
    return list(json.loads(path.read_text())["rings"][ring]["keys"].values())


def test_created_owner_only_and_never_printed(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "keyring.json"
    ring = LocalKeyring.create(path, ["us", "row"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert ring.rings() == ("row", "us")
    [secret] = material(path, "us")
    assert len(base64.b64decode(secret)) == 32
    wrapped = ring.wrap("us", b"k" * 32, b"binding")
    for shown in (repr(ring), str(ring), repr(wrapped)):
        assert secret not in shown
        assert wrapped.sealed.hex() not in shown
    assert repr(wrapped) == f"WrappedKey(key_id='us-v1', sealed=<{len(wrapped.sealed)} bytes>)"
    with pytest.raises(ConfigurationError, match="already exists; refusing to overwrite a key"):
        LocalKeyring.create(path, ["us"])


def test_a_keyring_others_can_read_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    LocalKeyring.create(path, ["us"])
    path.chmod(0o640)
    with pytest.raises(ConfigurationError) as caught:
        LocalKeyring.open(path)
    assert str(caught.value) == (
        f"key file {path} is accessible to group or others (mode 0640); run: chmod 600 {path}"
    )


def test_wrap_binds_ring_version_and_caller_binding(tmp_path: Path) -> None:
    ring = LocalKeyring.create(tmp_path / "k.json", ["us", "row"])
    wrapped = ring.wrap("us", b"k" * 32, b"subject-a")
    assert ring.unwrap("us", wrapped, b"subject-a") == b"k" * 32
    with pytest.raises(
        VerificationFailed, match="^integrity check failed unwrapping a subject key under 'us-v1'"
    ):
        ring.unwrap("us", wrapped, b"subject-b")
    with pytest.raises(VerificationFailed, match="^ring 'row' holds no key-encryption key 'us-v1'$"):
        ring.unwrap("row", wrapped, b"subject-a")
    with pytest.raises(NotFound, match="has no ring 'eu'; known rings: row, us$"):
        ring.wrap("eu", b"k" * 32, b"")


def test_rotation_keeps_old_versions_until_retired_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ring = LocalKeyring.create(path, ["us"])
    old = ring.wrap("us", b"a" * 32, b"x")
    ring.rotate("us", "us-v2")
    ring.rotate("us", "us-v2")  # idempotent
    new = ring.wrap("us", b"b" * 32, b"x")
    assert (old.key_id, new.key_id, ring.key_ids("us")) == ("us-v1", "us-v2", ("us-v1", "us-v2"))
    reopened = LocalKeyring.open(path)
    assert reopened.current_key_id("us") == "us-v2"
    assert reopened.unwrap("us", old, b"x") == b"a" * 32
    with pytest.raises(Conflict, match="^key id 'us-v1' was already used in ring 'us'$"):
        ring.rotate("us", "us-v1")
    with pytest.raises(InvalidInput, match="^key id 'row-v9' is not of the form us-v<n>$"):
        ring.rotate("us", "row-v9")
    with pytest.raises(
        Conflict, match="^'us-v2' is the current key of ring 'us'; rotate before retiring it$"
    ):
        ring.retire("us", "us-v2")
    ring.retire("us", "us-v1")
    for r in (ring, LocalKeyring.open(path)):
        with pytest.raises(
            VerificationFailed, match="^the key-encryption key 'us-v1' was retired and destroyed"
        ):
            r.unwrap("us", old, b"x")
    assert len(material(path, "us")) == 1
    assert next_key_id("us", ring.key_ids("us")) == "us-v3"


def test_shredding_is_durable_and_per_wrapped_key(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    ring = LocalKeyring.create(path, ["us"])
    a, b = ring.wrap("us", b"a" * 32, b"a"), ring.wrap("us", b"b" * 32, b"b")
    ring.shred("us", [a])
    for r in (ring, LocalKeyring.open(path)):
        with pytest.raises(
            VerificationFailed, match=r"^this subject key was shredded by the custodian \(ring 'us'\)"
        ):
            r.unwrap("us", a, b"a")
        assert r.unwrap("us", b, b"b") == b"b" * 32
    # The same bytes copied anywhere are the same wrapped key: still refused.
    with pytest.raises(VerificationFailed):
        ring.unwrap("us", WrappedKey(a.key_id, bytes(a.sealed)), b"a")


def test_open_or_create_adds_missing_rings_only(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    LocalKeyring.create(path, ["us"])
    before = material(path, "us")
    ring = LocalKeyring.open_or_create(path, ["us", "row"])
    assert ring.rings() == ("row", "us")
    assert material(path, "us") == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff", "is not UTF-8 JSON: UnicodeDecodeError"),
        (b'{"format": "other"}', "is not a rempart/local-keyring/v1 file"),
        (
            b'{"format": "rempart/local-keyring/v1", "rings": {"us": {"current": "us-v1", '
            b'"keys": {"us-v1": "c2hvcnQ="}}}}',
            "ring 'us': key 'us-v1' is not a 32-byte base64 key",
        ),
    ],
)
def test_malformed_keyrings_are_refused_without_showing_material(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "k.json"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(ConfigurationError) as caught:
        LocalKeyring.open(path)
    assert str(caught.value) == f"keyring {path}{' ' if not message.startswith('ring') else ': '}{message}"
    assert "c2hvcnQ" not in str(caught.value)


def test_two_processes_sharing_a_keyring_see_each_others_changes(tmp_path: Path) -> None:
    """Two handles on one file, as two API processes would hold: no lost update, no stale unwrap."""
    path = tmp_path / "k.json"
    first = LocalKeyring.create(path, ["us"])
    second = LocalKeyring.open(path)
    wrapped = second.wrap("us", b"a" * 32, b"x")
    first.shred("us", [wrapped])
    with pytest.raises(VerificationFailed, match="^this subject key was shredded"):
        second.unwrap("us", wrapped, b"x")
    second.rotate("us", "us-v2")
    assert first.current_key_id("us") == "us-v2"
    other = first.wrap("us", b"b" * 32, b"y")
    second.shred("us", [other])
    ring = json.loads(path.read_text())["rings"]["us"]
    assert (ring["current"], len(ring["shredded"])) == ("us-v2", 2)
    assert sorted(ring["keys"]) == ["us-v1", "us-v2"]


def test_a_pinned_block_reads_the_keyring_once_and_changes_apply_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's wraps and unwraps look at the file once; another process's shredding applies after it."""
    path = tmp_path / "k.json"
    batch = LocalKeyring.create(path, ["us"])
    other = LocalKeyring.open(path)  # another process's handle
    wrapped = [batch.wrap("us", bytes([i]) * 32, b"x") for i in range(3)]
    looks = []
    real = LocalKeyring._signature

    def counted(self: LocalKeyring) -> tuple[int, int, int] | None:
        looks.append(self)
        return real(self)

    monkeypatch.setattr(LocalKeyring, "_signature", counted)
    with batch.pinned():
        other.shred("us", [wrapped[0]])
        looks.clear()
        assert [batch.unwrap("us", w, b"x") for w in wrapped] == [bytes([i]) * 32 for i in range(3)]
        batch.wrap("us", b"n" * 32, b"x")
        assert looks == []
        batch.rotate("us", "us-v2")  # a change inside the block starts from the file, and applies at once
        assert batch.wrap("us", b"n" * 32, b"x").key_id == "us-v2"
        assert batch.unwrap("us", wrapped[1], b"x") == bytes([1]) * 32
    with pytest.raises(VerificationFailed, match="^this subject key was shredded"):
        batch.unwrap("us", wrapped[0], b"x")
    assert json.loads(path.read_text())["rings"]["us"]["shredded"] != []  # the shred was kept
