"""Real Rempart server processes for the API, CLI and SDK tests.

:func:`rempart_server` starts ``python -m rempart.cli._main serve --port 0``
on a data folder (the demo deployment by default), reads the address it
prints, waits until ``/health`` answers, and on exit sends SIGINT and checks
that it stopped cleanly. :func:`rempart_cli` runs the ``rempart`` command as a
subprocess.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

_ROOT = Path(__file__).resolve().parents[3]
_ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"}
for _name in ("REMPART_SERVER", "REMPART_TOKEN", "REMPART_DATA_DIR", "REMPART_PRINCIPAL", "REMPART_CONFIG"):
    _ENV.pop(_name, None)


@dataclass
class RunningServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    output: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def key(self, principal_id: str) -> Path:
        return self.data_dir / "demo" / "keys" / f"{principal_id.replace(':', '-')}.key"

    def printed(self) -> str:
        return self.output.read_text()


def rempart_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``rempart ARGS`` as a real process; returns its exit code and output."""
    return subprocess.run(
        [sys.executable, "-m", "rempart.cli._main", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**_ENV, **(env or {})},
        cwd=_ROOT,
        check=False,
    )


@contextmanager
def rempart_server(
    data_dir: Path, *extra: str, demo: bool = True, config: Path | None = None
) -> Iterator[RunningServer]:
    where: Sequence[str] = ("--config", str(config)) if config else ("--data-dir", str(data_dir))
    args = [sys.executable, "-m", "rempart.cli._main", "serve", "--port", "0", *where, *extra]
    if demo:
        args.append("--demo")
    data_dir.mkdir(parents=True, exist_ok=True)
    output = data_dir.parent / f"{data_dir.name}-server.out"
    with output.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=_ENV, cwd=_ROOT)
    try:
        url = _wait_for_address(process, output)
        _wait_for_health(url)
        server = RunningServer(url, data_dir, process, output)
        tokens = data_dir / "demo" / "tokens.json"
        if demo and tokens.exists():
            server.tokens = json.loads(tokens.read_text())
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_address(process: subprocess.Popen[bytes], output: Path) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = output.read_text() if output.exists() else ""
        first = text.splitlines()[0] if text.splitlines() else ""
        if first.startswith("rempart listening on http://"):
            return first.split(" listening on ")[1].strip()
        if process.poll() is not None:
            raise AssertionError(f"rempart serve exited with {process.returncode}:\n{text}")
        time.sleep(0.05)
    raise AssertionError(f"rempart serve printed no address in 60 s:\n{output.read_text()}")


def _wait_for_health(url: str) -> None:
    for _ in range(200):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"nothing answers at {url}/health")
