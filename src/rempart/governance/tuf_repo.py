"""Per-region TUF repositories of approved releases, written as static files.

Layout (consistent snapshots, so every file but ``timestamp.json`` is immutable)::

    <dir>/<region>/metadata/1.root.json … N.root.json, root.json (= the newest)
    <dir>/<region>/metadata/<V>.targets.json, <V>.snapshot.json, timestamp.json
    <dir>/<region>/targets/<kind>/<sha256>.<sha256>      (when the artifact bytes are at hand)

A deploying system points any TUF client at ``<base>/<region>/metadata/`` with
``1.root.json`` as its trust anchor, and asks for target ``<kind>/<sha256 hex>``.
The target exists only while the release is approved (submitter + custodian
threshold) and unrevoked; its ``custom.rempart`` field carries the release's
signed note (submitter and reviewer signatures) so the deployer can check the
custodian signatures with a stock note verifier too. See ADR 0002.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from tuf.api.metadata import (  # type: ignore[attr-defined]
    Metadata,
    MetaFile,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

from rempart.errors import ConfigurationError, InvalidInput, VerificationFailed
from rempart.files import write_atomically
from rempart.governance.releases import Release, ReleaseRegistry
from rempart.governance.rootstore import TrustRootStore
from rempart.governance.trustroot import TrustRoot
from rempart.governance.tuf_keys import NoteKeyTufSigner, verify_tuf_root_signatures
from rempart.tlog.note import Signer

__all__ = [
    "ArtifactSource",
    "DirectoryArtifacts",
    "PublishedRegion",
    "TufLifetimes",
    "TufPublisher",
    "target_path",
]


def target_path(release: Release) -> str:
    """The TUF target path of a release: ``<kind>/<sha256 hex>``."""
    return f"{release.kind.value}/{release.digest.removeprefix('sha256:')}"


class ArtifactSource(Protocol):
    """Where artifact bytes are found by digest, if the registry serves them (else None)."""

    def read(self, digest: str) -> bytes | None: ...


class DirectoryArtifacts:
    """Artifacts kept as files named by their SHA-256 hex digest in one folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self, digest: str) -> bytes | None:
        name = digest.removeprefix("sha256:")
        if len(name) != 64 or not all(c in "0123456789abcdef" for c in name):
            raise InvalidInput(f"digest {digest[:80]!r} is not sha256:<hex>")
        try:
            return (self.path / name).read_bytes()
        except FileNotFoundError:
            return None


