"""The auditor's mirror against real logs exported as tlog-tiles folders."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from rempart.audit.mirror import LogTrust, Mirror, compare_checkpoints
from rempart.clock import ManualClock
from rempart.errors import ConfigurationError, InvalidInput, VerificationFailed
from rempart.log import TransparencyLog, open_log
from rempart.log.export import export_tiles
from rempart.log.serving import LogReadPath
from rempart.log.source import DirectorySource
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.cosignature import Cosigner
from rempart.tlog.note import Note, Signer
from tests.unit.audit.harness import rempart
from tests.unit.test_db_threads import open_files

ORIGIN = "example.com/log"
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class CountingSource(DirectorySource):
    """A real folder source that also remembers what was fetched."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.fetched: list[str] = []

    def fetch(self, path: str) -> bytes:
        self.fetched.append(path)
        return super().fetch(path)

    def bundles(self) -> list[str]:
        return [p for p in self.fetched if p.startswith("tile/entries/")]


class Exported:
    """A log and the folder its read path is exported to."""

    def __init__(self, log: TransparencyLog, folder: Path, tag: bytes = b"") -> None:
        self.log = log
        self.folder = folder
        self.tag = tag

    def grow_to(self, size: int) -> bytes:
        self.log.append_many([self.entry(i) for i in range(self.log.size, size)])
        self.log.publish_checkpoint()
        export_tiles(LogReadPath(self.log.storage), self.folder)
        return (self.folder / "checkpoint").read_bytes()

    def entry(self, i: int) -> bytes:
        return b"%sentry %d" % (self.tag, i)

    def source(self) -> CountingSource:
        return CountingSource(self.folder)


@pytest.fixture
def signer() -> Signer:
    return Signer.generate(ORIGIN)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def honest(tmp_path: Path, signer: Signer) -> Iterator[Exported]:
    with open_log(f"sqlite:///{tmp_path / 'log.db'}", signer, checkpoint_interval=3600) as log:
        yield Exported(log, tmp_path / "tiles")


@pytest.fixture
def forked(tmp_path: Path, signer: Signer) -> Iterator[Exported]:
    with open_log(f"sqlite:///{tmp_path / 'fork.db'}", signer, checkpoint_interval=3600) as log:
        yield Exported(log, tmp_path / "fork-tiles", b"forked ")


@pytest.fixture
def mirror(tmp_path: Path, signer: Signer, clock: ManualClock) -> Iterator[Mirror]:
    with Mirror(tmp_path / "state", trust=LogTrust(origin=ORIGIN, log=signer.verifier()), clock=clock) as m:
        yield m


def root_of(note: bytes) -> str:
    return Checkpoint.parse(Note.parse(note).text).root.hex()


def test_syncs_fetch_only_what_is_new_and_the_mirror_replays_in_order(
    honest: Exported, mirror: Mirror
) -> None:
    note = honest.grow_to(3)
    source = honest.source()
    report = mirror.sync(source)
    assert (report.size, report.previous_size, report.new_entries, report.cosigned_by) == (3, None, 3, ())
    assert source.bundles() == ["tile/entries/000.p/3"]
    assert (mirror.directory / "checkpoint").read_bytes() == note
    assert list(mirror.entries()) == [(i, honest.entry(i)) for i in range(3)]

    honest.grow_to(300)
    source = honest.source()
    report = mirror.sync(source)
    assert (report.size, report.previous_size, report.new_entries) == (300, 3, 297)
    # The partial bundle the last sync ended in is read again, now full; then the new partial one.
    assert source.bundles() == ["tile/entries/000", "tile/entries/001.p/44"]

    honest.grow_to(600)
    source = honest.source()
    report = mirror.sync(source)
    assert (report.size, report.previous_size, report.new_entries) == (600, 300, 300)
    assert source.bundles() == ["tile/entries/001", "tile/entries/002.p/88"]
    assert list(mirror.entries()) == [(i, honest.entry(i)) for i in range(600)]
    assert list(mirror.entries(255, 258)) == [(i, honest.entry(i)) for i in range(255, 258)]

    source = honest.source()
    again = mirror.sync(source)
    assert (again.size, again.previous_size, again.new_entries) == (600, 600, 0)
    assert source.bundles() == []
    assert not (mirror.directory / "evidence").exists()


