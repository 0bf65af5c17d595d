"""PostgreSQL of the local stack: a private server with its own data folder, on loopback.

The server binaries come from Debian's ``postgresql`` package (the newest
/usr/lib/postgresql/<version>/bin), which ``make prepare`` installs when missing; the
package's own cluster is never used. What must hold: nothing here installs, stops or edits
anything outside the node's data folder (``deploy/stack/host.py`` does that, in
``make prepare`` only); a missing server fails naming ``make prepare``. The one change
outside the folder is the execute bit that lets the ``postgres`` user walk to it (see
``_ensure_traversable``).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from deploy.stack.process import StackError, is_root, log, port_is_free, read_pid_file, run_command, tail

_IDENT = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def _ident(name: str) -> str:
    """Validate a role/database name so it can go into SQL unquoted-safe."""
    if not _IDENT.fullmatch(name):
        raise ValueError(f"invalid PostgreSQL identifier {name!r} (use [a-z_][a-z0-9_]*)")
    return name


def find_postgres_bindir() -> Path | None:
    """Newest /usr/lib/postgresql/<ver>/bin holding initdb and pg_ctl, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            try:
                found.append((float(bindir.parent.name), bindir))
            except ValueError:
                continue
    return max(found)[1] if found else None


def debian_clusters() -> list[dict[str, str]]:
    """Clusters managed by postgresql-common (pg_lsclusters), empty if unavailable."""
    if shutil.which("pg_lsclusters") is None:
        return []
    proc = run_command(["pg_lsclusters", "--no-header"], check=False)
    clusters = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 4:
            clusters.append({"version": parts[0], "name": parts[1], "port": parts[2],
                             "status": parts[3]})
    return clusters


def require_postgres_bindir() -> Path:
    """The PostgreSQL server bin folder; fails naming `make prepare` when there is none."""
    bindir = find_postgres_bindir()
    if bindir is None:
        raise StackError("no PostgreSQL server (/usr/lib/postgresql/*/bin/initdb): run `make prepare` "
                         "(python -m deploy.stack prepare installs Debian's postgresql package)")
    return bindir


def _ensure_traversable(path: Path) -> None:
    """Let the `postgres` user reach `path`: add o+x (traverse only) on ancestors lacking it.

    pytest's tmp folders live under /tmp/pytest-of-root (mode 0700), and the server runs
    as `postgres`, which could not even reach its data folder there. Execute-only for
    others lists nothing and reads nothing; it only allows walking through.
    """
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if not st.st_mode & 0o001:
            os.chmod(parent, st.st_mode | 0o001)


