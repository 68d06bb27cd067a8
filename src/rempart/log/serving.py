"""The log's public read path: C2SP tlog-tiles resources and proofs, as bytes.

:class:`LogReadPath` maps a path under ``/log/`` to a response body and its
headers, so the HTTP server only wires it (and a static exporter can write the
same bytes to files for a CDN). Only what the latest published checkpoint
covers is served: clients never see tiles of an unsigned tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from rempart.errors import InvalidInput, NotFound
from rempart.log.storage import LogStorage, StoredCheckpoint
from rempart.tlog.merkle import consistency_proof, inclusion_proof, tree_root
from rempart.tlog.tiles import TILE_HEIGHT, TILE_WIDTH, TilePath, encode_entry_bundle

__all__ = ["LogReadPath", "Resource"]

IMMUTABLE = "public, max-age=31536000, immutable"
MUTABLE = "no-cache, max-age=0"
CHECKPOINT_TYPE = "text/plain; charset=utf-8"
TILE_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Resource:
    body: bytes
    content_type: str
    cache_control: str


class LogReadPath:
    def __init__(self, storage: LogStorage) -> None:
        self.storage = storage

    def checkpoint(self) -> StoredCheckpoint:
        """The latest published checkpoint; NotFound before the first."""
        latest = self.storage.latest_checkpoint()
        if latest is None:
            raise NotFound("the log has not published a checkpoint yet")
        return latest

    def get(self, path: str) -> Resource:
        """``checkpoint``, ``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``."""
        path = path.lstrip("/")
        if path == "checkpoint":
            return Resource(self.checkpoint().note, CHECKPOINT_TYPE, MUTABLE)
        tile = TilePath.parse(path)
        size = self.checkpoint().size
        level = tile.level or 0
        count = size >> (TILE_HEIGHT * level)  # hashes at this tile level the checkpoint covers
        first = tile.index * TILE_WIDTH
        if first + tile.width > count:
            raise NotFound(f"{tile.path()} is beyond the latest checkpoint (size {size})")
        if tile.is_entries:
            body = encode_entry_bundle(self.storage.read_entries(first, first + tile.width))
        else:
            body = b"".join(
                self.storage.read_level(TILE_HEIGHT * level, first, first + tile.width)
            )
        return Resource(body, TILE_TYPE, IMMUTABLE)

    def _check_size(self, size: int) -> None:
        latest = self.checkpoint().size
        if not 0 < size <= latest:
            raise InvalidInput(f"tree size {size} is not in 1..{latest} (the latest checkpoint)")

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        self._check_size(size)
        return inclusion_proof(index, size, self.storage)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        self._check_size(new_size)
        return consistency_proof(old_size, new_size, self.storage)

    def root(self, size: int) -> bytes:
        self._check_size(size)
        return tree_root(size, self.storage)

    def entry(self, index: int) -> bytes:
        size = self.checkpoint().size
        if not 0 <= index < size:
            raise NotFound(f"entry {index} is not in the checkpointed log (size {size})")
        return self.storage.read_entries(index, index + 1)[0]
