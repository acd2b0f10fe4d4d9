"""A throwaway PostgreSQL server, from the machine's own binaries: for tests, and for
`grassroots chaos --database postgres`, which restarts it under load.

initdb and postgres refuse to run as root, and CI here runs as root: then the server runs as
the `postgres` user (via runuser) in a temp dir it owns. It listens on 127.0.0.1 only, on a
free port, with trust auth. Tests trade durability for speed (no fsync); the chaos suite asks
for a `durable` server, since it checks that nothing acknowledged is lost across a crash.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

from shared.tools.broker import free_port

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_pg_bindir() -> Path:
    """The highest /usr/lib/postgresql/<ver>/bin with initdb, else the folder of initdb on PATH."""
    found = []
    for bindir in Path("/usr/lib/postgresql").glob("*/bin"):
        if (bindir / "initdb").exists() and bindir.parent.name.isdigit():
            found.append((int(bindir.parent.name), bindir))
    if found:
        return max(found)[1]
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("no PostgreSQL server binaries: run scripts/ensure-postgres.sh")


class TempPostgres:
    """A PostgreSQL server in a temp dir; start() it, stop() it (which deletes the dir)."""

    def __init__(self, durable: bool = False) -> None:
        self.bindir = find_pg_bindir()
        self.durable = durable
        self.port = 0
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        """Run a server binary, as `postgres` when we are root; RuntimeError with its output."""
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, cwd=self.dir, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def start(self) -> None:
        """initdb a fresh cluster and start it; a few seconds."""
        self.dir = Path(tempfile.mkdtemp(prefix="grassroots-pg-"))
        if self._as_postgres:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError("running as root needs the `postgres` user") from None
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.port = free_port()
        data = self.dir / "data"
        try:
            self._run(
                "initdb", "-D", str(data), "-U", "postgres", "--auth=trust",
                "--no-sync", "--no-instructions", "-E", "UTF8", "--locale=C",
            )  # fmt: skip
            self.start_server()
        except BaseException:
            self.stop()
            raise

    def start_server(self) -> None:
        """Start the server on its existing cluster and port, waiting until it answers."""
        assert self.dir is not None, "start() first"
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} "
            f"-c unix_socket_directories={shlex.quote(str(self.dir))}"
        )
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        log = str(self.dir / "server.log")
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-l", log, "-o", options, "-w",
                  "-t", "60", "start")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server and keep its data: `immediate` is a crash (recovery on start)."""
        assert self.dir is not None, "start() first"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> str:
        """Create database name (lower-case identifier) and return its SQLAlchemy URL."""
        if not _DB_NAME.match(name):
            raise ValueError(f"not a plain database name: {name!r}")
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Stop the server (fast mode) and delete its dir; safe to call twice."""
        if self.dir is None:
            return
        data = self.dir / "data"
        try:
            if (data / "postmaster.pid").exists():
                self._run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> TempPostgres:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
