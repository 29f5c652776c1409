"""A throwaway PostgreSQL server on 127.0.0.1, for the policy store's PostgreSQL tests.

``initdb`` makes a cluster in a temporary directory and ``pg_ctl`` runs it on a free port,
durability off (the data lives for one test session). PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user, which Debian's package creates.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.conftest import TIME_UNIT_S


def postgres_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: on ``PATH``, else Debian's newest."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """A PostgreSQL cluster in a temporary directory, serving on 127.0.0.1."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = _free_port()
        # Not under pytest's tmp_path: that is private to root, and the server may not be.
        self.root = Path(tempfile.mkdtemp(prefix="stream-postgres-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._user: str | None = None
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                raise RuntimeError(
                    "running as root and there is no `postgres` user to run PostgreSQL as"
                ) from None
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._user = "postgres"
        self._run(
            "initdb",
            *("-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"),
            *("--no-sync", "--no-instructions"),
        )
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            user=self._user,
            cwd=self.root,  # the server user may not be allowed into the current directory
            capture_output=True,
            text=True,
            timeout=120 * TIME_UNIT_S,
            check=False,
        )
        if done.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed ({done.returncode}):\n{done.stderr}\n{log}")

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        wait = ("-w", "-t", str(int(60 * TIME_UNIT_S)))
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, *wait, "start"
        )

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy URL of ``database`` (psycopg 3)."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"stream_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def close(self) -> None:
        """Stop the server and remove its files."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
