"""Where a verifier reads a tiled log from: a URL prefix or a directory laid out as tlog-tiles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import httpx

from rempart.errors import InvalidInput, NotFound, StorageUnavailable

__all__ = ["DirectorySource", "HttpSource", "TileSource", "open_source"]


class TileSource(Protocol):
    def fetch(self, path: str) -> bytes:
        """The bytes at ``path`` (``checkpoint``, ``tile/…``); NotFound if absent."""
        ...

    def close(self) -> None: ...


class DirectorySource:
    """A tlog-tiles layout in a local folder (``rempart log export`` writes one)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise InvalidInput(f"{self.root} is not a directory")
        self._prefix = str(self.root.resolve()) + os.sep

    def fetch(self, path: str) -> bytes:
        # Checked by its words, not by resolving it: an auditor's sync reads thousands of tiles.
        parts = path.split("/")
        if "\\" in path or "\0" in path or any(p in ("", ".", "..") for p in parts):
            raise InvalidInput(f"path {path!r} is not a relative path inside {self.root}")
        target = self._prefix + os.sep.join(parts)
        try:
            with open(target, "rb") as file:
                return file.read()
        except FileNotFoundError as exc:
            raise NotFound(f"{path} not found under {self.root}") from exc
        except OSError as exc:
            raise StorageUnavailable(f"reading {target}: {exc}") from exc

    def close(self) -> None:
        pass


class HttpSource:
    def __init__(self, prefix: str, *, timeout: float = 30.0) -> None:
        self.prefix = prefix.rstrip("/") + "/"
        self._client = httpx.Client(
            timeout=timeout, headers={"Accept-Encoding": "gzip, identity"}, follow_redirects=True
        )

    def fetch(self, path: str) -> bytes:
        url = self.prefix + path
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"GET {url}: {exc}") from exc
        if response.status_code == 404:
            raise NotFound(f"GET {url}: 404")
        if response.status_code != 200:
            raise StorageUnavailable(f"GET {url}: HTTP {response.status_code}")
        return response.content

    def close(self) -> None:
        self._client.close()


def open_source(spec: str) -> TileSource:
    if spec.startswith(("http://", "https://")):
        return HttpSource(spec)
    return DirectorySource(Path(spec))
