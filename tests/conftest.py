"""Shared pytest fixtures."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from doubles import FakeBotApi
from doubles.feed_server import FeedServer
from hypothesis import HealthCheck, settings

from bot.store import SqlStore, open_store

# Property tests: no deadline (a busy CI machine is slow, and that is not a failure); fixtures such as the Bot API
# double are deliberately shared by all the examples of a test. Examples that failed are kept in .hypothesis/
# (git-ignored) and tried first next time.
settings.register_profile("hk-ai-pulse", deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                                 HealthCheck.data_too_large])
settings.load_profile("hk-ai-pulse")

# ---------------------------------------------------------------------------------------------------- Bot API


@pytest.fixture
async def fake() -> AsyncIterator[FakeBotApi]:
    """A started Bot API double (tests/doubles/fake_bot_api.py) on a free local port."""
    async with FakeBotApi() as server:
        yield server


# ---------------------------------------------------------------------------------------------------- databases

PG_UNAVAILABLE = "PostgreSQL not available: set DATABASE_URL_TEST or install postgresql"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file of the test's own (created on first open)."""
    return f"sqlite:///{tmp_path / 'store' / 'bot.sqlite3'}"


@pytest.fixture
async def feeds() -> AsyncIterator[FeedServer]:
    """The local feed server (official sources' feeds and their faults), on 127.0.0.1."""
    server = FeedServer()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[SqlStore]:
    """An open, migrated store on the test's own SQLite file."""
    opened = await open_store(sqlite_url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL database for the session: $DATABASE_URL_TEST, else a throwaway local server."""
    configured = os.environ.get("DATABASE_URL_TEST")
    if configured:
        _check_reachable(configured)
        yield configured
        return
    bindir = _postgres_bindir()
    if bindir is None:
        _unavailable(PG_UNAVAILABLE)
    server = _ThrowawayPostgres(bindir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_db_url(postgres_url: str) -> Iterator[str]:
    """A fresh, empty schema for one test (far faster than CREATE DATABASE), dropped afterwards."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield _with_search_path(postgres_url, schema)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _unavailable(reason: str) -> NoReturn:
    # CI must prove the PostgreSQL backend; a skip there would hide that it never ran.
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the PostgreSQL tests may not be skipped)", pytrace=False)
    pytest.skip(reason)


def _check_reachable(url: str) -> None:
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        pytest.fail(f"DATABASE_URL_TEST is set but PostgreSQL cannot be reached: {exc}", pytrace=False)


def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["options"] = f"{query.get('options', '')} -c search_path={schema}".strip()
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def _postgres_bindir() -> Path | None:
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl and shutil.which("initdb"):
        return Path(pg_ctl).resolve().parent
    # Debian keeps the server binaries off PATH, one folder per major version.
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _ThrowawayPostgres:
    """initdb + pg_ctl in a temporary folder, run as a non-root user because PostgreSQL refuses root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="hkaipulse-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                _unavailable(f"{PG_UNAVAILABLE} (running as root and there is no 'postgres' user to run it)")
            self.user = "postgres"
            os.chown(self.root, account.pw_uid, account.pw_gid)

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], user=self.user, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}{tail}")

    def start(self) -> str:
        """Create the cluster, start the server, create the test database; returns its URL."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        # Durability is pointless for a throwaway server, and switching it off makes each test much faster.
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", "60",
                  "-o", options, "start")
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE hkaipulse_test")
        return f"postgresql://postgres@127.0.0.1:{self.port}/hkaipulse_test"

    def stop(self) -> None:
        """Stop the server and remove its files."""
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
