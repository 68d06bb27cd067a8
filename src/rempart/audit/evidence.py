"""Evidence an auditor keeps when a log misbehaves: the signed statements and the data that contradict.

Each finding gets its own folder ``<state>/evidence/<UTC time>-<kind>/`` with
the files exactly as they were served (signed checkpoints, proofs, tiles) and a
``report.json`` that says what was found, with the sizes and hashes involved.
Nothing is ever overwritten: a second finding in the same microsecond gets a
suffix. Anyone can re-check the files later with their own tools.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.audit._files import write_file
from rempart.clock import Clock, format_time
from rempart.errors import InvalidInput, StorageUnavailable

__all__ = ["EvidenceLocker", "EvidenceRecord"]


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One finding's folder and the names of the files kept in it."""

    folder: Path
    files: tuple[str, ...]


def _safe(name: str) -> str:
    """A relative path inside the evidence folder (tile paths keep their slashes)."""
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        raise InvalidInput(f"evidence file name {name!r} is not a plain relative path")
    return name


class EvidenceLocker:
    """Writes findings under ``<directory>/evidence/``; the time of each comes from ``clock``."""

    def __init__(self, directory: Path, *, clock: Clock) -> None:
        self.root = Path(directory) / "evidence"
        self.clock = clock

    def keep(
        self,
        kind: str,
        *,
        message: str,
        details: Mapping[str, Any],
        files: Mapping[str, bytes],
    ) -> EvidenceRecord:
        """Write ``files`` and ``report.json`` into a new folder; return where they are."""
        when = format_time(self.clock.now())
        stamp = when.replace("-", "").replace(":", "")
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            folder = self.root / f"{stamp}-{kind}"
            n = 1
            while True:
                try:
                    folder.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    folder = self.root / f"{stamp}-{kind}-{n}"
            names = []
            for name, data in files.items():
                write_file(folder / _safe(name), data)
                names.append(name)
            report = {
                "kind": kind,
                "time": when,
                "message": message,
                "details": dict(details),
                "files": names,
            }
            write_file(
                folder / "report.json",
                (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode(),
            )
        except (OSError, StorageUnavailable) as exc:
            raise StorageUnavailable(f"could not keep evidence under {self.root}: {exc}") from exc
        return EvidenceRecord(folder, (*names, "report.json"))