class PostgresNode:
    """A private PostgreSQL server: own data folder, 127.0.0.1 only, trust auth on loopback.

    Layout under `data_dir` (owned by `postgres` when we are root, because the server
    refuses to run as root): ``pgdata/`` (the cluster), ``postgres.log``, and the unix
    socket. `fast=True` trades crash safety for speed (tests only).
    """

    SUPERUSER = "postgres"

    def __init__(self, port: int, data_dir: Path | str, fast: bool = False):
        self.port = int(port)
        self.data_dir = Path(data_dir).resolve()
        self.fast = fast
        self.pgdata = self.data_dir / "pgdata"
        self.log_file = self.data_dir / "postgres.log"
        self._bindir: Path | None = None

    # -- plumbing
    @property
    def bindir(self) -> Path:
        if self._bindir is None:
            self._bindir = require_postgres_bindir()
        return self._bindir

    def _as_server_user(self, argv: Sequence[str]) -> list[str]:
        """Prefix a command so it runs as `postgres` when we are root."""
        if is_root():
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _socket_dir(self) -> str:
        """Unix socket inside data_dir, unless that path is too long for a socket.

        sun_path holds 107 bytes; deep pytest folders can exceed it, and then we go
        TCP-only (every client here connects to 127.0.0.1 anyway).
        """
        if len(str(self.data_dir)) + len("/.s.PGSQL.65535") < 100:
            return str(self.data_dir)
        return ""

    def dsn_for(self, database: str = "petition", user: str = "petition") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """DSN of the application database."""
        return self.dsn_for()

    # -- lifecycle
    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if is_root():
            _ensure_traversable(self.data_dir)
            shutil.chown(self.data_dir, "postgres", "postgres")
        os.chmod(self.data_dir, 0o700)
        if not (self.pgdata / "PG_VERSION").exists():
            log(f"initdb {self.pgdata}")
            run_command(self._as_server_user([
                str(self.bindir / "initdb"), "-D", str(self.pgdata), "--auth=trust",
                f"--username={self.SUPERUSER}", "-E", "UTF8", "--locale=C.UTF-8",
                *(["--no-sync"] if self.fast else [])]), timeout=300)
            with open(self.pgdata / "postgresql.conf", "a") as conf:
                conf.write("\n# petition platform: per-start settings\n"
                           "include_if_exists = 'petition.conf'\n")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self._socket_dir()}'",
            "max_connections": "200",
            "log_min_messages": "warning",
        }
        if self.fast:
            settings.update({"fsync": "off", "synchronous_commit": "off",
                             "full_page_writes": "off"})
        (self.pgdata / "petition.conf").write_text(
            "# Generated by deploy/stack/postgres.py on every start.\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        if is_root():
            shutil.chown(self.pgdata / "petition.conf", "postgres", "postgres")

    def is_running(self) -> bool:
        """True when our cluster's postmaster runs (pg_ctl status reads postmaster.pid)."""
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        proc = run_command(self._as_server_user([str(self.bindir / "pg_ctl"), "status",
                                                 "-D", str(self.pgdata)]), check=False)
        return proc.returncode == 0

    @property
    def pid(self) -> int | None:
        return read_pid_file(self.pgdata / "postmaster.pid") if self.is_running() else None

    def start(self) -> bool:
        """Start the server and wait until it accepts connections. False if already up."""
        if self.is_running():
            return False
        if not port_is_free(self.port):
            hint = ""
            if any(c["port"] == str(self.port) and c["status"].startswith("online")
                   for c in debian_clusters()):
                hint = (" (Debian's own cluster is running there: "
                        "pg_ctlcluster <version> main stop)")
            raise StackError(f"PostgreSQL: port {self.port} is already in use{hint}")
        self._prepare_dir()
        if is_root():
            self.log_file.touch()
            shutil.chown(self.log_file, "postgres", "postgres")
        run_command(self._as_server_user([str(self.bindir / "pg_ctl"), "start", "-D", str(self.pgdata),
                                          "-l", str(self.log_file), "-w", "-t", "60"]),
                    log_file=self.data_dir / "pg_ctl.log", check=False)
        if not self.is_running():
            raise StackError(f"PostgreSQL failed to start; see {self.log_file}\n"
                             f"{tail(self.log_file, 30)}")
        return True

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until pg_isready says the server accepts connections on 127.0.0.1."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = run_command([str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-t", "2"], check=False)
            if proc.returncode == 0:
                return
            if not self.is_running():
                raise StackError(f"PostgreSQL is not running; see {self.log_file}\n"
                                 f"{tail(self.log_file, 30)}")
            time.sleep(0.2)
        raise StackError(f"PostgreSQL on port {self.port} not ready after {timeout:.0f}s")

    def stop(self, timeout: float = 60.0) -> bool:
        """pg_ctl stop -m fast (rolls back open transactions, shuts down cleanly)."""
        if not self.is_running():
            return False
        run_command(self._as_server_user([str(self.bindir / "pg_ctl"), "stop", "-D", str(self.pgdata),
                                          "-m", "fast", "-w", "-t", str(int(timeout))]),
                    log_file=self.data_dir / "pg_ctl.log", check=False)
        if self.is_running():
            raise StackError(f"PostgreSQL in {self.pgdata} did not stop")
        return True

    # -- SQL
    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over TCP and return the unaligned output."""
        proc = run_command([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-tA",
                            "-h", "127.0.0.1", "-p", str(self.port), "-U", self.SUPERUSER,
                            "-d", database, "-c", sql],
                           env={**os.environ, "PGCONNECT_TIMEOUT": "10"})
        return proc.stdout.strip()

    def ensure_role(self, user: str = "petition") -> None:
        """Create a LOGIN role without password (trust auth on loopback), idempotently."""
        user = _ident(user)
        self.psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') "
                  f"THEN CREATE ROLE {user} LOGIN; END IF; END $$;")

    def ensure_database(self, name: str = "petition", user: str = "petition") -> str:
        """Create role `user` and database `name` owned by it, if missing. Returns the DSN."""
        name, user = _ident(name), _ident(user)
        self.ensure_role(user)
        if not self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
            self.psql(f"CREATE DATABASE {name} OWNER {user}")
        return self.dsn_for(name, user)

    def create_database(self, name: str, user: str = "petition") -> str:
        """Create a fresh, empty database (dropping an old one of that name). Returns the DSN."""
        name, user = _ident(name), _ident(user)
        self.ensure_role(user)
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.psql(f"CREATE DATABASE {name} OWNER {user}")
        return self.dsn_for(name, user)
