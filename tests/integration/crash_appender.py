"""Child process for the crash test: append from several threads and report every acknowledgement.

Usage: python -m tests.integration.crash_appender DATABASE_URL KEY_FILE TAG
Prints ``ACK <index> <leaf hash hex> <entry>`` after each acknowledged append and
``CP <size> <root hex>`` after each published checkpoint, flushing every line,
until it is killed.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from rempart.log import load_signer, open_log
from rempart.log.storage import StoredCheckpoint
from rempart.tlog.checkpoint import Checkpoint
from rempart.tlog.note import Note

_out = threading.Lock()


def say(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main() -> None:
    url, key_file, tag = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    log = open_log(url, load_signer(key_file), checkpoint_interval=0.01)

    def on_checkpoint(stored: StoredCheckpoint) -> None:
        cp = Checkpoint.parse(Note.parse(stored.note).text)
        say(f"CP {cp.size} {cp.root.hex()}")

    log.on_checkpoint(on_checkpoint)

    def worker(w: int) -> None:
        i = 0
        while True:
            entries = [f"{tag}-{w}-{i + k}".encode() for k in range(1 + (i % 7))]
            positions = log.append_many(entries) if len(entries) > 1 else [log.append(entries[0])]
            for entry, p in zip(entries, positions, strict=True):
                say(f"ACK {p.index} {p.leaf_hash.hex()} {entry.decode()}")
            i += len(entries)

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(8)]
    for t in threads:
        t.start()
    say("READY")
    threading.Event().wait()


if __name__ == "__main__":
    main()
