from __future__ import annotations

import pytest

from rempart.errors import InvalidInput, NotFound, VerificationFailed
from rempart.log.memory import MemoryLogStorage
from rempart.log.serving import LogReadPath
from rempart.log.storage import StoredCheckpoint
from rempart.tlog.merkle import leaf_hash, tree_root
from rempart.tlog.tiles import (
    TileHashReader,
    TilePath,
    decode_entry_bundle,
    encode_entry_bundle,
    entry_bundles_for_size,
    hash_tiles_for_size,
)
from rempart.tlog.tiletree import TiledTree
from rempart.tlog.verify import verify_tiles


@pytest.mark.parametrize(
    ("path", "tile"),
    [
        ("tile/0/000", TilePath(0, 0)),
        ("tile/0/x001/x234/067", TilePath(0, 1234067)),
        ("tile/0/x001/x234/067.p/8", TilePath(0, 1234067, 8)),
        ("tile/3/x001/000", TilePath(3, 1000)),
        ("tile/entries/x001/000.p/255", TilePath(None, 1000, 255)),
        ("tile/63/999", TilePath(63, 999)),
    ],
)
def test_tile_paths_round_trip(path: str, tile: TilePath) -> None:
    assert TilePath.parse(path) == tile
    assert tile.path() == path


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tile/00/000", "bad tile level"),
        ("tile/64/000", "bad tile level"),
        ("tile/-1/000", "bad tile level"),
        ("tile/0/1", "bad index element"),
        ("tile/0/x001", "bad index element"),
        ("tile/0/001/002", "bad index element"),
        ("tile/0/x000/001", "leading zero group"),
        ("tile/0/000.p/256", "bad partial width"),
        ("tile/0/000.p/0", "bad partial width"),
        ("tile/0/000.p/08", "bad partial width"),
        ("tile/entries", "not a tile path"),
        ("tiles/0/000", "not a tile path"),
        ("tile/0/.p/5", "bad index element"),
        ("tile/0/0a0", "bad index element"),
    ],
)
def test_bad_tile_paths_are_refused(path: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TilePath.parse(path)


def test_tiles_for_size_70000_matches_spec_example() -> None:
    tiles = list(hash_tiles_for_size(70_000))
    level0 = [t for t in tiles if t.level == 0]
    assert len([t for t in level0 if t.is_full]) == 273
    assert [t.width for t in level0 if not t.is_full] == [112]
    assert [(t.level, t.index, t.width) for t in tiles if t.level == 1] == [(1, 0, 256), (1, 1, 17)]
    assert [(t.level, t.index, t.width) for t in tiles if t.level == 2] == [(2, 0, 1)]
    assert [t.width for t in hash_tiles_for_size(256)] == [256, 1]
    assert len(list(entry_bundles_for_size(70_000))) == 274


def test_entry_bundles() -> None:
    entries = [b"", b"a", b"x" * 65535]
    assert decode_entry_bundle(encode_entry_bundle(entries), 3) == entries
    with pytest.raises(InvalidInput, match="exceeds 65535"):
        encode_entry_bundle([b"x" * 65536])
    with pytest.raises(VerificationFailed, match="holds 3 entries, expected 2"):
        decode_entry_bundle(encode_entry_bundle(entries), 2)
    with pytest.raises(VerificationFailed, match="truncated"):
        decode_entry_bundle(encode_entry_bundle(entries)[:-1], 3)


def served_log(size: int) -> tuple[LogReadPath, TiledTree]:
    storage = MemoryLogStorage()
    frontier = TiledTree.empty()
    entries = [f"entry {i}".encode() for i in range(size)]
    storage.append(0, entries, frontier.extend([leaf_hash(e) for e in entries]))
    storage.put_checkpoint(StoredCheckpoint(size, b"unsigned test checkpoint\n"))
    return LogReadPath(storage), frontier


@pytest.mark.parametrize("size", [0, 1, 2, 255, 256, 257, 511, 65536, 65536 + 256 * 3 + 7])
def test_verify_tiles_recomputes_the_root(size: int) -> None:
    reader, frontier = served_log(size)
    seen: list[int] = []
    result = verify_tiles(
        size,
        frontier.root(),
        lambda t: reader.get(t.path()).body,
        on_entries=lambda first, entries: seen.extend(range(first, first + len(entries))),
    )
    assert result.root == frontier.root()
    assert seen == list(range(size))
    if size:
        tiles = TileHashReader(size, lambda t: reader.get(t.path()).body)
        assert tree_root(size, tiles) == frontier.root()
        assert tree_root(size // 2 or 1, tiles) == tree_root(size // 2 or 1, reader.storage)


def test_verify_tiles_names_the_tampered_tile() -> None:
    reader, frontier = served_log(600)

    def fetch(t: TilePath) -> bytes:
        body = reader.get(t.path()).body
        if t.path() == "tile/0/001":
            return body[:40] + bytes([body[40] ^ 1]) + body[41:]
        return body

    with pytest.raises(VerificationFailed, match="tile/0/001 does not match"):
        verify_tiles(600, frontier.root(), fetch)

    def fetch_entries(t: TilePath) -> bytes:
        body = reader.get(t.path()).body
        if t.path() == "tile/entries/002.p/88":
            return body.replace(b"entry 599", b"entry 5X9")
        return body

    with pytest.raises(VerificationFailed, match="tile/0/002.p/88 does not match"):
        verify_tiles(600, frontier.root(), fetch_entries)
    with pytest.raises(VerificationFailed, match="checkpoint says"):
        verify_tiles(600, b"\x00" * 32, lambda t: reader.get(t.path()).body)


def test_read_path_refuses_beyond_checkpoint() -> None:
    reader, _ = served_log(300)
    assert len(reader.get("tile/0/001.p/44").body) == 44 * 32
    with pytest.raises(NotFound, match="beyond the latest checkpoint"):
        reader.get("tile/0/001.p/45")
    with pytest.raises(NotFound, match="beyond the latest checkpoint"):
        reader.get("tile/0/001")
    with pytest.raises(InvalidInput):
        reader.get("tile/zz")
    assert reader.get("tile/1/000.p/1").body == tree_root(256, reader.storage)
    assert reader.get("tile/0/000").cache_control.endswith("immutable")
    assert reader.get("checkpoint").cache_control.startswith("no-cache")
