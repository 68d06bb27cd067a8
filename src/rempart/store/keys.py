"""Key custody: the custodian's key-encryption keys (KEKs), behind one port.

Each region's subject keys (a data key and a commitment key per subject) are
stored in the region's database *wrapped*: AES-256-GCM-encrypted under the
region's KEK. The KEKs never leave the custodian: the store asks the
:class:`KeyCustody` to wrap and unwrap, and the custodian can rotate a ring
(a new version becomes current; older versions still unwrap until retired),
retire an old version (destroying it), and shred a single wrapped key
(refusing to unwrap it ever again, from any copy of any database).

:class:`LocalKeyring` is the shipped custody: a JSON file, mode 0600, that
holds versioned KEKs per ring and the register of shredded wrapped keys.
An HSM- or KMS-backed custody implements the same seven methods.

Key material is never logged, printed or put in an exception: ``repr`` hides it.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rempart.crypto import KEY_SIZE, AeadCipher, new_key
from rempart.errors import ConfigurationError, Conflict, InvalidInput, NotFound, VerificationFailed
from rempart.keyfiles import read_secret_file, write_secret_file

__all__ = [
    "KEY_ID_PATTERN",
    "RING_PATTERN",
    "KeyCustody",
    "LocalKeyring",
    "WrappedKey",
    "next_key_id",
    "wrapped_key_digest",
]

RING_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}\Z")
KEY_ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}-v[1-9][0-9]{0,8}\Z")
_FORMAT = "rempart/local-keyring/v1"


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """A key sealed under one version of a ring's KEK: safe to store beside the data."""

    key_id: str
    sealed: bytes

    def __repr__(self) -> str:
        return f"WrappedKey(key_id={self.key_id!r}, sealed=<{len(self.sealed)} bytes>)"


def wrapped_key_digest(wrapped: WrappedKey) -> str:
    """Hex SHA-256 naming one wrapped key (in the shred register and in erasure receipts)."""
    return hashlib.sha256(wrapped.key_id.encode() + b"\x00" + wrapped.sealed).hexdigest()


def next_key_id(ring: str, existing: Iterable[str]) -> str:
    """The id the next rotation of ``ring`` creates: ``<ring>-v<n+1>`` over every id ever used."""
    highest = 0
    for key_id in existing:
        prefix, _, number = key_id.rpartition("-v")
        if prefix == ring and number.isdigit():
            highest = max(highest, int(number))
    return f"{ring}-v{highest + 1}"


class KeyCustody(Protocol):
    """The custodian's side of envelope encryption. Implementations are thread-safe.

    ``aad`` binds a wrapped key to its place (region, subject, kind): the same
    sealed bytes under another binding do not unwrap.
    """

    def current_key_id(self, ring: str) -> str:
        """The KEK version that :meth:`wrap` uses now; NotFound if the ring does not exist."""
        ...

    def key_ids(self, ring: str) -> tuple[str, ...]:
        """Every KEK version of the ring still held (current included), oldest first."""
        ...

    def wrap(self, ring: str, key: bytes, aad: bytes) -> WrappedKey:
        """Seal ``key`` under the ring's current KEK."""
        ...

    def unwrap(self, ring: str, wrapped: WrappedKey, aad: bytes) -> bytes:
        """Open a wrapped key; VerificationFailed if it was shredded, its KEK retired, or it was altered."""
        ...

    def rotate(self, ring: str, key_id: str) -> None:
        """Create KEK version ``key_id`` and make it current (idempotent if it already is)."""
        ...

    def pinned(self) -> AbstractContextManager[None]:
        """A block of calls by this thread that may all use the key material as it was at its start.

        For a batch (a migration's thousands of wraps): a rotation, retirement
        or shredding made meanwhile by another process applies from the next
        call after the block, not in its middle. Changes made inside the block
        apply at once. Other threads wait for the block to end.
        """
        ...

    def retire(self, ring: str, key_id: str) -> None:
        """Destroy a KEK version that is no longer current: whatever it wrapped is gone."""
        ...

    def shred(self, ring: str, wrapped: Iterable[WrappedKey]) -> None:
        """Refuse, durably and forever, to unwrap these wrapped keys (crypto-shredding)."""
        ...


