"""Find or start the PostgreSQL server the tests use, and hand out isolated databases.

Order of preference:
1. ``$REMPART_TEST_PG_DSN`` (default ``postgresql://postgres@127.0.0.1:5432/test``) if it answers;
2. a throwaway server started from the installed PostgreSQL binaries, removed at exit;
3. otherwise tests that need PostgreSQL are skipped with the reason, unless
   ``REMPART_REQUIRE_POSTGRES=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg.conninfo import conninfo_to_dict

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


class PostgresUnavailable(Exception):
    pass


def _answers(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _find_binaries() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_throwaway(bindir: str) -> str:
    """initdb + pg_ctl start in a temporary folder; as root, run them as ``postgres``."""
    root = tempfile.mkdtemp(prefix="rempart-pg-")
    datadir = os.path.join(root, "data")
    port = _free_port()
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*prefix, f"{bindir}/initdb", "-D", datadir, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            f"{bindir}/pg_ctl",
            "-D",
            datadir,
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=on",
            "-l",
            os.path.join(root, "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )

    def stop() -> None:
        subprocess.run(
            [*prefix, f"{bindir}/pg_ctl", "-D", datadir, "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    for _ in range(50):
        if _answers(dsn):
            return dsn
        time.sleep(0.1)
    raise PostgresUnavailable(f"started a throwaway PostgreSQL on port {port} but it does not answer")


_server_dsn: str | None = None
_server_error: str | None = None


def server_dsn() -> str:
    """The DSN of a reachable server (cached), or raise PostgresUnavailable with the reason."""
    global _server_dsn, _server_error
    if _server_dsn:
        return _server_dsn
    if _server_error:
        raise PostgresUnavailable(_server_error)
    dsn = os.environ.get("REMPART_TEST_PG_DSN", DEFAULT_DSN)
    if _answers(dsn):
        _server_dsn = dsn
        return dsn
    bindir = _find_binaries()
    if bindir is None:
        _server_error = f"no PostgreSQL answers at {dsn} and no PostgreSQL binaries are installed"
        raise PostgresUnavailable(_server_error)
    try:
        _server_dsn = _start_throwaway(bindir)
    except (subprocess.CalledProcessError, OSError, PostgresUnavailable) as exc:
        _server_error = f"no PostgreSQL answers at {dsn} and starting one failed: {exc}"
        raise PostgresUnavailable(_server_error) from exc
    return _server_dsn


def dsn_for_database(name: str) -> str:
    """A ``postgresql://`` URL for database ``name`` on the test server."""
    params = conninfo_to_dict(server_dsn())
    user = params.get("user") or "postgres"
    host = params.get("host") or "127.0.0.1"
    port = params.get("port") or "5432"
    return f"postgresql://{user}@{host}:{port}/{name}"


@contextmanager
def fresh_database(prefix: str = "rempart_t") -> Iterator[str]:
    """Create an empty database for one test and drop it afterwards; yields its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = server_dsn()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield dsn_for_database(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
