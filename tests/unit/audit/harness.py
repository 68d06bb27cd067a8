"""Real servers for the audit tests: witness processes, ASGI apps in a thread, static tile folders.

Everything listens on 127.0.0.1 on a port the kernel picks, and stops when
its context ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from rempart.errors import NotFound, RempartError
from rempart.log.serving import LogReadPath
from rempart.log.storage import LogStorage

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "from rempart.cli import main; main()"]


def rempart(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the ``rempart`` command line in a child process."""
    result = subprocess.run([*CLI, *args], cwd=REPO, capture_output=True, text=True, timeout=60)
    if check and result.returncode != 0:
        raise AssertionError(f"rempart {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


@dataclass(frozen=True)
class WitnessProcess:
    url: str
    vkey: str
    process: subprocess.Popen[str]


@contextlib.contextmanager
def witness_process(directory: Path, name: str, logs: list[tuple[str, str]]) -> Iterator[WitnessProcess]:
    """``rempart witness init``, ``add-log`` for each (origin, vkey), then ``serve`` on a free port."""
    rempart("witness", "init", "--data-dir", str(directory), "--name", name)
    for origin, vkey in logs:
        rempart("witness", "add-log", "--data-dir", str(directory), "--origin", origin, "--vkey", vkey)
    process = subprocess.Popen(
        [*CLI, "witness", "serve", "--data-dir", str(directory), "--port", "0"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        second = process.stdout.readline()
        if not first.startswith(f"witness {name} listening on http://127.0.0.1:"):
            process.kill()
            _, err = process.communicate(timeout=10)
            raise AssertionError(f"witness did not start: {first!r} {err}")
        url = first.split(" listening on ")[1].strip()
        vkey = second.removeprefix("verifier key: ").strip()
        _wait_for_port(url)
        yield WitnessProcess(url, vkey, process)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate(timeout=10)


def _wait_for_port(url: str) -> None:
    host, port = url.removeprefix("http://").split("/")[0].rsplit(":", 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens at {url}")


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextlib.contextmanager
def asgi_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a thread; yields its base URL."""
    sock = _bound_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def read_path_app(storage: LogStorage) -> Starlette:
    """The log's tlog-tiles read path over HTTP (``GET /checkpoint``, ``GET /tile/…``), as a log serves it."""
    reader = LogReadPath(storage)

    async def get(request: Request) -> Response:
        try:
            resource = reader.get(request.path_params["path"])
        except NotFound as exc:
            return PlainTextResponse(exc.message, status_code=404)
        except RempartError as exc:
            return PlainTextResponse(exc.message, status_code=400)
        return Response(
            resource.body,
            headers={"Content-Type": resource.content_type, "Cache-Control": resource.cache_control},
        )

    return Starlette(routes=[Route("/{path:path}", get)])


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def static_server(directory: Path) -> Iterator[str]:
    """Serve a folder of tiles as a static file server would (a CDN in front of a log)."""
    handler = functools.partial(_QuietHandler, directory=os.fspath(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