def test_a_deleted_partial_tile_is_read_from_the_full_tile(
    honest: Exported, mirror: Mirror, tmp_path: Path
) -> None:
    at_300 = honest.grow_to(300)
    honest.grow_to(600)
    # A CDN that still serves the size-300 checkpoint but dropped its partial tiles.
    (honest.folder / "checkpoint").write_bytes(at_300)
    (honest.folder / "tile/entries/001.p/44").unlink()
    (honest.folder / "tile/0/001.p/44").unlink()
    source = honest.source()
    assert mirror.sync(source).size == 300
    assert source.fetched[-4:] == [
        "tile/entries/001.p/44",
        "tile/entries/001",
        "tile/0/001.p/44",
        "tile/0/001",
    ]
    assert list(mirror.entries()) == [(i, honest.entry(i)) for i in range(300)]


def evidence_of(mirror: Mirror) -> tuple[Path, dict[str, object]]:
    folders = sorted((mirror.directory / "evidence").iterdir())
    assert len(folders) == 1
    return folders[0], json.loads((folders[0] / "report.json").read_text())


def test_a_rollback_is_reported_and_the_good_state_kept(
    honest: Exported, mirror: Mirror, tmp_path: Path
) -> None:
    at_300 = honest.grow_to(300)
    older = tmp_path / "older"
    shutil.copytree(honest.folder, older)
    at_600 = honest.grow_to(600)
    mirror.sync(honest.source())
    with pytest.raises(VerificationFailed) as caught:
        mirror.sync(CountingSource(older))
    assert caught.value.message == (
        f"rollback: the log now shows size 300 (root {root_of(at_300)}), smaller than the size 600 "
        f"(root {root_of(at_600)}) verified before"
    )
    folder, report = evidence_of(mirror)
    assert folder.name == "20260301T120000.000000Z-rollback"
    assert caught.value.details == {
        "old_size": 600,
        "old_root": root_of(at_600),
        "new_size": 300,
        "new_root": root_of(at_300),
        "evidence": str(folder),
    }
    assert (folder / "previous-checkpoint").read_bytes() == at_600
    assert (folder / "served-checkpoint").read_bytes() == at_300
    assert report["kind"] == "rollback" and report["message"] == caught.value.message
    state = mirror.state
    assert state is not None and (state.size, state.note) == (600, at_600)
    assert (mirror.directory / "checkpoint").read_bytes() == at_600


def test_a_fork_at_the_same_size_is_reported(honest: Exported, forked: Exported, mirror: Mirror) -> None:
    good = honest.grow_to(5)
    bad = forked.grow_to(5)
    mirror.sync(honest.source())
    with pytest.raises(VerificationFailed) as caught:
        mirror.sync(forked.source())
    assert caught.value.message == (
        f"fork: two signed checkpoints of size 5 with different roots: {root_of(good)} (verified before) "
        f"and {root_of(bad)} (served now)"
    )
    folder, _ = evidence_of(mirror)
    assert (folder / "served-checkpoint").read_bytes() == bad
    assert mirror.size == 5 and list(mirror.entries()) == [(i, honest.entry(i)) for i in range(5)]


def test_a_fork_to_a_larger_tree_fails_the_consistency_proof(
    honest: Exported, forked: Exported, mirror: Mirror
) -> None:
    good = honest.grow_to(300)
    bad = forked.grow_to(520)
    mirror.sync(honest.source())
    with pytest.raises(VerificationFailed) as caught:
        mirror.sync(forked.source())
    assert caught.value.message.startswith(
        f"fork: the checkpoint of size 520 (root {root_of(bad)}) is not consistent with the checkpoint of "
        f"size 300 (root {root_of(good)}) verified before: consistency proof 300→520 implies old root "
    )
    folder, report = evidence_of(mirror)
    kept = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert kept == [
        "consistency-proof",
        "previous-checkpoint",
        "report.json",
        "served-checkpoint",
        "tile/0/001",
        "tile/0/002.p/8",
        "tile/1/000.p/2",
    ]
    assert (folder / "consistency-proof").read_text().startswith("consistency 300 520\n")
    assert (folder / "tile/0/001").read_bytes() == (forked.folder / "tile/0/001").read_bytes()
    assert report["details"] == {k: v for k, v in caught.value.details.items() if k != "evidence"}
    assert mirror.size == 300


