"""The database and the broker: which ones `make run` uses, and servers of its own.

`engines_up()` decides, for PostgreSQL and for Redis separately:

1. the URL in the environment (`DATABASE_URL`, `CELERY_BROKER_URL`), when set;
2. otherwise the server already listening on 127.0.0.1 (`CONCORD_PG_PORT`, 5432;
   `CONCORD_REDIS_PORT`, 6379), unless `CONCORD_ENGINES=own`;
3. otherwise a server of its own, Debian's binaries, data under `var/` (`var/postgres`,
   `var/redis`), listening on 127.0.0.1 at that port; `Engines.down()` stops it again
   and the next run reuses the data.

It creates the databases (`concord` and the sandbox provider's `concord_psp`, or the
names in the URLs) when missing. `Postgres` and `Redis` are also what tests use to run
servers of their own, on free ports in temporary folders, and restart them.

PostgreSQL refuses to run as root: as root, its programs run as the system user
`postgres` (Debian's package creates it), which must be able to reach the data folder.
See docs/running.md for why Debian's packages and not PyPI wheels.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

LOCALHOST = "127.0.0.1"
PG_LIB = Path("/usr/lib/postgresql")
DEFAULT_DATABASE = "concord"
PSP_DATABASE_SUFFIX = "_psp"
INSTALL_HINT = (
    "scripts/bootstrap.sh postgresql redis-server (as root), or set DATABASE_URL / CELERY_BROKER_URL"
)


class EngineError(Exception):
    """A server could not be found, started or reached; the message says what to do."""


def port_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is gone for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise EngineError(f"{what} after {timeout:.0f} s.{_tail(log)}")


def _tail(log: Path | None, lines: int = 15) -> str:
    if log is None or not log.exists():
        return ""
    text = log.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log} ---\n" + "\n".join(text)


# --- PostgreSQL -------------------------------------------------------------------


def postgres_bindir(version: str | None = None) -> Path | None:
    """Debian's binaries for `version` (the major version a data folder was made with),
    or the newest installed."""
    if version is not None:
        bindir = PG_LIB / version / "bin"
        return bindir if (bindir / "postgres").exists() else None
    found = sorted(
        (p.parent for p in PG_LIB.glob("*/bin/postgres")),
        key=lambda bindir: [int(part) for part in bindir.parent.name.split(".") if part.isdigit()],
    )
    return found[-1] if found else None


@dataclass
class Postgres:
    """A PostgreSQL server of our own: data in `data_dir`, TCP on 127.0.0.1:`port` only
    (no Unix socket, so a long folder path cannot break it), trust authentication for
    the superuser `postgres`."""

    data_dir: Path
    port: int
    log_file: Path
    _owner: pwd.struct_passwd | None = field(default=None, init=False, repr=False)
    name = "PostgreSQL"

    def __post_init__(self) -> None:
        # Absolute: the programs run with the data folder as their working directory
        # (as the user postgres, the caller's may be out of reach).
        self.data_dir, self.log_file = self.data_dir.absolute(), self.log_file.absolute()

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        return f"postgres://postgres@{LOCALHOST}:{self.port}/{database}"

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def _version(self) -> str | None:
        """The major version the data folder was made with (its binaries must match)."""
        return (self.data_dir / "PG_VERSION").read_text().strip() if self.initialised else None

    def installed(self) -> bool:
        return postgres_bindir(self._version()) is not None

    def _bindir(self) -> Path:
        version = self._version()
        bindir = postgres_bindir(version)
        if bindir is None:
            wanted = (
                f"PostgreSQL {version} (the version {self.data_dir} was made with)"
                if version
                else "PostgreSQL"
            )
            raise EngineError(f"{wanted} is not installed: {INSTALL_HINT}.")
        return bindir

    def _run_as(self) -> list[str]:
        """As root, the programs run as the system user postgres."""
        if os.geteuid() != 0:
            return []
        try:
            self._owner = self._owner or pwd.getpwnam("postgres")
        except KeyError as exc:
            raise EngineError("PostgreSQL refuses to run as root and there is no user 'postgres'.") from exc
        runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
        if runuser is None:
            raise EngineError("runuser (util-linux) is missing: it runs PostgreSQL as the user postgres.")
        return [runuser, "-u", "postgres", "--"]

    def _prepare(self, path: Path, *, directory: bool) -> None:
        """Create `path` (a folder, or an empty file) owned by the user the server runs as."""
        if directory:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch(exist_ok=True)
        if self._run_as() and self._owner is not None:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)
            blocked = next(
                (
                    parent
                    for parent in path.resolve().parents
                    if not os.stat(parent).st_mode & 0o001 and os.stat(parent).st_uid != self._owner.pw_uid
                ),
                None,
            )
            if blocked is not None:
                raise EngineError(
                    f"PostgreSQL refuses to run as root, so it runs as the user postgres, which cannot "
                    f"enter {blocked} (no execute permission for others) to reach {path}. Put the checkout "
                    f"below a folder others may enter, or set DATABASE_URL to a running server."
                )

    def _ctl(self, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        cmd = [*self._run_as(), str(self._bindir() / "pg_ctl"), "-D", str(self.data_dir), *args]
        return subprocess.run(
            cmd, cwd=self.data_dir, capture_output=True, text=True, timeout=timeout, check=False
        )

    def init(self) -> None:
        self._prepare(self.data_dir, directory=True)
        cmd = [
            *self._run_as(),
            str(self._bindir() / "initdb"),
            "-D", str(self.data_dir),
            "-U", "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C.UTF-8",
        ]  # fmt: skip
        done = subprocess.run(
            cmd, cwd=self.data_dir, capture_output=True, text=True, timeout=300, check=False
        )
        if done.returncode != 0:
            raise EngineError(f"initdb failed in {self.data_dir}:\n{done.stdout}{done.stderr}")

    def pid(self) -> int | None:
        """The postmaster's pid when a server runs on this data folder."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self, timeout: float = 60) -> None:
        if not self.initialised:
            self.init()
        self._prepare(self.log_file, directory=False)
        options = f"-p {self.port} -c listen_addresses={LOCALHOST} -c unix_socket_directories=''"
        done = self._ctl("-l", str(self.log_file), "-o", options, "-w", "-t", str(int(timeout)), "start")
        if done.returncode != 0:
            raise EngineError(
                f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}{_tail(self.log_file)}"
            )
        _wait(lambda: port_open(self.port), 10, f"PostgreSQL is not listening on {self.port}", self.log_file)

    def stop(self, mode: str = "fast", timeout: float = 60) -> None:
        if self.pid() is None:
            return
        done = self._ctl("-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10)
        if done.returncode != 0 and self.pid() is not None:
            raise EngineError(f"PostgreSQL did not stop: {done.stderr.strip()}{_tail(self.log_file)}")

    def restart(self, down_for: float = 0.0) -> None:
        """Stop (fast: open connections are cut, as in a real restart), wait, start."""
        self.stop()
        time.sleep(down_for)
        self.start()


def database_create(url: str) -> str:
    """Create the database named in `url` when it does not exist (connecting to the
    server's `postgres` database with the URL's credentials). Returns the server's version."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres", query=""))
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise EngineError(f"Cannot prepare the database {name!r} at {_safe(url)}: {exc}".strip()) from exc
    return version.split(" ")[0]


def psp_database_url(database_url: str) -> str:
    """The sandbox provider's own database: `<Concord's database>_psp` on the same server."""
    parts = urlsplit(database_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + PSP_DATABASE_SUFFIX))


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# --- Redis --------------------------------------------------------------------------


@dataclass
class Redis:
    """A Redis server of our own: data (append-only file) in `data_dir`, TCP on
    127.0.0.1:`port` only."""

    data_dir: Path
    port: int
    log_file: Path
    name = "Redis"

    def __post_init__(self) -> None:
        self.data_dir, self.log_file = self.data_dir.absolute(), self.log_file.absolute()

    def url(self, db: int = 0) -> str:
        return f"redis://{LOCALHOST}:{self.port}/{db}"

    def installed(self) -> bool:
        return shutil.which("redis-server") is not None

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self, timeout: float = 30) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise EngineError(f"redis-server is not installed: {INSTALL_HINT}.")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary,
            "--port", str(self.port),
            "--bind", LOCALHOST,
            "--unixsocket", "",
            "--dir", str(self.data_dir),
            "--daemonize", "yes",
            "--pidfile", str(self.pid_file),
            "--logfile", str(self.log_file),
            # Queued messages survive a restart: append-only file, fsync every second.
            "--appendonly", "yes",
            "--save", "",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise EngineError(f"redis-server did not start: {done.stdout}{done.stderr}{_tail(self.log_file)}")
        _wait(
            lambda: redis_ping(self.url()), timeout, f"Redis is not answering on {self.port}", self.log_file
        )

    def stop(self, timeout: float = 30) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)  # Redis's own shutdown: flushes the append-only file
        _wait(lambda: not _pid_alive(pid), timeout, f"Redis (pid {pid}) did not stop", self.log_file)

    def restart(self, down_for: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()


def redis_ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def redis_version(url: str) -> str:
    import redis

    try:
        return str(
            redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).info("server")[
                "redis_version"
            ]
        )
    except redis.RedisError as exc:
        raise EngineError(f"Cannot reach Redis at {_safe(url)}: {exc}") from exc


# --- What `make run` uses -------------------------------------------------------------


@dataclass
class Engines:
    """The outcome of engines_up: the environment to run with, one line per engine
    saying what it is, and the servers this run started (stopped by down())."""

    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    started: list[Postgres | Redis] = field(default_factory=list)

    def down(self) -> None:
        errors = []
        for server in reversed(self.started):
            try:
                server.stop()
            except (EngineError, OSError, subprocess.SubprocessError) as exc:
                errors.append(str(exc))
        self.started.clear()
        if errors:
            raise EngineError("\n".join(errors))


def engines_up(root: Path, environ: Mapping[str, str]) -> Engines:
    """Decide the database and the broker (module docstring), starting servers of our
    own when needed; on failure, stop whatever this call started and raise EngineError."""
    mode = environ.get("CONCORD_ENGINES", "auto")
    if mode not in {"auto", "own"}:
        raise EngineError(f"CONCORD_ENGINES must be 'auto' or 'own', not {mode!r}.")
    var = root / "var"
    pg_port = int(environ.get("CONCORD_PG_PORT", "5432"))
    redis_port = int(environ.get("CONCORD_REDIS_PORT", "6379"))
    engines = Engines()
    ctx = _Context(root, environ, mode)
    try:
        _database(engines, ctx, Postgres(var / "postgres", pg_port, var / "log" / "postgres.log"))
        _broker(engines, ctx, Redis(var / "redis", redis_port, var / "log" / "redis.log"))
    except BaseException:
        engines.down()
        raise
    return engines


@dataclass(frozen=True)
class _Context:
    root: Path
    environ: Mapping[str, str]
    mode: str


def _install(package: str, root: Path) -> None:
    """Debian's package through scripts/bootstrap.sh (apt-get as root; else it explains)."""
    done = subprocess.run([str(root / "scripts" / "bootstrap.sh"), "install", package], check=False)
    if done.returncode != 0:
        raise EngineError(f"{package} is missing and could not be installed (see above).")


def _choose(server: Postgres | Redis, url_variable: str, engines: Engines, ctx: _Context) -> tuple[str, str]:
    """(URL, how it was chosen): the environment's URL, else the server listening on
    the port, else our own (installed first when missing). A server of ours that a
    killed run left running on var/ counts as ours: it is restarted and stopped again."""
    url = ctx.environ.get(url_variable, "")
    if url:
        return url, f"from {url_variable}"
    already = f"already running on {LOCALHOST}:{server.port}, left running on Ctrl-C"
    leftover = server.pid() is not None
    if ctx.mode == "auto" and not leftover and port_open(server.port):
        return server.url(), already
    if not server.installed():
        _install("postgresql" if isinstance(server, Postgres) else "redis-server", ctx.root)
        # Debian's package may have started its own server on the default port.
        if ctx.mode == "auto" and port_open(server.port):
            return server.url(), already
    if leftover:
        server.stop()
    if port_open(server.port):
        variable = "CONCORD_PG_PORT" if isinstance(server, Postgres) else "CONCORD_REDIS_PORT"
        raise EngineError(
            f"Port {server.port} is taken: choose another for make run's own server with {variable}."
        )
    fresh = isinstance(server, Postgres) and not server.initialised
    server.start()
    engines.started.append(server)
    new = " (new)" if fresh else ""
    return server.url(), f"started by make run, data in var/{server.data_dir.name}/{new}, stopped on Ctrl-C"


def _database(engines: Engines, ctx: _Context, own: Postgres) -> None:
    url, how = _choose(own, "DATABASE_URL", engines, ctx)
    environ = ctx.environ
    psp_url = environ.get("PSP_DATABASE_URL", "") or psp_database_url(url)
    version = database_create(url)
    database_create(psp_url)
    engines.env.update(DATABASE_URL=url, PSP_DATABASE_URL=psp_url)
    parts = urlsplit(url)
    engines.lines.append(
        f"Database  PostgreSQL {version} at {parts.hostname}:{parts.port or 5432}, "
        f"databases {parts.path.lstrip('/')} and {urlsplit(psp_url).path.lstrip('/')} ({how})"
    )


def _broker(engines: Engines, ctx: _Context, own: Redis) -> None:
    url, how = _choose(own, "CELERY_BROKER_URL", engines, ctx)
    version = redis_version(url)
    engines.env["CELERY_BROKER_URL"] = url
    parts = urlsplit(url)
    engines.lines.append(
        f"Broker    Redis {version} at {parts.hostname}:{parts.port or 6379}, db {parts.path.lstrip('/') or 0} ({how})"
    )