class _Ring:
    __slots__ = ("current", "keys", "retired", "shredded")

    def __init__(self) -> None:
        self.current = ""
        self.keys: dict[str, AeadCipher] = {}
        self.retired: set[str] = set()
        self.shredded: set[str] = set()


class LocalKeyring:
    """Versioned KEKs per ring in one JSON file that only its owner may read (mode 0600).

    Every change (ring created, rotation, retirement, shredding) rewrites the
    file atomically (temp file, fsync, rename) before the call returns, so a
    crash leaves either the old or the new keyring, never half of one.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "keyring.json"
    >>> ring = LocalKeyring.create(path, ["us"])
    >>> w = ring.wrap("us", bytes(32), b"ad")
    >>> ring.unwrap("us", w, b"ad") == bytes(32)
    True
    """

    def __init__(self, path: Path, rings: Mapping[str, _Ring], *, raw: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self._rings = dict(rings)
        self._raw: dict[str, Any] = json.loads(json.dumps(raw))  # private deep copy of the file
        self._lock = threading.RLock()
        self._seen: tuple[int, int, int] | None = None
        self._pinned = 0  # depth of pinned() blocks of the thread holding the lock

    # -- opening ------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, rings: Iterable[str]) -> LocalKeyring:
        """Write a new keyring with a first KEK version for each ring; refuses to overwrite a file."""
        keyring = cls(Path(path), {}, raw={"format": _FORMAT, "rings": {}})
        for ring in rings:
            keyring._add_ring(ring)
        write_secret_file(keyring.path, keyring._encode())
        keyring._seen = keyring._signature()
        return keyring

    @classmethod
    def open(cls, path: Path) -> LocalKeyring:
        """Read a keyring file; refuses one that group or others can access."""
        keyring = cls(Path(path), {}, raw={"format": _FORMAT, "rings": {}})
        keyring._reload()
        return keyring

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return None
        return (info.st_mtime_ns, info.st_size, info.st_ino)

    def _reload(self) -> None:
        """(Re)read the file: another process may have rotated, retired or shredded meanwhile."""
        signature = self._signature()
        raw_bytes = read_secret_file(self.path)
        where = str(self.path)
        try:
            raw = json.loads(raw_bytes.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigurationError(f"keyring {where} is not UTF-8 JSON: {exc.__class__.__name__}") from None
        if not isinstance(raw, dict) or raw.get("format") != _FORMAT:
            raise ConfigurationError(f"keyring {where} is not a {_FORMAT} file", path=where)
        rings_raw = raw.get("rings")
        if not isinstance(rings_raw, dict):
            raise ConfigurationError(f"keyring {where}: 'rings' must be an object", path=where)
        self._rings = {name: self._parse_ring(where, name, entry) for name, entry in rings_raw.items()}
        self._raw = raw
        self._seen = signature

    def _refresh(self, *, even_pinned: bool = False) -> None:
        """Reload if the file changed since this process last read or wrote it (cheap: one stat).

        Inside :meth:`pinned` (whose thread holds the lock) the keyring read at the
        block's start stands, unless ``even_pinned`` (a change starts from the file).
        """
        if (even_pinned or not self._pinned) and self._signature() != self._seen:
            self._reload()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        with self._lock:
            self._refresh()
            self._pinned += 1
            try:
                yield
            finally:
                self._pinned -= 1

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Serialize changes across threads and processes: lock, re-read, change, write."""
        with self._lock:
            lock_path = self.path.with_name(f".{self.path.name}.lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._refresh(even_pinned=True)
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    @classmethod
    def open_or_create(cls, path: Path, rings: Iterable[str]) -> LocalKeyring:
        """Open the keyring (creating the file if absent) and add any ring it lacks."""
        wanted = list(rings)
        if not Path(path).exists():
            return cls.create(path, wanted)
        keyring = cls.open(path)
        if any(r not in keyring._rings for r in wanted):
            with keyring._changing():
                missing = [r for r in wanted if r not in keyring._rings]
                for ring in missing:
                    keyring._add_ring(ring)
                if missing:
                    keyring._save()
        return keyring

    @staticmethod
    def _parse_ring(where: str, name: str, entry: object) -> _Ring:
        what = f"keyring {where}: ring {name!r}"
        if not RING_PATTERN.match(name) or not isinstance(entry, dict):
            raise ConfigurationError(f"{what} is malformed", path=where)
        ring = _Ring()
        keys = entry.get("keys")
        current = entry.get("current")
        if not isinstance(keys, dict) or not isinstance(current, str) or current not in keys:
            raise ConfigurationError(f"{what} needs 'keys' and a 'current' key id among them", path=where)
        for key_id, encoded in keys.items():
            try:
                material = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else b""
            except (binascii.Error, ValueError):
                material = b""
            if not KEY_ID_PATTERN.match(key_id) or len(material) != KEY_SIZE:
                # Say which key id is bad, never what the material looks like.
                raise ConfigurationError(f"{what}: key {key_id!r} is not a 32-byte base64 key", path=where)
            ring.keys[key_id] = AeadCipher(material)
        ring.current = current
        retired = entry.get("retired", [])
        shredded = entry.get("shredded", [])
        if not isinstance(retired, list) or not isinstance(shredded, list):
            raise ConfigurationError(f"{what}: 'retired' and 'shredded' must be lists", path=where)
        ring.retired = {str(r) for r in retired}
        ring.shredded = {str(s) for s in shredded}
        return ring

    # -- the file -----------------------------------------------------------

    def _add_ring(self, ring: str) -> None:
        if not RING_PATTERN.match(ring):
            raise InvalidInput(f"key ring name {ring!r} must be lower-case letters, digits, '-' or '_'")
        if ring in self._rings:
            raise Conflict(f"key ring {ring!r} already exists")
        key_id = next_key_id(ring, [])
        material = new_key()
        state = _Ring()
        state.current = key_id
        state.keys[key_id] = AeadCipher(material)
        self._rings[ring] = state
        self._raw["rings"][ring] = {
            "current": key_id,
            "keys": {key_id: base64.b64encode(material).decode()},
            "retired": [],
            "shredded": [],
        }

    def _encode(self) -> bytes:
        return (json.dumps(self._raw, indent=1, sort_keys=True) + "\n").encode()

    def _save(self) -> None:
        write_secret_file(self.path, self._encode(), overwrite=True)
        self._seen = self._signature()

    def _ring(self, ring: str) -> _Ring:
        state = self._rings.get(ring)
        if state is None:
            raise NotFound(
                f"the keyring {self.path} has no ring {ring!r}; "
                f"known rings: {', '.join(sorted(self._rings))}",
                ring=ring,
            )
        return state

    # -- KeyCustody ---------------------------------------------------------

    def rings(self) -> tuple[str, ...]:
        with self._lock:
            self._refresh()
            return tuple(sorted(self._rings))

    def current_key_id(self, ring: str) -> str:
        with self._lock:
            self._refresh()
            return self._ring(ring).current

    def key_ids(self, ring: str) -> tuple[str, ...]:
        with self._lock:
            self._refresh()
            ids = self._ring(ring).keys
            return tuple(sorted(ids, key=lambda k: int(k.rpartition("-v")[2])))

    def wrap(self, ring: str, key: bytes, aad: bytes) -> WrappedKey:
        with self._lock:
            self._refresh()
            state = self._ring(ring)
            key_id, cipher = state.current, state.keys[state.current]
        return WrappedKey(key_id, cipher.encrypt(key, _bind(ring, key_id, aad)))

    def unwrap(self, ring: str, wrapped: WrappedKey, aad: bytes) -> bytes:
        with self._lock:
            self._refresh()
            state = self._ring(ring)
            if _register_entry(wrapped) in state.shredded:
                raise VerificationFailed(
                    f"this subject key was shredded by the custodian (ring {ring!r}); its data is erased"
                )
            cipher = state.keys.get(wrapped.key_id)
            if cipher is None:
                if wrapped.key_id in state.retired:
                    raise VerificationFailed(
                        f"the key-encryption key {wrapped.key_id!r} was retired and destroyed; "
                        "what it wrapped can no longer be opened"
                    )
                raise VerificationFailed(
                    f"ring {ring!r} holds no key-encryption key {wrapped.key_id!r}", key_id=wrapped.key_id
                )
        try:
            return cipher.decrypt(wrapped.sealed, _bind(ring, wrapped.key_id, aad))
        except VerificationFailed as exc:
            raise VerificationFailed(
                f"integrity check failed unwrapping a subject key under {wrapped.key_id!r}: the wrapped "
                "key was altered or belongs to another subject, kind or region"
            ) from exc

    def rotate(self, ring: str, key_id: str) -> None:
        with self._changing():
            state = self._ring(ring)
            if state.current == key_id:
                return
            if not KEY_ID_PATTERN.match(key_id) or not key_id.startswith(f"{ring}-v"):
                raise InvalidInput(f"key id {key_id!r} is not of the form {ring}-v<n>")
            if key_id in state.keys or key_id in state.retired:
                raise Conflict(f"key id {key_id!r} was already used in ring {ring!r}")
            material = new_key()
            state.keys[key_id] = AeadCipher(material)
            state.current = key_id
            entry = self._raw["rings"][ring]
            entry["keys"][key_id] = base64.b64encode(material).decode()
            entry["current"] = key_id
            self._save()

    def retire(self, ring: str, key_id: str) -> None:
        with self._changing():
            state = self._ring(ring)
            if key_id == state.current:
                raise Conflict(f"{key_id!r} is the current key of ring {ring!r}; rotate before retiring it")
            if key_id not in state.keys:
                if key_id in state.retired:
                    return
                raise NotFound(f"ring {ring!r} holds no key {key_id!r}")
            del state.keys[key_id]
            state.retired.add(key_id)
            entry = self._raw["rings"][ring]
            del entry["keys"][key_id]
            entry["retired"] = sorted(state.retired)
            # Wrapped keys under a destroyed KEK cannot be opened by anyone: their
            # shred-register entries are no longer needed.
            prefix_free = {d for d in state.shredded if not d.startswith(f"{key_id}:")}
            state.shredded = prefix_free
            entry["shredded"] = sorted(state.shredded)
            self._save()

    def shred(self, ring: str, wrapped: Iterable[WrappedKey]) -> None:
        with self._changing():
            state = self._ring(ring)
            digests = {_register_entry(w) for w in wrapped}
            if digests <= state.shredded:
                return
            state.shredded |= digests
            self._raw["rings"][ring]["shredded"] = sorted(state.shredded)
            self._save()

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self.path)!r}, rings={sorted(self._rings)!r})"


def _register_entry(wrapped: WrappedKey) -> str:
    """How the shred register names a wrapped key: its KEK version, so retiring the KEK prunes it."""
    return f"{wrapped.key_id}:{wrapped_key_digest(wrapped)}"


def _bind(ring: str, key_id: str, aad: bytes) -> bytes:
    """The associated data of a wrap: the ring and KEK version, then the caller's binding."""
    head = f"rempart/wrapped-key/v1\x00{ring}\x00{key_id}\x00".encode()
    return head + aad