def test_a_checkpoint_below_the_witness_threshold_is_refused_and_kept(
    honest: Exported, signer: Signer, clock: ManualClock, tmp_path: Path
) -> None:
    note = honest.grow_to(3)
    witnesses = (Cosigner.generate("w.example/1").verifier(), Cosigner.generate("w.example/2").verifier())
    trust = LogTrust(origin=ORIGIN, log=signer.verifier(), witnesses=witnesses, threshold=1)
    with Mirror(tmp_path / "state", trust=trust, clock=clock) as mirror:
        with pytest.raises(VerificationFailed) as caught:
            mirror.sync(honest.source())
        assert caught.value.message == (
            f"the checkpoint of size 3 (root {root_of(note)}) is signed by the log but not witnessed enough: "
            "checkpoint has 0 of the 1 required cosignatures from 2 known witnesses; "
            "missing: w.example/1, w.example/2"
        )
        folder, _ = evidence_of(mirror)
        assert folder.name.endswith("-below-threshold")
        assert (folder / "served-checkpoint").read_bytes() == note
        assert mirror.state is None


def test_a_checkpoint_signed_by_another_key_is_refused(
    honest: Exported, clock: ManualClock, tmp_path: Path
) -> None:
    honest.grow_to(3)
    other = Signer.generate(ORIGIN)
    with Mirror(
        tmp_path / "state", trust=LogTrust(origin=ORIGIN, log=other.verifier()), clock=clock
    ) as mirror:
        with pytest.raises(VerificationFailed) as caught:
            mirror.sync(honest.source())
        assert caught.value.message.startswith(
            "the served checkpoint does not verify: no signature from a known key"
        )
        assert mirror.state is None and not (mirror.directory / "evidence").exists()


def test_a_state_folder_holds_one_log(honest: Exported, mirror: Mirror, clock: ManualClock) -> None:
    honest.grow_to(1)
    mirror.sync(honest.source())
    other = Signer.generate("other.example/log")
    with pytest.raises(ConfigurationError) as caught:
        Mirror(
            mirror.directory, trust=LogTrust(origin="other.example/log", log=other.verifier()), clock=clock
        )
    assert caught.value.message == (
        f"the mirror in {mirror.directory} holds log 'example.com/log', not 'other.example/log'; "
        "use another --state folder"
    )


def test_the_threshold_must_fit_the_witnesses(signer: Signer) -> None:
    with pytest.raises(
        InvalidInput, match=r"^witness threshold 1 is not in 0..0 \(the number of witness keys given\)$"
    ):
        LogTrust(origin=ORIGIN, log=signer.verifier(), threshold=1)