@dataclass(frozen=True, slots=True)
class TufLifetimes:
    """How long published metadata stays valid: a deployer's client refuses it after that."""

    targets: timedelta = timedelta(days=7)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        for name in ("targets", "snapshot", "timestamp"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigurationError(f"TUF {name} lifetime must be positive", path=f"tuf.{name}")


@dataclass(frozen=True, slots=True)
class PublishedRegion:
    """What one publication wrote: the metadata version and the target paths."""

    region: str
    version: int
    root_version: int
    targets: tuple[str, ...]
    path: Path


def _write(path: Path, data: bytes) -> None:
    write_atomically(path, data, mode=0o644)  # served to TUF clients by any static file server


class TufPublisher:
    """Publishes each region's approved releases as TUF metadata signed by the online key.

    The root role is the board (its signatures come with each trust root
    version); targets, snapshot and timestamp are signed by the registry's
    online key, which must be the one the trust root in force names.
    """

    def __init__(
        self,
        *,
        releases: ReleaseRegistry,
        trust_roots: TrustRootStore,
        online_key: Signer,
        lifetimes: TufLifetimes | None = None,
        artifacts: ArtifactSource | None = None,
    ) -> None:
        self._releases = releases
        self._trust_roots = trust_roots
        self._online = online_key
        self._tuf_signer = NoteKeyTufSigner(online_key)
        self.lifetimes = lifetimes or TufLifetimes()
        self._artifacts = artifacts
        self._json = JSONSerializer(compact=False)

    def _check_key(self, root: TrustRoot) -> None:
        if self._online.verifier() != root.registry_verifier:
            raise ConfigurationError(
                f"the registry key {self._online.vkey()} is not the one trust root version "
                f"{root.version} names ({root.registry_verifier.vkey()})",
                path="governance.registry_key",
            )

    def _write_roots(self, metadata_dir: Path) -> int:
        previous: TrustRoot | None = None
        newest = b""
        version = 0
        for bundle in self._trust_roots.versions():
            root = bundle.root
            metadata = verify_tuf_root_signatures(previous, root, bundle.tuf_signatures)
            newest = metadata.to_bytes(self._json)
            target = metadata_dir / f"{root.version}.root.json"
            if not target.exists() or target.read_bytes() != newest:
                _write(target, newest)
            previous, version = root, root.version
        if not version:
            raise VerificationFailed("no trust root is installed: nothing to publish")
        _write(metadata_dir / "root.json", newest)
        return version

    def _next_version(self, metadata_dir: Path) -> int:
        current = metadata_dir / "timestamp.json"
        if not current.exists():
            return 1
        try:
            return int(json.loads(current.read_bytes())["signed"]["version"]) + 1
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{current} is not TUF timestamp metadata: {exc}") from exc

    def _target(self, release: Release, targets_dir: Path) -> TargetFile:
        path = target_path(release)
        hexdigest = release.digest.removeprefix("sha256:")
        custom: dict[str, Any] = {
            "rempart": {
                "release": release.id,
                "region": release.region,
                "kind": release.kind.value,
                "name": release.name,
                "submitter": release.submitter,
                "reviewers": [r for r, _ in release.reviews],
                "metadata": dict(release.metadata),
                "signed_note": release.signed_note().decode("utf-8"),
            }
        }
        if self._artifacts is not None:
            data = self._artifacts.read(release.digest)
            if data is not None:
                if len(data) != release.length or hashlib.sha256(data).hexdigest() != hexdigest:
                    raise VerificationFailed(
                        f"the artifact bytes held for {release.digest} do not match release {release.id} "
                        f"(length {len(data)}, expected {release.length})"
                    )
                file = targets_dir / release.kind.value / f"{hexdigest}.{hexdigest}"
                if not file.exists():
                    _write(file, data)
        return TargetFile(release.length, {"sha256": hexdigest}, path, {"custom": custom})

    def publish(self, region: str, directory: Path, *, now: datetime) -> PublishedRegion:
        """Write (or refresh) ``<directory>/<region>``; ``timestamp.json`` is replaced last."""
        root = self._trust_roots.current()
        if region not in root.regions:
            raise InvalidInput(f"region {region!r} is not in trust root version {root.version}")
        self._check_key(root)
        base = Path(directory) / region
        metadata_dir, targets_dir = base / "metadata", base / "targets"
        root_version = self._write_roots(metadata_dir)
        version = self._next_version(metadata_dir)
        targets = {t.path: t for t in (self._target(r, targets_dir) for r in self._releases.approved(region))}
        signed_targets = Metadata(
            Targets(version=version, expires=now + self.lifetimes.targets, targets=targets)
        )
        signed_targets.sign(self._tuf_signer)
        _write(metadata_dir / f"{version}.targets.json", signed_targets.to_bytes(self._json))
        snapshot = Metadata(
            Snapshot(
                version=version,
                expires=now + self.lifetimes.snapshot,
                meta={"targets.json": MetaFile(version)},
            )
        )
        snapshot.sign(self._tuf_signer)
        _write(metadata_dir / f"{version}.snapshot.json", snapshot.to_bytes(self._json))
        timestamp = Metadata(
            Timestamp(
                version=version,
                expires=now + self.lifetimes.timestamp,
                snapshot_meta=MetaFile(version),
            )
        )
        timestamp.sign(self._tuf_signer)
        _write(metadata_dir / "timestamp.json", timestamp.to_bytes(self._json))
        return PublishedRegion(region, version, root_version, tuple(sorted(targets)), base)

    def publish_all(self, directory: Path, *, now: datetime) -> list[PublishedRegion]:
        return [self.publish(region, directory, now=now) for region in self._trust_roots.current().regions]