class TestCompareCheckpoints:
    def test_a_prefix_is_consistent(self, honest: Exported, signer: Signer) -> None:
        small = honest.grow_to(3)
        large = honest.grow_to(300)
        trust = LogTrust(origin=ORIGIN, log=signer.verifier())
        result = compare_checkpoints(large, small, trust=trust, tiles=honest.source())
        assert (result.older.size, result.newer.size) == (3, 300)
        assert compare_checkpoints(small, small, trust=trust).older.size == 3

    def test_same_size_different_roots_is_a_split_view(
        self, honest: Exported, forked: Exported, signer: Signer
    ) -> None:
        good, bad = honest.grow_to(4), forked.grow_to(4)
        with pytest.raises(VerificationFailed) as caught:
            compare_checkpoints(good, bad, trust=LogTrust(origin=ORIGIN, log=signer.verifier()))
        assert caught.value.message == (
            "split view: two signed checkpoints of size 4 with different roots "
            f"{root_of(good)} and {root_of(bad)}"
        )

    def test_an_inconsistent_pair_is_a_split_view(
        self, honest: Exported, forked: Exported, signer: Signer
    ) -> None:
        good, bad = honest.grow_to(300), forked.grow_to(301)
        with pytest.raises(VerificationFailed) as caught:
            compare_checkpoints(
                good, bad, trust=LogTrust(origin=ORIGIN, log=signer.verifier()), tiles=forked.source()
            )
        assert caught.value.message.startswith(
            f"split view: the signed checkpoint of size 300 (root {root_of(good)}) is not a prefix of the "
            f"signed checkpoint of size 301 (root {root_of(bad)}): consistency proof 300→301 implies old root"
        )
        assert caught.value.details == {
            "old_size": 300,
            "old_root": root_of(good),
            "new_size": 301,
            "new_root": root_of(bad),
        }

    def test_tiles_must_serve_the_larger_tree(
        self, honest: Exported, forked: Exported, signer: Signer
    ) -> None:
        good, bad = honest.grow_to(300), forked.grow_to(301)
        trust = LogTrust(origin=ORIGIN, log=signer.verifier())
        with pytest.raises(InvalidInput) as caught:
            compare_checkpoints(good, bad, trust=trust, tiles=honest.source())
        assert caught.value.message == (
            f"the tiles given do not serve a tree of size 301: tile/0/001 not found under {honest.folder}"
        )
        with pytest.raises(InvalidInput, match=r"^checkpoints of sizes 300 and 301 differ in size: tiles of"):
            compare_checkpoints(good, bad, trust=trust)


def test_the_cli_syncs_and_exits_1_on_a_fork(
    honest: Exported, forked: Exported, signer: Signer, tmp_path: Path
) -> None:
    honest.grow_to(300)
    forked.grow_to(300)
    state = tmp_path / "cli-state"
    args = ["--vkey", signer.vkey(), "--state", str(state)]
    first = rempart("audit", "sync", str(honest.folder), *args, "--json")
    assert json.loads(first.stdout) == {
        "verified": True,
        "origin": ORIGIN,
        "size": 300,
        "root": Note.parse((honest.folder / "checkpoint").read_bytes()).text.split("\n")[2],
        "previous_size": None,
        "new_entries": 300,
        "cosigned_by": [],
    }
    bad = rempart("audit", "sync", str(forked.folder), *args, check=False)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error (verification_failed): fork: two signed checkpoints of size 300")
    assert "  evidence: " in bad.stderr
    compared = rempart(
        "audit",
        "compare",
        str(honest.folder / "checkpoint"),
        str(forked.folder / "checkpoint"),
        "--vkey",
        signer.vkey(),
        check=False,
    )
    assert compared.returncode == 1
    assert compared.stderr.startswith(
        "error (verification_failed): split view: two signed checkpoints of size 300"
    )


def old_mirror(
    honest: Exported, state: Path, signer: Signer, clock: ManualClock, size: int, missing: int = -1
) -> LogTrust:
    """A mirror of ``size`` entries as laid out before ``mirror-0002`` (a row per entry), less ``missing``."""
    honest.grow_to(size)
    trust = LogTrust(origin=ORIGIN, log=signer.verifier())
    with Mirror(state, trust=trust, clock=clock) as mirror:
        mirror.sync(honest.source())
        with mirror.database.transaction() as tx:
            tx.execute("CREATE TABLE mirror_entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
            tx.executemany(
                "INSERT INTO mirror_entries (idx, data) VALUES (?, ?)",
                [(i, honest.entry(i)) for i in range(size) if i != missing],
            )
            tx.execute("DELETE FROM mirror_bundles")
    return trust


def test_a_mirror_of_one_row_per_entry_is_bundled_when_opened(
    honest: Exported, tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    """A mirror written before ``mirror-0002`` keeps its verified entries, now as bundles."""
    trust = old_mirror(honest, tmp_path / "state", signer, clock, 300)
    with Mirror(tmp_path / "state", trust=trust, clock=clock) as mirror:
        assert list(mirror.entries()) == [(i, honest.entry(i)) for i in range(300)]
        assert mirror.database.query_all("SELECT tile, count FROM mirror_bundles ORDER BY tile") == [
            (0, 256),
            (1, 44),
        ]
        tables = mirror.database.query_all("SELECT name FROM sqlite_master WHERE name = 'mirror_entries'")
        assert tables == []
        honest.grow_to(600)
        assert mirror.sync(honest.source()).new_entries == 300  # and it goes on from there
        assert list(mirror.entries(295, 305)) == [(i, honest.entry(i)) for i in range(295, 305)]


def test_entries_after_a_gap_in_an_old_mirror_are_not_moved_down(
    honest: Exported, tmp_path: Path, signer: Signer, clock: ManualClock
) -> None:
    trust = old_mirror(honest, tmp_path / "state", signer, clock, 10, missing=4)
    with Mirror(tmp_path / "state", trust=trust, clock=clock) as mirror:
        assert list(mirror.entries(0, 4)) == [(i, honest.entry(i)) for i in range(4)]
        with pytest.raises(VerificationFailed, match=r"lacks entries in \[0, 10\): its database was altered"):
            list(mirror.entries())


def test_the_mirror_keeps_a_rollback_journal(mirror: Mirror) -> None:
    """A sync appends the whole log in bulk: no write-ahead log writing every page twice."""
    assert mirror.database.query_all("PRAGMA journal_mode") == [("delete",)]


def test_bundles_are_kept_as_checksummed_zstandard_frames(honest: Exported, mirror: Mirror) -> None:
    honest.grow_to(300)
    mirror.sync(honest.source())
    rows = mirror.database.query_all("SELECT tile, count, codec, data FROM mirror_bundles ORDER BY tile")
    assert [(tile, count, codec) for tile, count, codec, _ in rows] == [(0, 256, "zstd"), (1, 44, "zstd")]
    served = honest.source().fetch("tile/entries/000")
    assert zstandard.ZstdDecompressor().decompress(rows[0][3]) == served
    assert zstandard.get_frame_parameters(rows[0][3]).has_checksum
    assert len(rows[0][3]) < len(served) / 4


@pytest.mark.parametrize(
    ("codec", "data"),
    [
        ("zstd", b"not a zstandard frame"),
        ("zstd", "flipped"),  # a frame whose checksum no longer matches
        ("zstd", "too big"),  # a frame that says it holds more than any bundle can
        ("lz4", "as served"),
        ("none", 42),
    ],
    ids=["garbage", "checksum", "oversized", "unknown codec", "not bytes"],
)
def test_a_stored_bundle_that_no_sync_wrote_is_an_altered_mirror(
    honest: Exported, mirror: Mirror, codec: str, data: object
) -> None:
    honest.grow_to(300)
    mirror.sync(honest.source())
    served = honest.source().fetch("tile/entries/000")
    if data == "flipped":
        frame = bytearray(zstandard.ZstdCompressor(level=1, write_checksum=True).compress(served))
        frame[-1] ^= 1
        data = bytes(frame)
    elif data == "too big":
        data = zstandard.ZstdCompressor(level=1).compress(bytes(256 * 65_538))
    elif data == "as served":
        data = served
    with mirror.database.transaction() as tx:
        tx.execute("UPDATE mirror_bundles SET codec = ?, data = ? WHERE tile = 0", (codec, data))
    assert list(mirror.entries(256, 300)) == [(i, honest.entry(i)) for i in range(256, 300)]
    with pytest.raises(VerificationFailed, match=r"lacks entries in \[0, 300\): its database was altered"):
        list(mirror.entries())


def test_bundles_stored_before_compression_are_still_read(honest: Exported, mirror: Mirror) -> None:
    honest.grow_to(300)
    mirror.sync(honest.source())
    served = honest.source().fetch("tile/entries/000")
    with mirror.database.transaction() as tx:
        tx.execute("UPDATE mirror_bundles SET codec = 'none', data = ? WHERE tile = 0", (served,))
    assert list(mirror.entries()) == [(i, honest.entry(i)) for i in range(300)]


def test_syncs_leave_no_database_connection_behind(honest: Exported, mirror: Mirror) -> None:
    """Each sync stores bundles on a thread of its own, which closes its connection when done."""
    path = mirror.directory / "mirror.db"
    honest.grow_to(10)
    mirror.sync(honest.source())
    before = open_files(path)
    for size in (300, 600, 900):
        honest.grow_to(size)
        mirror.sync(honest.source())
    assert open_files(path) == before
